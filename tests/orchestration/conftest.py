"""Fixtures for the Prefect flows: a temporary Prefect API, and the flows' environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("DO_NOT_TRACK", "1")


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
