"""DVC remotes: push from one clone, pull into another, and `dvc repro` there is a no-op."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.conftest import run

pytestmark = pytest.mark.slow


def test_second_clone_after_pull_needs_no_rerun(pipeline_done: Path, tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    shutil.copytree(pipeline_done, origin, symlinks=True)
    remote = tmp_path / "remote-store"
    run(origin, "dvc", "remote", "add", "-d", "store", str(remote))
    run(origin, "git", "add", "-A")
    run(origin, "git", "commit", "-qm", "pipeline outputs and remote")
    pushed = run(origin, "dvc", "push")
    assert "pushed" in pushed.stdout.lower()
    assert any(remote.rglob("*")), "the remote received no objects"

    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(origin), str(clone))
    assert not (clone / "data/raw/train.parquet").exists()
    run(clone, "dvc", "pull")
    assert (clone / "artifacts/export/model.onnx").is_file()
    status = run(clone, "dvc", "status")
    assert "up to date" in status.stdout, status.stdout
    repro = run(clone, "dvc", "repro")
    assert "Running stage" not in repro.stdout, repro.stdout
