"""Faults through the real pipeline: bad data under `dvc repro`, SIGKILL mid-training and
mid-checkpoint-write, an unreachable MLflow, and a DVC lock held by another run.

One good baseline (`dvc repro` on a CSV source with its own reviewed suite, committed in the
copy) is shared; each test works on a `shutil.copytree` of it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file
from tests import conftest
from tests.conftest import FAST_TRAIN, clean_env, copy_project, run, set_params, start_dvc
from tests.stage.test_bad_inputs import good_frame, review_suite

pytestmark = pytest.mark.slow

SOURCE = "data/external/input.csv"
# Enough epochs that a kill lands mid-run; patience as long, so early stopping cannot end it.
EPOCHS = 40
DOWNSTREAM = ("data/processed", "artifacts/model", "artifacts/export", "artifacts/metrics.json")


def tree_hashes(root: Path, rels: tuple[str, ...] = DOWNSTREAM) -> dict[str, str]:
    return conftest.tree_hashes(root, rels)


def registry_counts(root: Path) -> tuple[int, int, list[tuple[str, str]]]:
    with sqlite3.connect(root / "mlflow.db") as db:
        versions = db.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0]
        runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        aliases = db.execute("SELECT alias, version FROM registered_model_aliases").fetchall()
    return versions, runs, sorted(aliases)


def lock_stages(root: Path) -> dict[str, object]:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, env=clean_env(root), capture_output=True)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("faults") / "project")
    source = root / SOURCE
    source.parent.mkdir(parents=True, exist_ok=True)
    good_frame().to_csv(source, index=False)
    # The input file must be a dependency of ingest, or `dvc repro` never sees it change.
    dvc_yaml = yaml.safe_load((root / "dvc.yaml").read_text())
    deps = dvc_yaml["stages"]["ingest"]["deps"]
    if not any(str(d).rstrip("/") in ("data/external", SOURCE) for d in deps):
        deps.append("data/external")
        (root / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    set_params(
        root,
        {
            "data": {"source": "csv", "path": SOURCE, "target": "label"},
            "validate": {"suite": "data/suites/input.json"},
            # A checkpoint after every epoch: the kill tests stop training between two.
            "train": {**FAST_TRAIN, "epochs": EPOCHS, "patience": EPOCHS},
            "runtime": {"checkpoint_every_s": 0},
            "registry": {"model_name": "faults-model"},
        },
    )
    # profile splits the source itself: no ingest first (dvc repro runs it)
    run(root, "neuroflow", "profile", "--margin", "0.5", "-o", "data/suites/input.json")
    review_suite(root / "data/suites/input.json")
    run(root, "dvc", "repro")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "good baseline")
    return root


def _copy(baseline: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(baseline, tmp_path / "project", symlinks=True))


@pytest.mark.parametrize(
    ("case", "failing", "message"),
    [
        ("out_of_range_csv", "validate", "column 'age': expect_column_values_to_be_between"),
        ("corrupt_parquet", "ingest", "input.parquet"),
    ],
)
def test_bad_data_stops_dvc_repro_and_loses_nothing(
    baseline: Path, tmp_path: Path, case: str, failing: str, message: str
) -> None:
    root = _copy(baseline, tmp_path)
    before = tree_hashes(root)
    raw_before = tree_hashes(root, ("data/raw",))
    registry_before = registry_counts(root)
    lock_before = lock_stages(root)
    if case == "out_of_range_csv":
        frame = good_frame()
        frame.loc[::10, "age"] = 1.0e6
        frame.to_csv(root / SOURCE, index=False)
    else:
        parquet = root / "data/external/input.parquet"
        good_frame().to_parquet(parquet, index=False)
        parquet.write_bytes(parquet.read_bytes()[:-200])  # truncated: footer gone
        set_params(root, {"data": {"source": "parquet", "path": str(parquet.relative_to(root))}})

    proc = run(root, "dvc", "repro", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"failed to reproduce '{failing}'" in out
    assert message in out and "Traceback" not in out
    for stage in ("preprocess", "train", "evaluate", "export"):
        assert f"Running stage '{stage}'" not in out
        assert lock_stages(root)[stage] == lock_before[stage]
    assert tree_hashes(root) == before
    assert registry_counts(root) == registry_before

    # Recovery: one command puts the committed params, lock and outputs back (the staged bad
    # lock included); the bad input is the user's to fix, and stays until they do.
    run(root, "neuroflow", "restore")
    assert tree_hashes(root, ("data/raw",)) == raw_before
    assert run(root, "git", "diff", "--cached", "--name-only").stdout == ""
    assert tree_hashes(root) == before


def _checkpoint_epoch(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        return int(json.loads(handle.metadata()["state"])["epoch"])


def test_sigkill_during_training_resumes_to_identical_weights(
    baseline: Path, tmp_path: Path
) -> None:
    root = _copy(baseline, tmp_path)
    ckpt = root / "artifacts/checkpoints/last.safetensors"
    ckpt.unlink()
    proc = start_dvc(root, "repro", "--single-item", "--force", "train")
    try:
        deadline = time.monotonic() + 240
        while not ckpt.exists():
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = _checkpoint_epoch(ckpt)
    assert 1 <= killed_at < EPOCHS
    assert not (root / "artifacts/model/model.safetensors").exists()
    killed_run = json.loads((root / "artifacts/checkpoints/run.json").read_text())["run_id"]

    run(root, "dvc", "repro", "train")
    summary = json.loads((root / "artifacts/train_summary.json").read_text())
    assert 1 <= summary["resumed_from_epoch"] < EPOCHS
    assert summary["epochs_run"] == EPOCHS
    # The killed run never reached MLflow (train records, export logs): nothing is left
    # RUNNING there, and the run that finished the job points to the killed one.
    from mlflow.tracking import MlflowClient

    mlc = MlflowClient(tracking_uri=clean_env(root)["MLFLOW_TRACKING_URI"])
    experiments = [e.experiment_id for e in mlc.search_experiments()]
    assert [r for r in mlc.search_runs(experiments) if r.info.status == "RUNNING"] == []
    record = json.loads((root / "artifacts/run.json").read_text())
    assert record["run_key"] != killed_run
    assert record["tags"]["neuroflow.interrupted_run"] == killed_run
    resumed = load_file(str(root / "artifacts/model/model.safetensors"))
    reference = load_file(str(baseline / "artifacts/model/model.safetensors"))
    assert resumed.keys() == reference.keys()
    for key in reference:
        assert np.array_equal(resumed[key], reference[key]), key
    assert (root / "artifacts/model/model.safetensors").read_bytes() == (
        baseline / "artifacts/model/model.safetensors"
    ).read_bytes()


_WRITER = """
import sys
from pathlib import Path
import torch
from neuroflow.training.checkpoint import TrainingState, save_checkpoint

