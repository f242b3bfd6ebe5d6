"""Train and score one configuration in memory on processed arrays (no files, no tracking)."""

from __future__ import annotations

from typing import Any

import numpy as np

from neuroflow.config import Params, Paths
from neuroflow.io import read_json


def fit_once(
    params: Params,
    schema: dict[str, Any],
    target_affine: tuple[float, float] | None,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> tuple[Any, Any]:
    """(InferenceHead, FitResult) for `params` trained on the given arrays."""
    import torch

    from neuroflow.models.factory import InferenceHead, build_model
    from neuroflow.recipe import build_spec, settings_from, training_targets
    from neuroflow.training.engine import TensorSplits, fit

    spec = build_spec(params, x_train.shape[1], schema["classes"], y_train, schema, target_affine)
    to_targets = training_targets(params, spec)
    (xt, yt), (xv, yv) = to_targets(x_train, y_train), to_targets(x_val, y_val)
    torch.manual_seed(params.seed)
    model = build_model(spec)
    data = TensorSplits(
        torch.from_numpy(xt), torch.from_numpy(yt), torch.from_numpy(xv), torch.from_numpy(yv)
    )
    result = fit(model, data, settings_from(params))
    model.cpu()
    return InferenceHead(model, spec).eval(), result


def score(
    params: Params, head: Any, x: np.ndarray, y: np.ndarray, spec_classes: list[Any]
) -> dict[str, float]:
    """The task's test metrics on (x, y), as `evaluate` computes them."""
    import torch

    from neuroflow.evaluation import metrics as m

    with torch.inference_mode():
        out = head(torch.from_numpy(x)).numpy()
    if params.is_classification:
        return m.classification_metrics(y, out, spec_classes)[0]
    if params.task == "anomaly":
        return m.anomaly_metrics(y.astype(int), out, float(np.quantile(out, 0.95)))
    return m.regression_metrics(y, out)


def context(paths: Paths) -> tuple[dict[str, Any], tuple[float, float] | None]:
    from neuroflow.recipe import target_affine

    schema = read_json(paths.schema)
    return schema, target_affine(paths, schema)
