"""evaluate: test-split metrics (DVC metrics under `test`), per-class metrics, plots.

The stage writes files only. `export`, which talks to MLflow anyway, records them in the
training run (`tracking.record_evaluation`): importing MLflow and opening its store here would
cost ~2.5 s.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from neuroflow.config import Params, Paths
from neuroflow.evaluation import metrics as metric_fns
from neuroflow.evaluation import plots
from neuroflow.io import read_json, write_json

log = logging.getLogger(__name__)

# DVC plot data written by this stage: artifacts/plots/test/<kind>/<kind>.json for the kinds that
# fit the task. Each kind is a folder in dvc.yaml's `plots`, so DVC draws nothing for a kind left
# empty, where a declared but missing file would be reported as a failure.
PLOT_KINDS = ("confusion", "roc", "pr", "calibration", "residuals", "forecast", "samples")
# An empty kind's folder holds this (ignored by DVC in .dvcignore) so git keeps the folder.
PLACEHOLDER = ".gitkeep"
# Test rows drawn on the decision-boundary picture: more is an opaque cloud that takes minutes
# to render; a seeded sample keeps the same picture for the same data.
BOUNDARY_MAX_POINTS = 50_000


def predict(head: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return head(torch.from_numpy(x)).numpy()


def _sample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """All row indices if there are at most `limit`, else a seeded sample of them, in order."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def write_plot_data(root: Path, plot_data: dict[str, list[dict]]) -> None:
    """Rewrite root/<kind>/ for every kind: `<kind>.json` where there are rows, else only the
    placeholder (an earlier run's data for another task is removed, not left to be drawn)."""
    for kind in PLOT_KINDS:
        folder = root / kind
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        if plot_data.get(kind):
            write_json(folder / f"{kind}.json", plot_data[kind])
        else:
            (folder / PLACEHOLDER).touch()


def run(params: Params, paths: Paths) -> dict[str, Any]:
    if params.task == "generative":  # no test predictions: samples rated by a trained classifier
        from neuroflow.stages import evaluate_generative

        return evaluate_generative.run(params, paths)
    from neuroflow import tracking
    from neuroflow.models.store import load_head
    from neuroflow.processed import load_split, load_tensors

    spec, head = load_head(paths.weights, paths.model_spec)
    test = load_tensors(paths, "test")  # forecasts also hold the seasonal-naive prediction
    x_test, y_test = test["x"], test["y"]
    output = predict(head, x_test)
    run_id = tracking.load_run_id(paths.run_info)
    paths.report_dir.mkdir(parents=True, exist_ok=True)
    for stale in paths.report_dir.glob("*.png"):  # an earlier run's (another task's) pictures
        stale.unlink()
    pngs = [paths.report_dir / "history.png"]
    plots.save_history_png(read_json(paths.history), pngs[0])

    result: dict[str, Any] = {"mlflow_run_id": run_id, "rows": len(y_test)}
    schema = read_json(paths.schema)
    plot_data: dict[str, list[dict]] = {}  # kind -> rows, only the kinds that fit the task
    if params.is_classification:
        classes = spec.classes
        overall, per_class = metric_fns.classification_metrics(y_test, output, classes)
        y_pred = output.argmax(axis=1)
        result["test"] = overall
        result["per_class"] = per_class
        plot_data["confusion"] = plots.confusion_rows(y_test, y_pred, classes)
        plot_data["roc"] = plots.roc_rows(y_test, output, classes)
        if len(classes) == 2:  # the positive class's PR curve and reliability
            plot_data["pr"] = plots.pr_rows(y_test, output[:, 1:], [str(classes[1])])
            plot_data["calibration"] = plots.calibration_rows(y_test == 1, output[:, 1])
        else:
            plot_data["pr"] = plots.pr_rows(y_test, output, [str(c) for c in classes])
            plot_data["calibration"] = plots.calibration_rows(y_test == y_pred, output.max(axis=1))
        pngs += [paths.report_dir / f for f in ("confusion_matrix.png", "roc.png", "pr.png")]
        plots.save_confusion_png(y_test, y_pred, classes, pngs[-3])
        plots.save_roc_png(plot_data["roc"], pngs[-2])
        plots.save_pr_png(plot_data["pr"], pngs[-1])
        pngs.append(paths.report_dir / "calibration.png")
        plots.save_calibration_png(plot_data["calibration"], pngs[-1])
        if schema.get("modality", "tabular") == "tabular" and x_test.shape[1] >= 2:
            pngs.append(paths.report_dir / "decision_boundary_pca.png")
            shown = _sample_rows(len(y_test), BOUNDARY_MAX_POINTS, params.seed)
            plots.save_decision_boundary_png(head, x_test[shown], y_test[shown], classes, pngs[-1])
    elif params.task == "anomaly":
        x_val, _ = load_split(paths, "val")  # normal rows only: the threshold's reference
        threshold = float(np.quantile(predict(head, x_val), 0.95))
        result["test"] = metric_fns.anomaly_metrics(y_test.astype(int), output, threshold)
        scores = np.c_[-output, output]  # column 1 = "anomaly" score for the curve helpers
        plot_data["roc"] = plots.roc_rows(y_test.astype(int), scores, ["normal", "anomaly"])
        plot_data["pr"] = plots.pr_rows(y_test.astype(int), output[:, None], ["anomaly"])
        pngs += [paths.report_dir / "roc.png", paths.report_dir / "pr.png"]
        plots.save_roc_png(plot_data["roc"], pngs[-2])
        plots.save_pr_png(plot_data["pr"], pngs[-1])
    elif params.task == "forecast":
        naive = test["naive"]
        result["test"] = metric_fns.forecast_metrics(y_test, output, naive)
        times = schema.get("time", {}).get("test") or [str(i) for i in range(len(y_test))]
        plot_data["forecast"] = plots.forecast_rows(times, y_test, output, naive)
        plot_data["residuals"] = plots.residual_rows(y_test, output)
        pngs += [paths.report_dir / "forecast.png", paths.report_dir / "residuals.png"]
        plots.save_forecast_png(plot_data["forecast"], pngs[-2])
        plots.save_residuals_png(y_test, output, pngs[-1])
    else:
        result["test"] = metric_fns.regression_metrics(y_test, output)
        plot_data["residuals"] = plots.residual_rows(y_test, output)
        pngs.append(paths.report_dir / "residuals.png")
        plots.save_residuals_png(y_test, output, pngs[1])
    write_plot_data(paths.plots_dir / "test", plot_data)
    del plot_data

    result = metric_fns.json_safe(result)
    write_json(paths.metrics, result)
    log.info(
        "evaluate: %s",
        ", ".join(f"{k}={v:.4f}" for k, v in result["test"].items() if v is not None),
    )
    return result
