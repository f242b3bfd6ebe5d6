"""prefect.yaml's `retrain` deployed to a `process` work pool and run by a separate worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.orchestration.procs import (
    PREFECT,
    artifacts,
    background,
    check_retrain_artifacts,
    finished_run,
    terminate,
    wait_for,
)

pytestmark = pytest.mark.slow


def prefect(project: Path, env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [PREFECT, "--no-prompt", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, f"prefect {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_worker_runs_the_deployed_retrain_publishes_artifacts_and_stops_on_sigterm(
    project: Path, prefect_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    api, env = prefect_server
    pool = yaml.safe_load((project / "prefect.yaml").read_text())["deployments"][0]["work_pool"]
    prefect(project, env, "work-pool", "create", pool["name"], "--type", "process")
    # `prefect deploy` reads prefect.yaml; with no pull step the worker runs in this checkout.
    prefect(project, env, "deploy", "--name", "retrain")
    dep: dict[str, Any] = httpx.get(f"{api}/deployments/name/retrain/retrain", timeout=5).json()
    assert dep["work_pool_name"] == pool["name"]
    steps = [next(iter(s.values())) for s in dep["pull_steps"]]
    assert Path(steps[0]["directory"]) == project.resolve()

    params = {"overrides": {"train.epochs": 3, "model.hidden": [8]}, "promote": True}
    prefect(project, env, "deployment", "run", "retrain/retrain", "--params", json.dumps(params))

    worker_env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "2"}
    log = tmp_path / "worker.log"
    worker_cmd = [sys.executable, "-m", "pipelines.worker"]  # the pool named in prefect.yaml
    with background(worker_cmd, project, worker_env, log) as worker:
        run = wait_for(
            "the flow run picked up by the worker",
            lambda: finished_run(api, dep["id"]),
            480,
            [worker],
        )
        assert run["state_type"] == "COMPLETED", (run["state"], log.read_text()[-4000:])
        # SIGTERM, as systemd, Docker or Kubernetes send it: the worker stops, exit status 0.
        assert terminate(worker) == 0, log.read_text()[-4000:]
    assert "stopped" in log.read_text()
    # The worker, not this process, ran it: a separate flow-run process under the pool.
    assert run["work_pool_name"] == pool["name"]
    assert run["infrastructure_pid"]

    found = artifacts(api, run["id"])
    registration = check_retrain_artifacts(found, project)

    from mlflow.tracking import MlflowClient
    from pipelines.flows import PROMOTION_KEY

    client = MlflowClient(
        tracking_uri=f"sqlite:///{project / 'mlflow.db'}",
        registry_uri=f"sqlite:///{project / 'mlflow.db'}",
    )
    version = client.get_model_version_by_alias("neuroflow-breast-cancer", "challenger")
    assert str(version.version) == registration["version"] == "1"
    mlflow_run = client.get_run(version.run_id)
    assert mlflow_run.data.params["train.epochs"] == "3"
    # The MLflow run names the flow run that produced it, and the flow run links back to it.
    assert mlflow_run.data.tags["prefect.flow_run_id"] == run["id"]
    assert mlflow_run.data.tags["prefect.flow_run_url"].endswith(run["id"])
    # The gate's decision, as the registry recorded it on the version.
    decision = client.get_model_version("neuroflow-breast-cancer", "1").tags["promotion.decision"]
    assert f"## Promotion: {decision}" in found[PROMOTION_KEY]["data"]
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"] == 3
