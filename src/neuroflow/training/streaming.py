"""Training on data that does not fit in memory: batches streamed from disk, one chunk at a time.

`fit` in engine.py keeps whole splits on the device; here only one chunk (a Parquet row group, or
a slice of a safetensors file read through a memory map) is resident at a time. Each epoch walks
the chunks in a seeded random order and shuffles rows within a chunk, which is the usual
out-of-core compromise (a full shuffle would need random access across the whole file).
Validation stays in memory: it is small by construction. Like engine.py, this module imports
torch and numpy only at module level; pyarrow / safetensors are imported where they are read.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuroflow.training.device import resolve_device, seed_everything
from neuroflow.training.engine import (
    EpochRecord,
    FitResult,
    TrainSettings,
    evaluate_loss,
    make_loss,
    make_optimizer,
    make_scheduler,
    train_step,
)

log = logging.getLogger(__name__)

Chunk = tuple[np.ndarray, np.ndarray]


class ChunkSource:
    """A dataset split into chunks that can be read one at a time, in any order."""

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

    def __len__(self) -> int:
        return int(self._file.num_row_groups)

    def read(self, index: int) -> Chunk:
        table = self._file.read_row_group(
            index, columns=list(self.columns) if self.columns else None
        )
        return self.transform(table.to_pandas())


@dataclass
class SafetensorsChunks(ChunkSource):
    """Fixed-size row slices of the `x` / `y` tensors of a safetensors file, read lazily."""

    path: Path
    rows_per_chunk: int = 65_536

    def __post_init__(self) -> None:
        from safetensors import safe_open

        with safe_open(str(self.path), framework="np") as f:
            self._rows = int(f.get_slice("x").get_shape()[0])

    def __len__(self) -> int:
        return max(1, math.ceil(self._rows / self.rows_per_chunk))

    def read(self, index: int) -> Chunk:
        from safetensors import safe_open

        start = index * self.rows_per_chunk
        stop = min(start + self.rows_per_chunk, self._rows)
        with safe_open(str(self.path), framework="np") as f:
            return f.get_slice("x")[start:stop], f.get_slice("y")[start:stop]


def _batches(
    source: ChunkSource, batch: int, generator: torch.Generator, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for chunk_index in torch.randperm(len(source), generator=generator).tolist():
        x_np, y_np = source.read(chunk_index)
        x = torch.from_numpy(np.ascontiguousarray(x_np)).to(device, non_blocking=True)
        y = torch.from_numpy(np.ascontiguousarray(y_np)).to(device, non_blocking=True)
        perm = torch.randperm(len(x), generator=generator).to(device)
        x, y = x.index_select(0, perm), y.index_select(0, perm)
        for start in range(0, len(x), batch):
            if len(x) - start >= 2 or len(x) < 2:  # BatchNorm cannot train on a single row
                yield x[start : start + batch], y[start : start + batch]


def fit_streaming(
    model: nn.Module,
    train: ChunkSource,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    settings: TrainSettings,
) -> FitResult:
    """Train `model` in place from streamed chunks; on return it holds the best-val weights.

    The same optimiser, scheduler, loss, L1, clipping and early stopping as `engine.fit`.
    """
    seed_everything(settings.seed, settings.deterministic)
    device = resolve_device(settings.device)
    model.to(device)
    classification = settings.loss == "cross_entropy"
    x_val, y_val = x_val.to(device), y_val.to(device)
    optimizer = make_optimizer(model, settings)
    scheduler = make_scheduler(optimizer, settings)
    loss_fn = make_loss(settings.loss)
    generator = torch.Generator()  # shuffles on the host: chunk order and row order
    generator.manual_seed(settings.seed)
    penalised = [p for p in model.parameters() if p.ndim > 1]

    def autocast() -> torch.autocast:
        return torch.autocast(
            device_type=device.type,
            dtype=torch.bfloat16,
            enabled=settings.amp and device.type == "cuda",
        )

    history: list[EpochRecord] = []
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_loss, best_epoch, bad, samples, seconds_total = math.inf, 0, 0, 0, 0.0
    for epoch in range(1, settings.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        running = torch.zeros((), device=device)
        seen = 0
        for xb, yb in _batches(train, settings.batch_size, generator, device):
            loss = train_step(
                model,
                model,
                xb,
                yb,
                optimizer=optimizer,
                loss_fn=loss_fn,
                settings=settings,
                classification=classification,
                autocast=autocast,
                penalised=penalised,
            )
            running += loss * len(xb)
            seen += len(xb)
        val_t, acc_t = evaluate_loss(model, x_val, y_val, loss_fn, classification, autocast)
        train_loss, val_loss = float(running / max(seen, 1)), float(val_t)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"training diverged at epoch {epoch} (loss={train_loss})")
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_loss)
        elif scheduler is not None:
            scheduler.step()
        seconds = time.perf_counter() - t0
        samples, seconds_total = samples + seen, seconds_total + seconds
        history.append(
            EpochRecord(
                epoch,
                train_loss,
                val_loss,
                float(optimizer.param_groups[0]["lr"]),
                float(acc_t) if acc_t is not None else None,
                seconds,
            )
        )
        if val_loss < best_loss - 1e-12:
            best_loss, best_epoch, bad = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
        log.info(
            "stream epoch %d/%d loss=%.4f val_loss=%.4f",
            epoch,
            settings.epochs,
            train_loss,
            val_loss,
        )
        if bad >= settings.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(
        history=history,
        best_epoch=best_epoch,
        best_val_loss=best_loss,
        stopped_early=bad >= settings.patience,
        resumed_from=0,
        device=str(device),
        samples_per_second=samples / seconds_total if seconds_total else 0.0,
    )
