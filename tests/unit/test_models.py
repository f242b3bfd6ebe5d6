"""Every network family: output shapes, the loss falls in a few steps, ONNX parity (raw in)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from neuroflow.export.onnx_graph import build_onnx_model, parity_max_abs_diff
from neuroflow.features.image import fit_image_preprocessor
from neuroflow.features.sequence import fit_sequence_preprocessor
from neuroflow.features.transform import PreprocessOptions, fit_preprocessor
from neuroflow.models.factory import MODEL_TYPES, InferenceHead, build_model
from neuroflow.models.spec import ModelSpec
from neuroflow.training.engine import TensorSplits, TrainSettings, fit

RNG = np.random.default_rng(0)


def _tabular(n: int = 64, d: int = 6) -> pd.DataFrame:
    return pd.DataFrame(RNG.normal(size=(n, d)), columns=[f"f{i}" for i in range(d)])


def _images(n: int = 48) -> pd.DataFrame:
    pixels = RNG.integers(0, 17, size=(n, 36)).astype(np.float64)
    return pd.DataFrame(pixels, columns=[f"pixel_{r}_{c}" for r in range(6) for c in range(6)])


def _windows(n: int = 60, window: int = 12) -> pd.DataFrame:
    t = np.arange(n + window)
    series = 100 + t + 10 * np.sin(2 * np.pi * t / 6)
    rows = np.lib.stride_tricks.sliding_window_view(series, window)[:n]
    return pd.DataFrame(rows, columns=[f"lag_{k}" for k in range(window, 0, -1)])


# (model type, task, modality, extra spec fields)
CASES = [
    ("mlp", "binary", "tabular", {}),
    ("mlp", "regression", "tabular", {}),
    ("cnn", "multiclass", "image", {"channels": [4, 8], "hidden": [16]}),
    ("cnn", "binary", "tabular", {"channels": [4], "hidden": [8]}),
    ("rnn", "forecast", "sequence", {"hidden_size": 8}),
    ("lstm", "forecast", "sequence", {"hidden_size": 8, "window_norm": "multiplicative"}),
    ("gru", "multiclass", "tabular", {"hidden_size": 8, "layers": 2, "dropout": 0.1}),
    ("transformer", "forecast", "sequence", {"d_model": 8, "heads": 2, "window_norm": "additive"}),
    ("transformer", "binary", "tabular", {"d_model": 8, "heads": 2, "layers": 2}),
    ("autoencoder", "anomaly", "tabular", {"hidden": [8], "latent": 2}),
]

EACH_CASE = pytest.mark.parametrize(
    ("model_type", "task", "modality", "extra"), CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES]
)


def _settings(task: str, **given: Any) -> TrainSettings:
    """The task's loss and the cases' optimiser settings; epochs, device and the rest given."""
    loss = "cross_entropy" if task in ("binary", "multiclass") else "mse"
    return TrainSettings(batch_size=16, lr=3e-3, loss=loss, patience=100, seed=0, **given)


def _case(model_type: str, task: str, modality: str, extra: dict) -> tuple:
    """(raw frame, fitted preprocessor, spec, x, y, the spec's network with seeded weights)."""
    frame = {"image": _images, "sequence": _windows, "tabular": _tabular}[modality]()
    target = pd.Series(np.zeros(len(frame)))  # no preprocessing step here reads the target
    columns = list(frame.columns)
    if modality == "image":
        pre = fit_image_preprocessor(frame, target, columns, PreprocessOptions(), "global")
        shape = [1, 6, 6]
    elif modality == "sequence":
        options = PreprocessOptions(scale="standard")
        pre = fit_sequence_preprocessor(frame, target, columns, options)
        shape = [len(columns), 1]
    else:
        pre = fit_preprocessor(frame, target, numeric=columns, classification=False)
        shape = [len(columns)]
    x = pre.transform(frame)
    n_out = {"binary": 2, "multiclass": 3, "anomaly": x.shape[1]}.get(task, 1)
    classes = list(range(n_out)) if task in ("binary", "multiclass") else []
    spec = ModelSpec(
        type=model_type,
        task=task,
        input_dim=x.shape[1],
        output_dim=n_out,
        classes=classes,
        input_shape=shape,
        season=6,
        **extra,
    )
    if task in ("binary", "multiclass"):
        y = torch.from_numpy((x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64))
        y = y.clamp(max=n_out - 1)
    elif task == "anomaly":
        y = torch.from_numpy(x.copy())
    else:
        y = torch.from_numpy(x[:, -1] * 0.5 + 0.1)
    torch.manual_seed(0)
    return frame, pre, spec, torch.from_numpy(x), y, build_model(spec)


def test_every_model_type_is_covered() -> None:
    # A GAN samples from noise instead of predicting rows: tests/unit/test_gan.py and
    # tests/unit/test_gan_export.py cover it.
    assert {c[0] for c in CASES} == set(MODEL_TYPES) - {"gan"}


@EACH_CASE
def test_shapes_learning_and_onnx_parity(
    model_type: str, task: str, modality: str, extra: dict
) -> None:
    frame, pre, spec, x, y, network = _case(model_type, task, modality, extra)
    out = network(x)
    assert out.shape == (len(x), spec.output_dim)
    head = InferenceHead(network, spec).eval()
    classification = task in ("binary", "multiclass")
    expected = (len(x), spec.output_dim) if classification else (len(x),)
    assert tuple(head(x).shape) == expected

    result = fit(network, TensorSplits(x, y, x, y), _settings(task, epochs=15, device="cpu"))
    losses = [r.train_loss for r in result.history]
    assert min(losses[-3:]) < losses[0], losses

    model = build_onnx_model(pre, head, spec, opset=18)
    diff = parity_max_abs_diff(model.SerializeToString(), pre, head, frame)
    assert diff <= 1e-5, f"{model_type}/{task}: ONNX vs PyTorch max abs diff {diff}"
    # The batch dimension stays free: another batch size runs and still agrees.
    assert parity_max_abs_diff(model.SerializeToString(), pre, head, frame.head(3)) <= 1e-5
    outputs = {o.name for o in model.graph.output}
    if classification:
        assert outputs == {"label", "probabilities"}
    else:
        assert outputs == ({"score"} if task == "anomaly" else {"prediction"})


def test_binary_single_logit_head_gives_two_probabilities() -> None:
    spec = ModelSpec(type="mlp", task="binary", input_dim=4, output_dim=1, classes=[0, 1])
    head = InferenceHead(build_model(spec), spec).eval()
    proba = head(torch.randn(5, 4))
    assert proba.shape == (5, 2)
    torch.testing.assert_close(proba.sum(dim=1), torch.ones(5))


def test_bce_trains_one_logit_through_the_engine() -> None:
    x = torch.randn(128, 4)
    y = (x[:, 0] > 0).float()
    spec = ModelSpec(
        type="mlp", task="binary", input_dim=4, output_dim=1, classes=[0, 1], hidden=[8]
    )
    torch.manual_seed(0)
    net = build_model(spec)
    settings = TrainSettings(epochs=20, batch_size=32, lr=1e-2, loss="bce", device="cpu", seed=0)
    result = fit(net, TensorSplits(x, y, x, y), settings)
    assert result.history[-1].train_loss < result.history[0].train_loss
    proba = InferenceHead(net, spec).eval()(x)
    assert ((proba[:, 1] > 0.5).float() == y).float().mean() > 0.9


def test_window_norm_makes_forecast_level_equivariant() -> None:
    """Ratio normalisation: scaling a window scales the forecast by the same factor."""
    spec = ModelSpec(
        type="gru",
        task="forecast",
        input_dim=12,
        output_dim=1,
        input_shape=[12, 1],
        window_norm="multiplicative",
        season=6,
    )
    net = build_model(spec).eval()
    x = torch.rand(4, 12) + 1.0
    torch.testing.assert_close(net(3.0 * x), 3.0 * net(x), rtol=1e-4, atol=1e-4)


def test_unknown_model_type_names_the_choices() -> None:
    spec = ModelSpec(type="resnet", task="binary", input_dim=4, output_dim=2)
    with pytest.raises(ValueError, match=r"resnet.*mlp"):
        build_model(spec)


@pytest.mark.parametrize("init", ["he", "xavier"])
def test_initialisation_reaches_conv_layers(init: str) -> None:
    cnn = {"channels": [4], "hidden": [8], "init": init}
    conv = _case("cnn", "multiclass", "image", cnn)[-1].features[0]
    assert torch.count_nonzero(conv.bias) == 0  # biases start at zero under both schemes


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none present)")
@EACH_CASE
def test_trains_on_cuda_and_matches_cpu_inference(
    model_type: str, task: str, modality: str, extra: dict
) -> None:
    """Each family trains on the GPU (bf16 autocast) and its weights infer the same on CPU."""
    _, _, spec, x, y, network = _case(model_type, task, modality, extra)
    settings = _settings(task, epochs=5, device="cuda", deterministic=False)
    result = fit(network, TensorSplits(x, y, x, y), settings)
    assert result.device.startswith("cuda")
    head = InferenceHead(network, spec).eval()
    with torch.no_grad():
        on_gpu = head.cuda()(x.cuda()).float().cpu()
        on_cpu = head.cpu()(x)
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-3, atol=1e-3)
