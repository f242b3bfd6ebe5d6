"""A real `prefect server` on loopback serves the scheduled `retrain` deployment and runs it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.conftest import clean_env

pytestmark = pytest.mark.slow

PREFECT = str(Path(sys.executable).parent / "prefect")
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process this test started, by its PID (and its own children with it)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def wait_for(what: str, check: Any, timeout: float, procs: list[subprocess.Popen[bytes]]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"{what}: {proc.args} exited {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            value = check()
            if value:
                return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def prefect_server(project: Path, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = clean_env(
        project,
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL=api,
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        DO_NOT_TRACK="1",
    )
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(
            "prefect server health",
            lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200,
            90,
            [server],
        )
        yield api, env
    finally:
        stop(server)
        log.close()


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

        def finished() -> dict[str, Any] | None:
            resp = httpx.post(
                f"{api}/flow_runs/filter",
                json={"deployments": {"id": {"any_": [dep["id"]]}}},
                timeout=5,
            )
            runs = [r for r in resp.json() if r["state_type"] in TERMINAL]
            return runs[0] if runs else None

        run = wait_for("the triggered flow run", finished, 480, [serve])
        assert run["state_type"] == "COMPLETED", (
            run["state"],
            (tmp_path / "serve.log").read_text(),
        )
    finally:
        stop(serve)
        log.close()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    version = client.get_model_version_by_alias("neuroflow-breast-cancer", "challenger")
    assert str(version.version) == "1"
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"] == 3