directory, start = Path(sys.argv[1]), int(sys.argv[2])
weights = torch.zeros(1024, 1024)  # 4 MiB: a write takes long enough to be interrupted
print("ready", flush=True)
for epoch in range(start, start + 100000):
    weights.fill_(float(epoch))
    save_checkpoint(directory, TrainingState(
        epoch=epoch, model={"w": weights}, best_model={"w": weights.clone()},
        optimizer={"state": {}, "param_groups": []}, scheduler={},
        rng={"torch": torch.get_rng_state()}, meta={"epoch": epoch},
    ))
"""


def test_sigkill_during_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    from neuroflow.training.checkpoint import CHECKPOINT_NAME, load_checkpoint

    ckpt = tmp_path / CHECKPOINT_NAME
    rng = np.random.default_rng(0)
    epochs_seen: list[int] = []
    for round_ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), str(1 + 100000 * round_)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            while not ckpt.exists() or _checkpoint_epoch(ckpt) < 1 + 100000 * round_ + 2:
                assert proc.poll() is None, "the checkpoint writer died on its own"
                time.sleep(0.01)
            time.sleep(float(rng.uniform(0, 0.2)))  # somewhere inside a write, usually
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        state = load_checkpoint(ckpt)  # never half a file under the real name
        assert float(state.model["w"][0, 0]) == float(state.epoch)
        assert bool((state.model["w"] == float(state.epoch)).all())
        epochs_seen.append(state.epoch)
        for stray in tmp_path.iterdir():
            # Only temp files besides the checkpoint: ours (.last.safetensors.*.tmp) and the
            # safetensors writer's own (.tmpXXXXXX).
            assert stray.name == CHECKPOINT_NAME or stray.name.startswith("."), stray
    assert epochs_seen == sorted(epochs_seen)
    # The next successful write sweeps the temp files that the kills left behind.
    from neuroflow.training.checkpoint import save_checkpoint

    save_checkpoint(tmp_path, state)
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_mlflow_fails_export_cleanly(baseline: Path, tmp_path: Path) -> None:
    root = _copy(baseline, tmp_path)
    registration = (root / "artifacts/export/registration.json").read_bytes()
    registry_before = registry_counts(root)
    uri = f"http://127.0.0.1:{_closed_port()}"
    # The timeout is the bound: a hung client fails the test instead of blocking CI.
    proc = run(root, "neuroflow", "export", check=False, timeout=180, MLFLOW_TRACKING_URI=uri)
    assert proc.returncode != 0
    assert f"MLflow at {uri} failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (root / "artifacts/export/registration.json").read_bytes() == registration
    assert registry_counts(root) == registry_before


_HOLD_LOCK = """
import sys, time
import zc.lockfile
lock = zc.lockfile.LockFile(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


def test_dvc_lock_held_by_another_run(baseline: Path, tmp_path: Path) -> None:
    root = _copy(baseline, tmp_path)
    frame = good_frame()
    frame.loc[::10, "age"] = 1.0e6
    frame.to_csv(root / SOURCE, index=False)  # something to do, were the lock free
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(root / ".dvc/tmp/lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        proc = run(root, "dvc", "repro", check=False, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode != 0
    assert "Unable to acquire lock" in proc.stderr
    assert "another DVC process is running" in proc.stderr
    assert "Running stage" not in proc.stdout
    assert tree_hashes(root, ("data/raw",)) == tree_hashes(baseline, ("data/raw",))
