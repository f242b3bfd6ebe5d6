"""evaluate: test-split metrics (DVC metrics under `test`), per-class metrics, plots."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from neuroflow.config import Params, Paths
from neuroflow.evaluation import metrics as metric_fns
from neuroflow.evaluation import plots
from neuroflow.io import read_json, write_json

log = logging.getLogger(__name__)


def predict(head: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return head(torch.from_numpy(x)).numpy()


def run(params: Params, paths: Paths) -> dict[str, Any]:
    from neuroflow import tracking
    from neuroflow.models.store import load_head
    from neuroflow.stages.train import load_split

    spec, head = load_head(paths.weights, paths.model_spec)
    x_test, y_test = load_split(paths, "test")
    output = predict(head, x_test)
    run_id = tracking.load_run_id(paths.run_info)
    paths.report_dir.mkdir(parents=True, exist_ok=True)
    pngs = [paths.report_dir / "history.png"]
    plots.save_history_png(read_json(paths.history), pngs[0])

    result: dict[str, Any] = {"mlflow_run_id": run_id, "rows": len(y_test)}
    if params.is_classification:
        classes = spec.classes
        overall, per_class = metric_fns.classification_metrics(y_test, output, classes)
        y_pred = output.argmax(axis=1)
        result["test"] = overall
        result["per_class"] = per_class
        write_json(
            paths.plots_dir / "confusion.json", plots.confusion_rows(y_test, y_pred, classes)
        )
        roc = plots.roc_rows(y_test, output, classes)
        write_json(paths.plots_dir / "roc.json", roc)
        pngs += [paths.report_dir / "confusion_matrix.png", paths.report_dir / "roc.png"]
        plots.save_confusion_png(y_test, y_pred, classes, pngs[1])
        plots.save_roc_png(roc, pngs[2])
    else:
        result["test"] = metric_fns.regression_metrics(y_test, output)
        write_json(paths.plots_dir / "residuals.json", plots.residual_rows(y_test, output))
        pngs.append(paths.report_dir / "residuals.png")
        plots.save_residuals_png(y_test, output, pngs[1])

    result = metric_fns.json_safe(result)
    write_json(paths.metrics, result)
    rows = [(f"test_{k}", v, 0) for k, v in result["test"].items() if v is not None]
    for cls, values in result.get("per_class", {}).items():
        rows += [(f"test_{k}_class_{cls}", v, 0) for k, v in values.items() if k != "support"]
    tracking.log_metrics(paths.root, run_id, rows)
    tracking.log_artifacts(paths.root, run_id, pngs, "plots")
    tracking.log_artifacts(paths.root, run_id, [paths.metrics], "metrics")
    log.info(
        "evaluate: %s",
        ", ".join(f"{k}={v:.4f}" for k, v in result["test"].items() if v is not None),
    )
    return result
