"""Which checkpoint a new training run resumes: only an interrupted (unfinished) owner's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from neuroflow.training.checkpoint import (
    CHECKPOINT_NAME,
    OWNER_NAME,
    TrainingState,
    claim,
    mark_finished,
    plan_start,
    read_owner,
    save_checkpoint,
)

EPOCHS, PATIENCE = 10, 3


def write_checkpoint(directory: Path, epoch: int, fingerprint: str = "f", bad: int = 0) -> Path:
    state = TrainingState(
        epoch=epoch,
        model={"w": torch.zeros(2, 2)},
        best_model={"w": torch.ones(2, 2)},
        optimizer={"state": {}, "param_groups": []},
        scheduler={},
        rng={"torch": torch.get_rng_state()},
        meta={"fingerprint": fingerprint, "best_loss": 1.0, "best_epoch": 1, "bad_epochs": bad},
    )
    return save_checkpoint(directory, state)


def plan(directory: Path, fingerprint: str = "f"):  # type: ignore[no-untyped-def]
    return plan_start(directory, fingerprint, epochs=EPOCHS, patience=PATIENCE)


def test_interrupted_owner_is_resumed(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path, epoch=4)
    assert claim(tmp_path, "run-a") is None
    got = plan(tmp_path)
    assert (got.resume, got.run_id, got.epoch) == (True, "run-a", 4)
    assert got.reason == "resuming interrupted run run-a from epoch 4"
    assert ckpt.exists()


def test_finished_owner_starts_fresh_and_clears_its_final_checkpoint(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path, epoch=4)  # an early-stopped run's final epoch, say
    claim(tmp_path, "run-a")
    mark_finished(tmp_path, "run-a")
    assert json.loads((tmp_path / OWNER_NAME).read_text()) == {
        "run_id": "run-a",
        "status": "finished",
    }
    got = plan(tmp_path)
    assert not got.resume
    assert got.reason == "previous run run-a finished (its final checkpoint cleared)"
    assert not ckpt.exists()
    previous = claim(tmp_path, "run-b")  # the fresh run takes over
    assert previous is not None and previous.run_id == "run-a"
    owner = read_owner(tmp_path)
    assert owner is not None and owner.status == "running"


@pytest.mark.parametrize(
    ("epoch", "bad", "resume"),
    [(EPOCHS, 0, False), (5, PATIENCE, False), (5, 0, True)],
    ids=["last-epoch", "stopped-early", "mid-run"],
)
def test_owner_without_status_is_judged_by_the_checkpoint(
    tmp_path: Path, epoch: int, bad: int, resume: bool
) -> None:
    """Owner files written before runs recorded their end: nothing left to train = finished."""
    ckpt = write_checkpoint(tmp_path, epoch=epoch, bad=bad)
    (tmp_path / OWNER_NAME).write_text(json.dumps({"run_id": "old"}))
    assert plan(tmp_path).resume is resume
    assert ckpt.exists() is resume


def test_other_config_or_no_checkpoint_starts_fresh(tmp_path: Path) -> None:
    assert plan(tmp_path).reason == "no checkpoint"
    write_checkpoint(tmp_path, epoch=4, fingerprint="other")
    claim(tmp_path, "run-a")
    got = plan(tmp_path)
    assert not got.resume and "another config or data" in got.reason
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    got = plan(tmp_path)
    assert not got.resume and "not a readable neuroflow checkpoint" in got.reason
