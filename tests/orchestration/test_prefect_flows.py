"""The `retrain` and `sweep` flows under a temporary Prefect API, each on a shrunken project copy.

One file, so that one worker's one API serves them all (a Prefect server costs ~11 CPU-s)."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from pipelines import dag
from pipelines.flows import RetryPolicy, retrain
from pipelines.sweep import sweep
from tests.orchestration.procs import artifacts, check_retrain_artifacts

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def task_runs(flow_run_id: UUID) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {run.name: run for run in runs}


def flow_logs(flow_run_id: UUID, until: Callable[[list[str]], bool]) -> list[str]:
    """The flow run's log messages once `until` holds for them (or after two minutes).

    Prefect ships logs to the server from a background worker: right after a run returns,
    the server may not have the last ones yet, and on a busy machine that lag is seconds.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # send what this process still holds
    deadline = time.monotonic() + 120
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
        messages = [log.message for log in logs]
        if until(messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


class _Seen(logging.Handler):
    """Sets `event` when a log message contains `needle`."""

    def __init__(self, needle: str) -> None:
        super().__init__()
        self.needle = needle
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.event.set()


def test_retrain_runs_dvc_stages_retries_a_held_lock_and_registers(flow_env: Path) -> None:
    import zc.lockfile

    root = flow_env
    (root / ".dvc" / "tmp").mkdir(parents=True, exist_ok=True)
    # Another DVC process holds the repo lock until the flow has seen it: a transient fault.
    held = zc.lockfile.LockFile(str(root / ".dvc" / "tmp" / "lock"))
    seen = _Seen("Unable to acquire lock")
    task_logger = logging.getLogger("prefect.task_runs")
    task_logger.addHandler(seen)

    def release() -> None:
        seen.event.wait(timeout=120)
        held.close()

    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    try:
        state = retrain(
            root=str(root),
            overrides={"train.epochs": 3, "model.hidden": [8]},
            retry=RetryPolicy(attempts=2, backoff_s=0.5),
            return_state=True,
        )
    finally:
        task_logger.removeHandler(seen)
        seen.event.set()
        releaser.join(timeout=10)
    assert state.is_completed(), state.message
    result = state.result()

    order = list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    assert result["stages"] == order
    assert result["ran"] == order
    assert result["registration"]["version"] == "1"
    assert result["registration"]["challenger_version"] == "1"

    runs = task_runs(state.state_details.flow_run_id)
    assert runs[f"dvc repro {order[0]}"].run_count == 2  # the held lock cost one retry
    assert all(runs[f"dvc repro {name}"].run_count == 1 for name in order[1:])

    # The overrides went through params.yaml, so dvc.lock records what train really used.
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"] == 3
    assert lock["stages"]["train"]["params"]["params.yaml"]["model"]["hidden"] == [8]
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert params["train"]["epochs"] == 3 and params["train"]["patience"] == 5  # merged, not reset

    # Stage output reached the Prefect logs line by line.
    messages = flow_logs(
        state.state_details.flow_run_id,
        until=lambda ms: any(m.startswith("[export] ") and "@challenger" in m for m in ms),
    )
    assert any(m.startswith("[train] ") and "epoch 3/3" in m for m in messages)
    assert any(m.startswith("[export] ") and "@challenger" in m for m in messages)

    # The run's artifacts: test metrics (no champion yet), links to the MLflow run and version.
    from prefect.settings import PREFECT_API_URL

    api = str(PREFECT_API_URL.value())
    first = check_retrain_artifacts(artifacts(api, str(state.state_details.flow_run_id)), root)
    assert first == {k: v for k, v in result["registration"].items() if k in first}

    # Nothing changed: every stage is reported up to date without starting DVC, and the run
    # still publishes the same results (the registry read is reused: the store is unchanged).
    again = retrain(root=str(root), return_state=True)
    assert again.is_completed(), again.message
    assert again.result()["ran"] == []
    wanted = {f"dvc repro {name}" for name in order}
    deadline = time.monotonic() + 120  # task runs reach the server asynchronously too
    while not wanted <= set(runs := task_runs(again.state_details.flow_run_id)):
        assert time.monotonic() < deadline, sorted(runs)
        time.sleep(0.5)
    messages = flow_logs(
        again.state_details.flow_run_id,
        until=lambda ms: (
            any("registry unchanged since the last run" in m for m in ms)
            and sum("DVC not started" in m for m in ms) >= len(order)
        ),
    )
    assert sum("up to date (dvc status): DVC not started" in m for m in messages) == len(order)
    assert not any(m.startswith("$ dvc repro") for m in messages)
    assert any("registry unchanged since the last run" in m for m in messages)
    published = artifacts(api, str(again.state_details.flow_run_id))
    assert check_retrain_artifacts(published, root) == first


def test_failed_validation_fails_the_flow_with_its_summary_without_retry(flow_env: Path) -> None:
    root = flow_env
    suite_path = root / "data" / "suites" / "breast_cancer.json"
    suite = json.loads(suite_path.read_text())
    for expectation in suite["expectations"]:
        kwargs = expectation["kwargs"]
        if kwargs.get("column") == "mean smoothness" and "max_value" in kwargs:
            kwargs["max_value"] = 0.01  # every real row is above this
    suite_path.write_text(json.dumps(suite))

    state = retrain(root=str(root), retry=RetryPolicy(attempts=3, backoff_s=0.5), return_state=True)

    assert state.is_failed()
    assert "validate failed" in state.message
    for needle in ("split 'train'", "mean smoothness", "expect_column_values_to_be_between"):
        assert needle in state.message
    with pytest.raises(dag.PipelineValidationError):
        state.result()
    runs = task_runs(state.state_details.flow_run_id)
    assert runs["dvc repro validate"].run_count == 1  # not retried
    order = list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    upto = order[: order.index("validate") + 1]
    assert set(runs) == {f"dvc repro {name}" for name in upto}  # nothing downstream
    summary = json.loads((root / "data" / "validated" / "summary.json").read_text())
    assert summary["success"] is False
    assert not (root / "artifacts" / "export" / "registration.json").exists()


def test_a_second_run_on_the_same_checkout_is_refused(flow_env: Path) -> None:
    root = flow_env
    with dag.workspace_lock(root, owner="flow run first"):
        state = retrain(root=str(root), return_state=True)
    assert state.is_failed()
    assert "another pipeline run holds" in state.message
    assert "flow run first" in state.message
    with pytest.raises(dag.WorkspaceBusyError):
        state.result()
    assert not (root / "dvc.lock").exists()  # no stage ran
    assert task_runs(state.state_details.flow_run_id) == {}


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
