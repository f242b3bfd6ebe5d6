"""Helpers for tests that start real servers and workers: free ports, waits, stop by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import free_port

__all__ = ["free_port"]  # re-exported: the orchestration tests import it from here

PREFECT = str(Path(sys.executable).parent / "prefect")

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


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
    """Poll `check` until it returns something truthy; fail early if a process we need died."""
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


@contextlib.contextmanager
def background(
    cmd: list[str], cwd: Path, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`cmd` in its own process group (so stop() reaches its children), output to `log`."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            stop(proc)


def database(home: Path) -> Path:
    """The SQLite database of a server started with `prefect_env(..., home)`."""
    return home / "prefect.db"


def prefect_env(api: str, home: Path, **base: str) -> dict[str, str]:
    """Settings for a throw-away `prefect server` and its clients (loopback, no UI)."""
    return {
        **base,
        "PREFECT_HOME": str(home / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{database(home)}",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",
    }


def flow_runs(api: str, deployment_id: str) -> list[dict[str, Any]]:
    resp = httpx.post(
        f"{api}/flow_runs/filter",
        json={"deployments": {"id": {"any_": [deployment_id]}}},
        timeout=5,
    )
    resp.raise_for_status()
    runs: list[dict[str, Any]] = resp.json()
    return runs


def finished_run(api: str, deployment_id: str) -> dict[str, Any] | None:
    runs = [r for r in flow_runs(api, deployment_id) if r["state_type"] in TERMINAL]
    return runs[0] if runs else None


def terminate(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM to this one process (not its group): its exit code once it has stopped."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def artifacts(api: str, flow_run_id: str) -> dict[str, dict[str, Any]]:
    """The flow run's artifacts by key, as the Prefect API returns them."""
    resp = httpx.post(
        f"{api}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}},
        timeout=5,
    )
    resp.raise_for_status()
    return {a["key"]: a for a in resp.json()}


def check_retrain_artifacts(found: dict[str, dict[str, Any]], root: Path) -> dict[str, Any]:
    """The retrain flow's artifacts agree with what the pipeline wrote; the registration back."""
    import json

    from pipelines import flows

    registration = json.loads((root / "artifacts" / "export" / "registration.json").read_text())
    test = json.loads((root / "artifacts" / "metrics.json").read_text())["test"]
    table = found[flows.METRICS_KEY]
    assert table["type"] == "table"
    rows = json.loads(table["data"]) if isinstance(table["data"], str) else table["data"]
    column = f"challenger v{registration['version']}"
    assert {r["metric"]: r[column] for r in rows} == {k: f"{v:.4f}" for k, v in test.items()}
    run_link = found[flows.RUN_LINK_KEY]["data"]
    assert f"/runs/{registration['run_id']}" in run_link
    model, version = registration["model_name"], registration["version"]
    assert f"/models/{model}/versions/{version}" in found[flows.VERSION_LINK_KEY]["data"]
    return dict(registration)
