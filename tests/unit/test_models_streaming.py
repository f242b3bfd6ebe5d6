"""Streaming training: Parquet row groups and safetensors slices, one chunk resident at a time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors.numpy import save_file

from neuroflow.models.factory import build_model
from neuroflow.models.spec import ModelSpec
from neuroflow.training.engine import TrainSettings, fit
from neuroflow.training.streaming import ParquetChunks, SafetensorsChunks, StreamedSplits


def _data(n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def _settings() -> TrainSettings:
    return TrainSettings(epochs=6, batch_size=32, lr=1e-2, device="cpu", patience=10, seed=0)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelSpec(type="mlp", task="binary", input_dim=4, output_dim=2, hidden=[8]))


def test_parquet_row_groups_stream_and_learn(tmp_path: Path) -> None:
    x, y = _data()
    frame = pd.DataFrame(x, columns=list("abcd")).assign(target=y)
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pandas(frame), path, row_group_size=100)
    reads: list[int] = []

    def transform(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        reads.append(len(part))
        return part[list("abcd")].to_numpy(np.float32), part["target"].to_numpy(np.int64)

    source = ParquetChunks(path, transform)
    assert len(source) == 6
    data = StreamedSplits(source, torch.from_numpy(x[:100]), torch.from_numpy(y[:100]))
    result = fit(_model(), data, _settings())
    assert max(reads) == 100  # never more than one row group at a time
    assert sum(reads) == 6 * len(x)  # every row once per epoch
    assert result.history[-1].val_accuracy is not None and result.history[-1].val_accuracy > 0.9
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_safetensors_slices_cover_every_row(tmp_path: Path) -> None:
    x, y = _data(250)
    path = tmp_path / "train.safetensors"
    save_file({"x": x, "y": y}, str(path))
    source = SafetensorsChunks(path, rows_per_chunk=64)
    assert len(source) == 4
    chunks = [source.read(i) for i in range(len(source))]
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), x)
    data = StreamedSplits(source, torch.from_numpy(x), torch.from_numpy(y))
    result = fit(_model(), data, _settings())
    assert result.best_val_loss < result.history[0].val_loss + 1e-9


def test_streamed_training_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """The epoch loop is engine.fit's: a streamed run checkpoints and resumes like any other."""
    x, y = _data(300)
    path = tmp_path / "train.safetensors"
    save_file({"x": x, "y": y}, str(path))

    def data() -> StreamedSplits:
        source = SafetensorsChunks(path, rows_per_chunk=64)
        return StreamedSplits(source, torch.from_numpy(x[:60]), torch.from_numpy(y[:60]))

    full = _model()
    fit(full, data(), _settings(), checkpoint_dir=tmp_path / "a", fingerprint="f")
    part = _model()
    short = dataclasses.replace(_settings(), epochs=3)
    fit(part, data(), short, checkpoint_dir=tmp_path / "b", fingerprint="f")
    resumed = _model()
    result = fit(resumed, data(), _settings(), checkpoint_dir=tmp_path / "b", fingerprint="f")
    assert result.resumed_from == 3
    for key, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)
