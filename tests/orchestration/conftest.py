"""Fixtures for the Prefect flows: a temporary Prefect API, and the flows' environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("DO_NOT_TRACK", "1")
# The harness's server runs from wherever pytest does, maybe without prefect.toml: no analytics.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """Flows in this session report to a throw-away Prefect server (SQLite in a temp dir)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def flow_env(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stages launched by an in-process flow track into the project copy's own store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    return project


@pytest.fixture
def prefect_server(project: Path, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A real `prefect server` on a free loopback port; yields its API URL and client env."""
    import httpx
    from tests.conftest import clean_env
    from tests.orchestration.procs import PREFECT, background, free_port, prefect_env, wait_for

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = prefect_env(api, tmp_path, **clean_env(project))
    cmd = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with background(cmd, project, env, tmp_path / "server.log") as server:
        wait_for(
            "prefect server health",
            lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200,
            90,
            [server],
        )
        yield api, env
