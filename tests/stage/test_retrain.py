"""A forced retrain retrains: a finished run's checkpoint is never resumed.

`dvc repro -f` (what a forced Prefect retrain runs) after a finished pipeline must train every
epoch again from the seed, not "resume" the finished run's final checkpoint into a copy of its
model. The interrupted case (resume to identical weights) is tests/e2e/test_faults.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import run

pytestmark = pytest.mark.slow


def read(root: Path, name: str) -> Any:
    return json.loads((root / name).read_text())


def test_forced_retrain_after_a_finished_run_trains_from_the_seed(
    pipeline_done: Path, tmp_path: Path
) -> None:
    root = Path(shutil.copytree(pipeline_done, tmp_path / "project", symlinks=True))
    first_run = read(root, "artifacts/run.json")["run_key"]
    first_summary = read(root, "artifacts/train_summary.json")
    first_weights = (root / "artifacts/model/model.safetensors").read_bytes()
    # The finished run left its final checkpoint, marked as finished.
    assert (root / "artifacts/checkpoints/last.safetensors").exists()
    assert read(root, "artifacts/checkpoints/run.json") == {
        "run_id": first_run,
        "status": "finished",
    }

    proc = run(root, "dvc", "repro", "--force", "--single-item", "train")
    log = proc.stdout + proc.stderr
    assert f"fresh start from seed 42: previous run {first_run} finished" in log, log
    assert "resuming" not in log

    summary = read(root, "artifacts/train_summary.json")
    assert summary["resumed_from_epoch"] == 0
    assert summary["epochs_run"] == first_summary["epochs_run"] > 0
    assert summary["samples_per_second"] > 0
    # Same seed, same data, deterministic CPU: the first run's weights, bit for bit.
    assert (root / "artifacts/model/model.safetensors").read_bytes() == first_weights
    second_run = read(root, "artifacts/run.json")["run_key"]
    assert second_run != first_run
    assert read(root, "artifacts/checkpoints/run.json") == {
        "run_id": second_run,
        "status": "finished",
    }
