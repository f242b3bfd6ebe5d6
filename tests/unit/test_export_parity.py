"""Export parity: the tolerance follows the output's scale, and real disagreements still fail."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime
import pandas as pd
import torch

from neuroflow.config import ExportConfig
from neuroflow.export.onnx_graph import Parity, build_onnx_model, parity, run_onnx
from neuroflow.features.transform import FittedPreprocessor, fit_preprocessor
from neuroflow.models.factory import InferenceHead
from neuroflow.models.mlp import MLP
from neuroflow.models.spec import ModelSpec

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
DEFAULTS = ExportConfig()


def grams(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {name: rng.normal(40 + 60 * i, 5 + i, rows) for i, name in enumerate(NUMERIC)}
    )


def body_mass_model() -> tuple[FittedPreprocessor, InferenceHead, ModelSpec]:
    """A regression head whose predictions are body masses in grams (about 2,700-6,300)."""
    frame = grams(200, 0)
    target = pd.Series(np.random.default_rng(1).normal(4200, 800, len(frame)))
    pre = fit_preprocessor(frame, target, numeric=NUMERIC, classification=False)
    spec = ModelSpec(
        type="mlp",
        task="regression",
        input_dim=pre.output_dim,
        output_dim=1,
        hidden=[16, 8],
        target_center=4200.0,
        target_scale=800.0,
    )
    torch.manual_seed(0)
    return pre, InferenceHead(MLP(spec.input_dim, 1, spec.hidden), spec), spec


def test_a_target_in_thousands_passes_the_default_tolerance() -> None:
    pre, head, spec = body_mass_model()
    model = build_onnx_model(pre, head, spec).SerializeToString()
    check = parity(model, pre, head, grams(300, 2))
    assert check.output == "prediction"
    assert 2_000 < check.scale < 10_000
    # The same float32 rounding the absolute-only rule refused (one ulp at this scale).
    assert check.max_abs_diff > DEFAULTS.parity_atol and not check.ok(DEFAULTS.parity_atol, 0.0)
    assert check.ok(DEFAULTS.parity_atol, DEFAULTS.parity_rtol), check.describe(
        DEFAULTS.parity_atol, DEFAULTS.parity_rtol
    )
    # float32 carries about 7 digits: the allowance is far above rounding at this scale, and
    # far below any difference that matters for a mass in grams.
    assert 0.2 < check.tolerance(DEFAULTS.parity_atol, DEFAULTS.parity_rtol) < 1.0


def test_the_reported_case_passes_with_rtol_and_fails_without() -> None:
    # One float32 ulp at 4096 is 2**-11 = 0.000488: the difference a user saw export refuse.
    check = Parity("prediction", 2.0**-11, 6300.0, 41, None, 4100.000488, 4100.0)
    assert check.ok(1e-5, DEFAULTS.parity_rtol)
    assert not check.ok(1e-5, 0.0)  # the old absolute-only rule
    assert "|diff| 0.000488 > allowed 1e-05" in check.describe(1e-5, 0.0)


def test_a_real_disagreement_fails_and_names_the_worst_element() -> None:
    pre, head, spec = body_mass_model()
    model = build_onnx_model(pre, head, spec).SerializeToString()
    rows = grams(300, 3)
    last = list(head.network.modules())[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():  # the PyTorch side drifts from the exported graph, row by row
        last.weight += 0.01
    check = parity(model, pre, head, rows)
    atol, rtol = DEFAULTS.parity_atol, DEFAULTS.parity_rtol
    assert not check.ok(atol, rtol)

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    onnx_out = run_onnx(session, rows)["prediction"].astype(np.float64)
    with torch.no_grad():
        torch_out = head.eval()(torch.from_numpy(pre.transform(rows))).numpy().astype(np.float64)
    diff = np.abs(onnx_out - torch_out)
    assert check.max_abs_diff == diff.max() and check.row == int(diff.argmax())
    assert (check.onnx_value, check.torch_value) == (onnx_out[check.row], torch_out[check.row])
    message = check.describe(atol, rtol)
    for text in (
        f"worst 'prediction' at row {check.row + 1}:",
        f"ONNX {check.onnx_value:.9g} vs PyTorch {check.torch_value:.9g}",
        f"export.parity_atol={atol:g}",
        f"export.parity_rtol={rtol:g}",
        f"output scale {check.scale:.6g}",
    ):
        assert text in message, message


def test_probabilities_keep_a_tight_tolerance_and_nan_always_fails() -> None:
    probabilities = Parity("probabilities", 3e-5, 0.999, 0, 1, 0.5, 0.49997)
    assert probabilities.tolerance(1e-5, 1e-4) < 1.2e-4  # scale ≤ 1: about atol + rtol
    assert "row 1, column 1" in probabilities.describe(1e-5, 1e-4)
    assert not Parity("prediction", math.nan, 10.0, 0, None, math.nan, 1.0).ok(1.0, 1.0)
