"""Export against a real SQLite MLflow store: one version per model content, and a busy store.

A copy of the session's shared shrunken `dvc repro` per module; every test leaves the registry
consistent for the next. A busy store is another process holding SQLite's EXCLUSIVE lock on
mlflow.db; MLflow itself waits up to 20 s (its busy timeout) before "database is locked", and the
lock is held past that until export logs neuroflow's own retry, which then completes the export.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import clean_env, run, set_params
from tests.sqlite_lock import RETRY_LINE, exclusive_lock, run_until_retried

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(pipeline_done: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(pipeline_done, tmp_path_factory.mktemp("export") / "project"))


def _client(root: Path) -> Any:
    import mlflow

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return mlflow.MlflowClient(uri, uri)


def _state(root: Path) -> tuple[str, list[dict[str, str]], str]:
    """(model name, versions with their content hash, @challenger)."""
    name = json.loads((root / "artifacts/export/registration.json").read_text())["model_name"]
    client = _client(root)
    versions = [
        {"version": str(mv.version), "content": mv.tags.get("content.sha256", "")}
        for mv in client.search_model_versions(f"name = '{name}'")
    ]
    challenger = str(client.get_registered_model(name).aliases["challenger"])
    return name, sorted(versions, key=lambda v: int(v["version"])), challenger


def _forget_content(root: Path) -> str:
    """Drop the content tag of @challenger's version: the next export must register anew."""
    name, _, challenger = _state(root)
    _client(root).delete_model_version_tag(name, challenger, "content.sha256")
    return challenger


def test_identical_content_repoints_changed_weights_register(project: Path) -> None:
    _, before, challenger = _state(project)
    registration = json.loads((project / "artifacts/export/registration.json").read_text())
    run_id = registration["run_id"]

    # Export alone again (what a Prefect retry runs): the same weights; nothing new is
    # registered, and the run records evaluate's results a second time.
    run(project, "dvc", "repro", "--single-item", "--force", "export")
    _, after, again = _state(project)
    assert after == before and again == challenger
    reexport = json.loads((project / "artifacts/export/registration.json").read_text())
    assert reexport["version"] == challenger and reexport["reused_existing_version"] is True
    assert reexport["content_sha256"] == next(
        v["content"] for v in after if v["version"] == challenger
    )
    client = _client(project)
    history = client.get_metric_history(run_id, "test_accuracy")
    assert len(history) >= 2  # recorded by both exports
    tags = client.get_run(run_id).data.tags
    assert tags["neuroflow.registered_version"] == challenger
    assert tags["neuroflow.registered_version_reused"] == "true"

    # Changed weights: a new version, @challenger on it.
    set_params(project, {"train": {"lr": 0.003}})
    run(project, "dvc", "repro", timeout=900)
    _, changed, newest = _state(project)
    assert len(changed) == len(before) + 1 and newest == changed[-1]["version"]
    assert changed[-1]["content"] and changed[-1]["content"] not in {v["content"] for v in before}


def test_export_waits_out_a_lock_held_past_sqlites_busy_timeout(project: Path) -> None:
    _forget_content(project)
    _, before, _ = _state(project)
    started = time.monotonic()
    # Held past SQLite's own 20 s wait and until export logs a retry after that, however slowly
    # a busy machine starts it (seen: over 45 s before its first write); never to the ceiling.
    with exclusive_lock(project / "mlflow.db", seconds=600) as holder:
        env = clean_env(project, NEUROFLOW_STORE_RETRY_S="300")
        proc = run_until_retried(holder, ["neuroflow", "export"], cwd=project, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - started > 20  # it really waited for the lock
    assert RETRY_LINE in proc.stderr
    _, after, challenger = _state(project)
    assert len(after) == len(before) + 1
    assert challenger == after[-1]["version"] and after[-1]["content"]


def test_export_past_the_retry_budget_fails_naming_the_store(project: Path) -> None:
    previous = _forget_content(project)
    _, before, _ = _state(project)
    registration = (project / "artifacts/export/registration.json").read_text()
    with exclusive_lock(project / "mlflow.db", seconds=300):
        proc = run(
            project, "neuroflow", "export", check=False, timeout=600, NEUROFLOW_STORE_RETRY_S="3"
        )
    assert proc.returncode not in (0, None)
    store = f"sqlite:///{project / 'mlflow.db'}"
    message = proc.stderr.strip().splitlines()[-1]
    assert store in message and "database is locked" in message, proc.stderr[-3000:]
    assert "NEUROFLOW_STORE_RETRY_S" in message and "Traceback" not in proc.stderr
    # Nothing half-registered: the same versions, @challenger where it was.
    _, after, challenger = _state(project)
    assert after == before and challenger == previous
    assert (project / "artifacts/export/registration.json").read_text() == registration
