"""prefect.yaml's `retrain` on a real `prefect server` (loopback), deployed both ways a user can:
served by `pipelines.serve` (with its schedule) and on a `process` work pool by `prefect deploy`,
run by a separate worker. One server and one project serve both: the two deployments must
coexist there anyway, and the pooled run retrains on top of the served one's pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pipelines.serve import served_name
from tests.conftest import run
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
    return run(project, PREFECT, "--no-prompt", *args, timeout=180, **env).stdout


def deployment(api: str, name: str) -> dict[str, Any] | None:
    resp = httpx.get(f"{api}/deployments/name/retrain/{name}", timeout=5)
    return resp.json() if resp.status_code == 200 else None


def lock_epochs(project: Path) -> int:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return int(lock["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"])


def test_served_and_pooled_retrain_coexist_and_each_runs_where_it_should(
    project: Path, prefect_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    api, env = prefect_server
    declared = yaml.safe_load((project / "prefect.yaml").read_text())["deployments"][0]
    pool = declared["work_pool"]
    name = served_name("retrain")

    from mlflow.tracking import MlflowClient

    client = MlflowClient(
        tracking_uri=f"sqlite:///{project / 'mlflow.db'}",
        registry_uri=f"sqlite:///{project / 'mlflow.db'}",
    )

    serve_cmd = [sys.executable, "-m", "pipelines.serve"]
    with background(serve_cmd, project, env, tmp_path / "serve.log") as serve:
        dep = wait_for("the served deployment", lambda: deployment(api, name), 90, [serve])
        # `prefect deploy` of the same prefect.yaml entry makes another deployment, on the pool;
        # neither replaces the other.
        prefect(project, env, "work-pool", "create", pool["name"], "--type", "process")
        prefect(project, env, "deploy", "--name", "retrain")
        pooled = deployment(api, "retrain")
        assert pooled is not None and pooled["id"] != dep["id"]
        assert pooled["work_pool_name"] == pool["name"]
        # With no pull step in prefect.yaml the worker runs in this checkout.
        steps = [next(iter(s.values())) for s in pooled["pull_steps"]]
        assert Path(steps[0]["directory"]) == project.resolve()
        served = deployment(api, name)
        assert served is not None and served["id"] == dep["id"]  # untouched
        assert served["work_pool_name"] is None and served["schedules"] == dep["schedules"]
        crons = [s["schedule"]["cron"] for s in dep["schedules"]]
        assert crons == [declared["schedules"][0]["cron"]]
        assert dep["parameters"]["promote"] is False

        # The served deployment runs in the serving process.
        params = {"overrides": {"train.epochs": 3, "model.hidden": [8]}}
        out = prefect(
            project, env, "deployment", "run", f"retrain/{name}", "--params", json.dumps(params)
        )
        assert f"retrain/{name}" in out
        run = wait_for("the served flow run", lambda: finished_run(api, dep["id"]), 480, [serve])
        assert run["state_type"] == "COMPLETED", (
            run["state"],
            (tmp_path / "serve.log").read_text(),
        )
    served_version = client.get_model_version_by_alias("neuroflow-breast-cancer", "challenger")
    assert str(served_version.version) == "1"
    assert lock_epochs(project) == 3

    # The pooled deployment runs in a separate worker, retraining with a new epoch count.
    params = {"overrides": {"train.epochs": 4, "model.hidden": [8]}, "promote": True}
    prefect(project, env, "deployment", "run", "retrain/retrain", "--params", json.dumps(params))
    worker_env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "2"}
    log = tmp_path / "worker.log"
    worker_cmd = [sys.executable, "-m", "pipelines.worker"]  # the pool named in prefect.yaml
    with background(worker_cmd, project, worker_env, log) as worker:
        run = wait_for(
            "the flow run picked up by the worker",
            lambda: finished_run(api, pooled["id"]),
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

    from pipelines.flows import PROMOTION_KEY

    version = client.get_model_version_by_alias("neuroflow-breast-cancer", "challenger")
    assert str(version.version) == registration["version"] == "2"
    mlflow_run = client.get_run(version.run_id)
    assert mlflow_run.data.params["train.epochs"] == "4"
    # The MLflow run names the flow run that produced it, and the flow run links back to it.
    assert mlflow_run.data.tags["prefect.flow_run_id"] == run["id"]
    assert mlflow_run.data.tags["prefect.flow_run_url"].endswith(run["id"])
    # The gate's decision, as the registry recorded it on the version.
    decision = client.get_model_version("neuroflow-breast-cancer", "2").tags["promotion.decision"]
    assert f"## Promotion: {decision}" in found[PROMOTION_KEY]["data"]
    assert lock_epochs(project) == 4
