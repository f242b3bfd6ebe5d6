"""Fixtures for the Prefect flows: a temporary Prefect API, and the flows' environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("DO_NOT_TRACK", "1")
# The harness's server runs from wherever pytest does, maybe without prefect.toml: no analytics.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty Prefect database, made once per test run for every worker: a server
    started on a copy skips Prefect's schema migrations (about 13 of the 18 CPU-s a server on a
    new database takes to start here)."""
    from filelock import FileLock
    from tests.conftest import clean_env, shared_dir
    from tests.orchestration.procs import PREFECT, database, prefect_env

    from neuroflow.io import write_with

    common = shared_dir(tmp_path_factory)
    template = common / "prefect-template.db"
    with FileLock(str(common / "prefect-template.lock")):
        if not template.exists():
            work = tmp_path_factory.mktemp("prefect-template")
            # No server starts: the API URL is never used.
            env = prefect_env("http://127.0.0.1:9/api", work, **clean_env(work))
            upgrade = [PREFECT, "server", "database", "upgrade", "-y"]
            subprocess.run(upgrade, cwd=work, env=env, check=True, capture_output=True, timeout=600)
            write_with(template, lambda tmp: shutil.copyfile(database(work), tmp))
    return template


@pytest.fixture(scope="session")
def prefect_api(prefect_database: Path) -> Iterator[None]:
    """Flows in this session report to a throw-away Prefect server (SQLite in a temp dir)."""
    import prefect.testing.utilities as harness

    def migrated_temp_dir() -> str:
        folder = tempfile.mkdtemp()
        shutil.copy(prefect_database, Path(folder) / "prefect-test.db")  # the harness's name
        return folder

    # Prefect's own harness, its database a copy of the migrated one (the harness makes its
    # folder with `mkdtemp` and deletes it at exit).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "mkdtemp", migrated_temp_dir)
        with harness.prefect_test_harness(server_startup_timeout=60):
            yield


@pytest.fixture
def flow_env(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stages launched by an in-process flow track into the project copy's own store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    return project


@pytest.fixture
def prefect_server(
    project: Path, tmp_path: Path, prefect_database: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    """A real `prefect server` on a free loopback port; yields its API URL and client env."""
    import httpx
    from tests.conftest import clean_env
    from tests.orchestration.procs import (
        PREFECT,
        background,
        database,
        free_port,
        prefect_env,
        wait_for,
    )

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = prefect_env(api, tmp_path, **clean_env(project))
    shutil.copy(prefect_database, database(tmp_path))
    cmd = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with background(cmd, project, env, tmp_path / "server.log") as server:
        wait_for(
            "prefect server health",
            lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200,
            90,
            [server],
        )
        yield api, env
