"""Evaluation plots and metrics added for the curriculum tasks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neuroflow.evaluation import metrics, plots
from neuroflow.models.factory import InferenceHead, build_model
from neuroflow.models.spec import ModelSpec


def test_calibration_bins_match_counts() -> None:
    conf = np.array([0.05, 0.15, 0.95, 0.92])
    rows = plots.calibration_rows(np.array([0, 0, 1, 0]), conf)
    assert [r["count"] for r in rows] == [1, 1, 2]
    assert rows[-1]["observed"] == 0.5 and abs(rows[-1]["confidence"] - 0.935) < 1e-9


def test_pr_rows_end_at_full_recall() -> None:
    y = np.array([0, 1, 1, 0, 1])
    rows = plots.pr_rows(y, np.array([[0.1], [0.9], [0.8], [0.3], [0.2]]), ["1"])
    assert max(r["recall"] for r in rows) == 1.0 and {r["class"] for r in rows} == {"1"}


def test_forecast_and_anomaly_metrics() -> None:
    y, pred, naive = np.array([10.0, 12, 14]), np.array([10.0, 12, 15]), np.array([8.0, 10, 12])
    out = metrics.forecast_metrics(y, pred, naive)
    assert out["naive_mae"] == 2.0 and abs(out["mae_vs_naive"] - 1 / 6) < 1e-9
    scores = np.array([0.1, 0.2, 0.9, 0.8])
    a = metrics.anomaly_metrics(np.array([0, 0, 1, 1]), scores, threshold=0.5)
    assert a["roc_auc"] == 1.0 and a["precision"] == 1.0 and a["recall"] == 1.0


def test_pngs_render(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    spec = ModelSpec(type="mlp", task="binary", input_dim=5, output_dim=2, classes=[0, 1])
    head = InferenceHead(build_model(spec), spec).eval()
    plots.save_decision_boundary_png(head, x, y, [0, 1], tmp_path / "b.png")
    with torch.inference_mode():
        proba = head(torch.from_numpy(x)).numpy()
    plots.save_pr_png(plots.pr_rows(y, proba[:, 1:], ["1"]), tmp_path / "pr.png")
    plots.save_calibration_png(plots.calibration_rows(y == 1, proba[:, 1]), tmp_path / "c.png")
    rows = plots.forecast_rows(
        ["a", "b"], np.array([1.0, 2]), np.array([1.0, 2]), np.array([0.0, 1])
    )
    plots.save_forecast_png(rows, tmp_path / "f.png")
    for name in ("b", "pr", "c", "f"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
