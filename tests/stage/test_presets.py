"""A preset through the real pipeline (`neuroflow run-preset` → `dvc exp run -S ...`), then
k-fold CV and hyperparameter search on its processed data.

The forecast preset is used, shrunk to a few epochs: it crosses every new path at once (bundled
series → windows → its suite → LSTM → forecast metrics and plots → ONNX taking raw windows).
Each preset's quality bar at its real params, over eleven seeds, is ~99 pipeline runs: more than
the suite's 10-minute budget on two cores leaves room for, so those bars are checked by
benchmarks/bench_presets.py (table in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from tests.conftest import copy_project, run, run_tiny_preset, set_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def forecast_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = copy_project(tmp_path_factory.mktemp("presets") / "project")
    return root, run_tiny_preset(root, "forecast", {"epochs": 4, "patience": 4}, timeout=600)


def test_preset_runs_as_a_dvc_experiment(forecast_project: tuple[Path, str]) -> None:
    root, stdout = forecast_project
    printed = json.loads(stdout[stdout.index("{") :])
    assert printed["test"]["naive_mae"] > 0
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert params["task"] == "forecast" and params["model"]["type"] == "lstm"
    assert params["model"]["hidden"] == [32, 16]  # keys the preset leaves alone are kept
    assert "tiny_forecast-" in run(root, "dvc", "exp", "show", "--json").stdout


def test_forecast_metrics_plots_and_raw_window_onnx(forecast_project: tuple[Path, str]) -> None:
    import onnx

    root, _ = forecast_project
    metrics = json.loads((root / "artifacts" / "metrics.json").read_text())["test"]
    assert {"mae", "rmse", "r2", "naive_mae", "mae_vs_naive"} <= metrics.keys()
    plots = root / "artifacts" / "plots" / "test"
    rows = json.loads((plots / "forecast" / "forecast.json").read_text())
    assert rows[0]["time"] == "1959-01" and len(rows) == 24  # the last 24 months, in order
    # Only the plots that fit a forecast hold data; the classifier's kinds stay empty folders.
    drawn = {p.parent.name for p in plots.glob("*/*.json")}
    assert drawn == {"forecast", "residuals"}, drawn
    reg = json.loads((root / "artifacts" / "export" / "registration.json").read_text())
    assert reg["parity_max_abs_diff"] <= 1e-4
    model = onnx.load(str(root / "artifacts" / "export" / "model.onnx"))
    assert [i.name for i in model.graph.input] == [f"lag_{k}" for k in range(24, 0, -1)]
    assert [o.name for o in model.graph.output] == ["prediction"]


def test_forecast_challenger_is_judged_by_forecast_metrics(
    forecast_project: tuple[Path, str],
) -> None:
    """The preset switched task; the gate scores windows by `mae`, not the binary defaults."""
    root, _ = forecast_project
    out = json.loads(run(root, "neuroflow", "promote", "--dry-run", "--json").stdout)
    checks = {c["name"]: c for c in out["gate"]["checks"]}
    assert checks["smoke"]["passed"]
    # The forecast bar: mae at most 0.9 x the seasonal-naive forecast's (no binary metric).
    bar = checks["threshold mae_vs_naive"]
    assert "<= 0.9" in bar["detail"]
    assert not any(name.startswith("threshold roc_auc") for name in checks)
    assert out["gate"]["promote"] is bar["passed"]


def test_cv_reports_mean_and_std_per_metric(forecast_project: tuple[Path, str]) -> None:
    root, _ = forecast_project
    set_params(root, {"cv": {"folds": 3}, "train": {"epochs": 5, "patience": 5}})
    out = run(root, "neuroflow", "cv", OMP_NUM_THREADS="1").stdout
    assert "mae:" in out and "±" in out
    report = json.loads((root / "artifacts" / "cv.json").read_text())
    assert len(report["per_fold"]) == 3
    assert report["summary"]["mae"]["mean"] > 0 and report["summary"]["mae"]["std"] >= 0


@pytest.mark.parametrize("sampler", ["tpe", "grid"])
def test_tune_logs_nested_trials_and_writes_applicable_best(
    forecast_project: tuple[Path, str], sampler: str
) -> None:
    root, _ = forecast_project
    space = {"train.lr": {"choices": [0.001, 0.01]}, "model.type": {"choices": ["gru", "rnn"]}}
    if sampler == "tpe":
        space["train.lr"] = {"low": 1e-3, "high": 3e-2, "log": True}
    set_params(
        root,
        {
            "train": {"epochs": 4, "patience": 4},
            "tune": {"sampler": sampler, "trials": 4, "space": space},
        },
    )
    run(root, "neuroflow", "tune", OMP_NUM_THREADS="1")
    best_file = root / "artifacts" / "tune" / "best_params.yaml"
    best = yaml.safe_load(best_file.read_text())
    assert set(best) == {"train", "model"} and best["model"]["type"] in ("gru", "rnn")
    with sqlite3.connect(root / "mlflow.db") as db:
        parent = db.execute(
            "SELECT run_uuid FROM runs WHERE name = ? ORDER BY start_time DESC",
            (f"tune-{sampler}",),
        ).fetchone()[0]
        children = db.execute(
            "SELECT COUNT(*) FROM tags WHERE key = 'mlflow.parentRunId' AND value = ?", (parent,)
        ).fetchone()[0]
    assert children == 4
    dry = run(root, "neuroflow", "run-preset", "--file", str(best_file), "--dry-run").stdout
    assert dry.startswith("dvc exp run -S ++model.type=")
