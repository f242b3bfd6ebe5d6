"""evaluate: test-split metrics (DVC metrics under `test`), per-class metrics, plots.

The stage writes files only. `export`, which talks to MLflow anyway, records them in the
training run (`tracking.record_evaluation`): importing MLflow and opening its store here would
cost ~2.5 s.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neuroflow.config import Params, Paths
from neuroflow.evaluation import metrics as metric_fns
from neuroflow.evaluation import plots
from neuroflow.io import read_json, write_json

if TYPE_CHECKING:
    from neuroflow.models.factory import InferenceHead
    from neuroflow.models.spec import ModelSpec

log = logging.getLogger(__name__)

# Test rows drawn on the decision-boundary picture: more is an opaque cloud that takes minutes
# to render; a seeded sample keeps the same picture for the same data.
BOUNDARY_MAX_POINTS = 50_000

# What one task's scoring adds to metrics.json (`test`, maybe `per_class`), and its DVC plot
# rows by kind (only the kinds that fit the task).
Scored = tuple[dict[str, Any], dict[str, list[dict]]]


def predict(head: InferenceHead, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return head(torch.from_numpy(x)).numpy()


def _sample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """All row indices if there are at most `limit`, else a seeded sample of them, in order."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def run(params: Params, paths: Paths) -> dict[str, Any]:
    if params.task == "generative":  # no test predictions: samples rated by a trained classifier
        from neuroflow.stages import evaluate_generative

        return evaluate_generative.run(params, paths)
    from neuroflow import tracking
    from neuroflow.models.store import load_head
    from neuroflow.processed import load_tensors

    spec, head = load_head(paths.weights, paths.model_spec)
    test = load_tensors(paths, "test")  # forecasts also hold the seasonal-naive prediction
    output = predict(head, test["x"])
    result: dict[str, Any] = {
        "run_key": tracking.load_run_key(paths.run_info),
        "rows": len(test["y"]),
    }
    plots.clear_pngs(paths.report_dir)
    plots.save_history_png(read_json(paths.history), paths.report_dir / "history.png")
    fields, plot_data = _score(params, paths, spec, head, test, output)
    result.update(fields)
    plots.write_plot_data(paths.plots_dir / "test", plot_data)
    del plot_data  # a confusion row per test example: freed before the metrics are written
    return _write_metrics(paths, result)


def _score(
    params: Params,
    paths: Paths,
    spec: ModelSpec,
    head: InferenceHead,
    test: dict[str, np.ndarray],
    output: np.ndarray,
) -> Scored:
    """The task's metrics, plot rows and PNGs."""
    schema = read_json(paths.schema)
    report = paths.report_dir
    if params.is_classification:
        return _classification(params, spec, head, test["x"], test["y"], output, schema, report)
    if params.task == "anomaly":
        return _anomaly(paths, head, test["y"], output)
    if params.task == "forecast":
        return _forecast(test["y"], output, test["naive"], schema, report)
    return _regression(test["y"], output, report)


def _classification(
    params: Params,
    spec: ModelSpec,
    head: InferenceHead,
    x: np.ndarray,
    y: np.ndarray,
    output: np.ndarray,
    schema: dict[str, Any],
    report: Path,
) -> Scored:
    """Overall and per-class metrics; confusion, ROC, PR and calibration (the positive class's
    for a binary task), and the decision boundary of a tabular model."""
    classes = spec.classes
    overall, per_class = metric_fns.classification_metrics(y, output, classes)
    y_pred = output.argmax(axis=1)
    rows = {"confusion": plots.confusion_rows(y, y_pred, classes)}
    rows["roc"] = plots.roc_rows(y, output, classes)
    if len(classes) == 2:  # the positive class's PR curve and reliability
        rows["pr"] = plots.pr_rows(y, output[:, 1:], [str(classes[1])])
        rows["calibration"] = plots.calibration_rows(y == 1, output[:, 1])
    else:
        rows["pr"] = plots.pr_rows(y, output, [str(c) for c in classes])
        rows["calibration"] = plots.calibration_rows(y == y_pred, output.max(axis=1))
    plots.save_confusion_png(y, y_pred, classes, report / "confusion_matrix.png")
    plots.save_roc_png(rows["roc"], report / "roc.png")
    plots.save_pr_png(rows["pr"], report / "pr.png")
    plots.save_calibration_png(rows["calibration"], report / "calibration.png")
    if schema.get("modality", "tabular") == "tabular" and x.shape[1] >= 2:
        shown = _sample_rows(len(y), BOUNDARY_MAX_POINTS, params.seed)
        png = report / "decision_boundary_pca.png"
        plots.save_decision_boundary_png(head, x[shown], y[shown], classes, png)
    return {"test": overall, "per_class": per_class}, rows


def _anomaly(paths: Paths, head: InferenceHead, y: np.ndarray, output: np.ndarray) -> Scored:
    """Scores above the 95th percentile of the (normal-only) validation rows' are anomalies."""
    from neuroflow.processed import load_split

    x_val, _ = load_split(paths, "val")
    threshold = float(np.quantile(predict(head, x_val), 0.95))
    labels = y.astype(int)
    scores = np.c_[-output, output]  # column 1 = "anomaly" score for the curve helpers
    rows = {
        "roc": plots.roc_rows(labels, scores, ["normal", "anomaly"]),
        "pr": plots.pr_rows(labels, output[:, None], ["anomaly"]),
    }
    plots.save_roc_png(rows["roc"], paths.report_dir / "roc.png")
    plots.save_pr_png(rows["pr"], paths.report_dir / "pr.png")
    return {"test": metric_fns.anomaly_metrics(labels, output, threshold)}, rows


def _forecast(
    y: np.ndarray, output: np.ndarray, naive: np.ndarray, schema: dict[str, Any], report: Path
) -> Scored:
    """Errors against the seasonal-naive forecast; the test window in time order."""
    times = schema.get("time", {}).get("test") or [str(i) for i in range(len(y))]
    rows = {
        "forecast": plots.forecast_rows(times, y, output, naive),
        "residuals": plots.residual_rows(y, output),
    }
    plots.save_forecast_png(rows["forecast"], report / "forecast.png")
    plots.save_residuals_png(y, output, report / "residuals.png")
    return {"test": metric_fns.forecast_metrics(y, output, naive)}, rows


def _regression(y: np.ndarray, output: np.ndarray, report: Path) -> Scored:
    plots.save_residuals_png(y, output, report / "residuals.png")
    return {"test": metric_fns.regression_metrics(y, output)}, {
        "residuals": plots.residual_rows(y, output)
    }


def _write_metrics(paths: Paths, result: dict[str, Any]) -> dict[str, Any]:
    result = metric_fns.json_safe(result)
    write_json(paths.metrics, result)
    log.info(
        "evaluate: %s",
        ", ".join(f"{k}={v:.4f}" for k, v in result["test"].items() if v is not None),
    )
    return result
