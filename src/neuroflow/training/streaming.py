"""Training data that does not fit in memory: batches streamed from disk, one chunk at a time.

`TensorSplits` (engine.py) keeps whole splits on the device; here only one chunk (a Parquet row
group, or a slice of a safetensors file read through a memory map) is resident at a time. Each
epoch walks the chunks in a seeded random order and shuffles rows within a chunk, which is the
usual out-of-core compromise (a full shuffle would need random access across the whole file).
Validation stays in memory: it is small by construction. `engine.fit` runs the epochs, so
optimiser, schedule, early stopping, checkpoints and resume are the same in both cases. Like
engine.py, this module imports torch and numpy only at module level; pyarrow / safetensors are
imported where they are read.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from neuroflow.training.engine import Batch, keep_batch

Chunk = tuple[np.ndarray, np.ndarray]
ChunkTransform = Callable[[np.ndarray, np.ndarray], Chunk]


class ChunkSource:
    """A dataset split into chunks that can be read one at a time, in any order."""

    @property
    def rows(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, index: int) -> Chunk:
        raise NotImplementedError


@dataclass
class ParquetChunks(ChunkSource):
    """One chunk per Parquet row group; `transform` maps the raw frame to (x, y) arrays
    (e.g. a fitted preprocessor + label encoding), so raw files stream straight into training."""

    path: Path
    transform: Callable[..., Chunk]
    columns: Sequence[str] | None = None

    def __post_init__(self) -> None:
        import pyarrow.parquet as pq

        self._file = pq.ParquetFile(self.path)

    @property
    def rows(self) -> int:
        return int(self._file.metadata.num_rows)

    def __len__(self) -> int:
        return int(self._file.num_row_groups)

    def read(self, index: int) -> Chunk:
        table = self._file.read_row_group(
            index, columns=list(self.columns) if self.columns else None
        )
        return self.transform(table.to_pandas())


@dataclass
class SafetensorsChunks(ChunkSource):
    """Fixed-size row slices of the `x` / `y` tensors of a safetensors file, read lazily;
    `transform` maps each slice to what the loss compares with (e.g. a standardised target)."""

    path: Path
    rows_per_chunk: int = 65_536
    transform: ChunkTransform | None = None

    def __post_init__(self) -> None:
        from safetensors import safe_open

        with safe_open(str(self.path), framework="np") as f:
            self._rows = int(f.get_slice("x").get_shape()[0])

    @property
    def rows(self) -> int:
        return self._rows

    def __len__(self) -> int:
        return max(1, math.ceil(self._rows / self.rows_per_chunk))

    def read(self, index: int) -> Chunk:
        from safetensors import safe_open

        start = index * self.rows_per_chunk
        stop = min(start + self.rows_per_chunk, self._rows)
        with safe_open(str(self.path), framework="np") as f:
            x, y = f.get_slice("x")[start:stop], f.get_slice("y")[start:stop]
        return self.transform(x, y) if self.transform else (x, y)


@dataclass
class StreamedSplits:
    """`engine.TrainData` over a chunk source: one chunk on the device at a time."""

    train: ChunkSource
    x_val: torch.Tensor
    y_val: torch.Tensor
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def train_rows(self) -> int:
        return self.train.rows

    def to(self, device: torch.device) -> StreamedSplits:
        return dataclasses.replace(
            self,
            x_val=self.x_val.to(device, non_blocking=True),
            y_val=self.y_val.to(device, non_blocking=True),
            device=device,
        )

    @property
    def shuffle_device(self) -> torch.device:
        return torch.device("cpu")  # chunk order and row order are drawn on the host

    def epoch_batches(self, batch: int, generator: torch.Generator) -> Iterator[Batch]:
        total = self.train.rows
        for chunk_index in torch.randperm(len(self.train), generator=generator).tolist():
            x_np, y_np = self.train.read(chunk_index)
            x = torch.from_numpy(np.ascontiguousarray(x_np)).to(self.device, non_blocking=True)
            y = torch.from_numpy(np.ascontiguousarray(y_np)).to(self.device, non_blocking=True)
            perm = torch.randperm(len(x), generator=generator).to(self.device)
            x, y = x.index_select(0, perm), y.index_select(0, perm)
            for start in range(0, len(x), batch):
                if keep_batch(min(batch, len(x) - start), batch, total):
                    yield x[start : start + batch], y[start : start + batch]
