"""A NaN/inf training loss names its likely cause: bad numbers in the data before the optimiser."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from neuroflow.errors import NeuroflowError
from neuroflow.models.factory import build_model
from neuroflow.models.spec import ModelSpec
from neuroflow.training.engine import TensorSplits, TrainingDivergedError, TrainSettings, fit

SPEC = ModelSpec(type="mlp", task="regression", input_dim=6, output_dim=1, hidden=[8])
SETTINGS = TrainSettings(epochs=3, batch_size=32, loss="mse", device="cpu", patience=100, seed=1)


def rows(n: int = 192) -> TensorSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    y = x[:, 0] - 2 * x[:, 1] + 0.1 * torch.randn(n, generator=g)
    cut = int(n * 0.75)
    return TensorSplits(x[:cut].clone(), y[:cut].clone(), x[cut:].clone(), y[cut:].clone())


def diverge(data: TensorSplits, settings: TrainSettings = SETTINGS) -> str:
    torch.manual_seed(0)
    with pytest.raises(TrainingDivergedError) as caught:
        fit(build_model(SPEC), data, settings)
    # One clear line from the CLI (a NeuroflowError), still a FloatingPointError for callers.
    assert isinstance(caught.value, NeuroflowError)
    assert isinstance(caught.value, FloatingPointError)
    return str(caught.value)


def test_nan_targets_are_named_not_the_learning_rate() -> None:
    data = rows()
    data.y_train[[5, 77, 120]] = math.nan  # a regression target with missing values
    message = diverge(data)
    assert message.startswith("training diverged at epoch 1 (loss=nan, first in step ")
    assert "; likely cause: NaN/inf in the targets (3 values) of the training rows." in message
    assert "in the inputs" not in message
    assert "data.drop_missing_target" in message
    assert "a lower train.lr will not help" in message


def test_nan_and_inf_inputs_are_counted_by_feature_position() -> None:
    data = rows()
    data.x_train[3, 2] = math.nan
    data.x_train[40, 2] = math.inf
    data.x_train[41, 4] = -math.inf
    message = diverge(data)
    assert (
        "likely cause: NaN/inf in the inputs (3 values in feature position(s) 2, 4) of" in message
    )
    assert "in the targets" not in message
    assert "a lower train.lr will not help" in message


def test_finite_data_points_at_the_optimiser() -> None:
    data = rows()
    data.y_train.mul_(1e6)  # finite, but SGD at this rate without clipping overflows at once
    settings = TrainSettings(
        epochs=5,
        batch_size=32,
        loss="mse",
        optimizer="sgd",
        lr=10.0,
        grad_clip=0.0,
        device="cpu",
        patience=100,
        seed=1,
    )
    message = diverge(data, settings)
    assert "the training rows are finite, so the optimisation diverged" in message
    assert "lower train.lr (now 10)" in message
    assert "set train.grad_clip (now off)" in message
    assert "NaN/inf in the" not in message


def test_streamed_rows_are_replayed_from_disk(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    from neuroflow.training.streaming import SafetensorsChunks, StreamedSplits

    data = rows()
    data.x_train[100, 5] = math.nan
    path = tmp_path / "train.safetensors"
    save_file({"x": data.x_train.numpy(), "y": data.y_train.numpy()}, str(path))
    streamed = StreamedSplits(SafetensorsChunks(path, rows_per_chunk=50), data.x_val, data.y_val)
    torch.manual_seed(0)
    with pytest.raises(TrainingDivergedError) as caught:
        fit(build_model(SPEC), streamed, SETTINGS)
    assert "likely cause: NaN/inf in the inputs (1 value in feature position(s) 5)" in str(
        caught.value
    )


@pytest.mark.gpu
def test_on_cuda_the_epoch_replays_on_the_device_generator() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine; runs on the GPU host")
    data = rows()
    data.y_train[[5, 77, 120]] = math.nan
    message = diverge(data, TrainSettings(epochs=3, batch_size=32, loss="mse", device="cuda"))
    assert "; likely cause: NaN/inf in the targets (3 values) of the training rows." in message
