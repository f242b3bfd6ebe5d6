"""A real `prefect server` on loopback: `pipelines.serve` serves the scheduled `retrain` as its
own deployment beside the work-pool one `prefect deploy` makes, and runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pipelines.serve import served_name
from tests.orchestration.procs import PREFECT, finished_run, stop, wait_for
from tests.orchestration.test_prefect_worker import prefect

pytestmark = pytest.mark.slow


def test_served_and_pool_deployments_coexist_and_the_served_one_runs(
    project: Path, prefect_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    api, env = prefect_server
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "pipelines.serve"],
        cwd=project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        name = served_name("retrain")

        def deployment(name: str) -> dict[str, Any] | None:
            resp = httpx.get(f"{api}/deployments/name/retrain/{name}", timeout=5)
            return resp.json() if resp.status_code == 200 else None

        dep = wait_for("the served deployment", lambda: deployment(name), 90, [serve])
        declared = yaml.safe_load((project / "prefect.yaml").read_text())["deployments"][0]
        # `prefect deploy` of the same prefect.yaml entry makes another deployment, on the pool;
        # neither replaces the other.
        prefect(project, env, "work-pool", "create", declared["work_pool"]["name"], "-t", "process")
        prefect(project, env, "deploy", "--name", "retrain")
        pooled = deployment("retrain")
        assert pooled is not None and pooled["id"] != dep["id"]
        assert pooled["work_pool_name"] == declared["work_pool"]["name"]
        served = deployment(name)
        assert served is not None and served["id"] == dep["id"]  # untouched
        assert served["work_pool_name"] is None and served["schedules"] == dep["schedules"]
        crons = [s["schedule"]["cron"] for s in dep["schedules"]]
        assert crons == [declared["schedules"][0]["cron"]]
        assert dep["parameters"]["promote"] is False

        params = {"overrides": {"train.epochs": 3, "model.hidden": [8]}}
        out = subprocess.run(
            [PREFECT, "deployment", "run", f"retrain/{name}", "--params", json.dumps(params)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert f"retrain/{name}" in out.stdout

        run = wait_for("the triggered flow run", lambda: finished_run(api, dep["id"]), 480, [serve])
        assert run["state_type"] == "COMPLETED", (
            run["state"],
            (tmp_path / "serve.log").read_text(),
        )
    finally:
        stop(serve)
        log.close()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(
        tracking_uri=f"sqlite:///{project / 'mlflow.db'}",
        registry_uri=f"sqlite:///{project / 'mlflow.db'}",
    )
    version = client.get_model_version_by_alias("neuroflow-breast-cancer", "challenger")
    assert str(version.version) == "1"
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"] == 3
