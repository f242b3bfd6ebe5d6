"""A real `prefect server` on loopback serves the scheduled `retrain` deployment and runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.orchestration.procs import PREFECT, finished_run, stop, wait_for

pytestmark = pytest.mark.slow


def test_scheduled_retrain_deployment_runs_and_registers_a_challenger(
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

        def deployment() -> dict[str, Any] | None:
            resp = httpx.get(f"{api}/deployments/name/retrain/retrain", timeout=5)
            return resp.json() if resp.status_code == 200 else None

        dep = wait_for("the retrain deployment", deployment, 90, [serve])
        declared = yaml.safe_load((project / "prefect.yaml").read_text())["deployments"][0]
        crons = [s["schedule"]["cron"] for s in dep["schedules"]]
        assert crons == [declared["schedules"][0]["cron"]]
        assert dep["parameters"]["promote"] is False

        params = {"overrides": {"train.epochs": 3, "model.hidden": [8]}}
        out = subprocess.run(
            [PREFECT, "deployment", "run", "retrain/retrain", "--params", json.dumps(params)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert "retrain/retrain" in out.stdout

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
