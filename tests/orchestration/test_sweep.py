"""The `sweep` flow: a two-point grid, each trial in its own worktree, the best as @challenger."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pipelines.sweep import sweep

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def test_sweep_runs_trials_in_worktrees_and_proposes_the_best(flow_env: Path) -> None:
    from mlflow.tracking import MlflowClient

    root = flow_env
    params_before = (root / "params.yaml").read_text()
    grid = {"train.lr": [0.001, 0.01]}
    out = sweep(grid=grid, root=str(root), max_parallel=2, metric="accuracy")

    assert out["failed"] == []
    rows = sorted(out["trials"], key=lambda r: r["trial"])
    assert [r["overrides"]["train.lr"] for r in rows] == grid["train.lr"]

    # Each trial ran in its own worktree, outside the main checkout, which is left untouched.
    workspaces = {Path(r["workspace"]) for r in rows}
    assert len(workspaces) == 2
    for ws in workspaces:
        assert not ws.is_relative_to(root)
        assert not ws.exists()  # removed once the trial is over
    listed = subprocess.run(
        ["git", "worktree", "list", "--porcelain"], cwd=root, capture_output=True, text=True
    ).stdout
    assert listed.count("worktree ") == 1  # only the main checkout remains registered
    assert (root / "params.yaml").read_text() == params_before
    assert not (root / "dvc.lock").exists() and not (root / "artifacts").exists()

    # Each trial logged its own run, with its own lr, to the main checkout's store.
    client = MlflowClient(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        registry_uri=f"sqlite:///{root / 'mlflow.db'}",
    )
    for row in rows:
        run = client.get_run(row["run_id"])
        assert float(run.data.params["train.lr"]) == row["overrides"]["train.lr"]
        assert run.info.artifact_uri.startswith((root / "mlruns").as_uri())
        assert row["test"]["accuracy"] > 0.5
    assert len({r["run_id"] for r in rows}) == 2
    # Every trial's run names the one sweep flow run that started it.
    flow_runs = {client.get_run(r["run_id"]).data.tags.get("prefect.flow_run_id") for r in rows}
    assert len(flow_runs) == 1 and None not in flow_runs
    assert sorted(r["version"] for r in rows) == ["1", "2"]

    # A comparison table naming every trial, the best one starred.
    best = out["best"]
    assert best["test"]["accuracy"] == max(r["test"]["accuracy"] for r in rows)
    table = out["table"]
    assert "sweep: test accuracy" in table
    assert f"* {best['trial']}" in table
    for row in rows:
        assert row["run_id"][:12] in table

    # The best trial's version, and only it, carries @challenger.
    alias = client.get_model_version_by_alias(best["model_name"], "challenger")
    assert str(alias.version) == str(best["version"])
    assert alias.run_id == best["run_id"]
