"""Per-epoch training checkpoints as safetensors + JSON metadata: resumable, never pickle.

Tensors (weights, optimizer moments, RNG states, best weights) go in the safetensors body;
everything else (epoch, history, optimizer hyper-parameters, scheduler state) is JSON in the
header metadata. Loading a pickle planted at the checkpoint path fails in the safetensors
header parser before any byte of it is interpreted as code.

Beside the checkpoint, `run.json` names the run that owns it and whether that run finished:
only an unfinished (interrupted) run is resumed; after a finished one, the next run (a forced
`dvc repro -f`, a scheduled retrain) clears the final checkpoint and trains from the seed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from neuroflow.io import read_json, write_json, write_with

CHECKPOINT_NAME = "last.safetensors"
# The run owning the checkpoints (DVC persists this directory across runs, unlike the stage's
# other outputs): {"run_id": ..., "status": "running" | "finished"}.
OWNER_NAME = "run.json"
RUNNING, FINISHED = "running", "finished"


class CheckpointError(RuntimeError):
    """The checkpoint is unreadable or not one of ours."""


@dataclass
class TrainingState:
    epoch: int  # epochs completed
    model: dict[str, torch.Tensor]
    best_model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, torch.Tensor]
    meta: dict[str, Any]  # history, best epoch/loss, patience counter, config fingerprint


def _encode(value: Any) -> Any:
    """JSON cannot hold inf/NaN (ReduceLROnPlateau starts at inf); tag them."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for idx, slots in state["state"].items():
        plain: dict[str, Any] = {}
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{idx}.{name}"] = value
            else:
                plain[name] = value
        per_param[str(idx)] = plain
    return tensors, {"param_groups": state["param_groups"], "plain": per_param}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in meta["plain"].items()}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(directory: Path, state: TrainingState) -> Path:
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.model.items():
        tensors[f"model.{key}"] = value.detach().cpu().contiguous()
    for key, value in state.best_model.items():
        tensors[f"best.{key}"] = value.detach().cpu().contiguous()
    opt_tensors, opt_meta = _split_optimizer(state.optimizer)
    tensors.update({k: v.detach().cpu().contiguous() for k, v in opt_tensors.items()})
    for key, value in state.rng.items():
        tensors[f"rng.{key}"] = value.cpu().contiguous()
    header = {
        "epoch": state.epoch,
        "optimizer": opt_meta,
        "scheduler": state.scheduler,
        "meta": state.meta,
    }
    metadata = {"format": "neuroflow-checkpoint/1", "state": json.dumps(_encode(header))}
    path = directory / CHECKPOINT_NAME
    write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    # A kill during an earlier write left its temp files behind (never under the real name):
    # ours, and the safetensors writer's own ".tmpXXXXXX". One trainer owns this directory at a
    # time (DVC's repo lock), so sweeping them is safe.
    for pattern in (f".{CHECKPOINT_NAME}.*.tmp", ".tmp*"):
        for stale in directory.glob(pattern):
            if stale.is_file():
                stale.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> TrainingState:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # the parser's error types vary; all mean "not a safetensors file"
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from exc
    if metadata.get("format") != "neuroflow-checkpoint/1":
        raise CheckpointError(
            f"{path}: not a neuroflow checkpoint (format={metadata.get('format')})"
        )
    groups: dict[str, dict[str, torch.Tensor]] = {
        "model": {},
        "best": {},
        "optimizer": {},
        "rng": {},
    }
    try:
        header = _decode(json.loads(metadata["state"]))
        for key, value in tensors.items():
            prefix, rest = key.split(".", 1)
            groups[prefix][rest if prefix != "optimizer" else key] = value
        return TrainingState(
            epoch=int(header["epoch"]),
            model=groups["model"],
            best_model=groups["best"],
            optimizer=_join_optimizer(groups["optimizer"], header["optimizer"]),
            scheduler=header["scheduler"],
            rng=groups["rng"],
            meta=header["meta"],
        )
    except (KeyError, ValueError, TypeError) as exc:  # a safetensors file, but not laid out as ours
        raise CheckpointError(f"{path}: malformed neuroflow checkpoint ({exc!r})") from exc


def _header(path: Path) -> dict[str, Any]:
    """The checkpoint's JSON header alone (epoch, meta), without reading any tensor."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        header = _decode(json.loads(metadata["state"]))
        return {"epoch": int(header["epoch"]), "meta": dict(header["meta"])}
    except Exception as exc:  # unreadable or not ours: the engine says so and starts fresh
        raise CheckpointError(f"{path}: not a readable neuroflow checkpoint ({exc})") from exc


@dataclass(frozen=True)
class Owner:
    run_id: str
    status: str | None  # None: written before runs recorded their end


def read_owner(directory: Path) -> Owner | None:
    path = directory / OWNER_NAME
    if not path.is_file():
        return None
    data = read_json(path)
    status = data.get("status")
    return Owner(str(data["run_id"]), str(status) if status is not None else None)


def claim(directory: Path, run_id: str) -> Owner | None:
    """Record `run_id` as the (running) owner of the checkpoints; return the previous owner."""
    previous = read_owner(directory)
    write_json(directory / OWNER_NAME, {"run_id": run_id, "status": RUNNING})
    return previous


def mark_finished(directory: Path, run_id: str) -> None:
    """The run wrote its model: its checkpoint is no longer something to resume."""
    write_json(directory / OWNER_NAME, {"run_id": run_id, "status": FINISHED})


@dataclass(frozen=True)
class StartPlan:
    resume: bool
    reason: str  # for the log: why a fresh start, or which run resumes from which epoch
    run_id: str | None = None  # the interrupted run being resumed
    epoch: int = 0


def plan_start(directory: Path, fingerprint: str, *, epochs: int, patience: int) -> StartPlan:
    """Decide, before training, whether the checkpoint in `directory` is resumed.

    Resumed only when its owner did not finish and it is for the same config and data. The final
    checkpoint of a finished run is removed here (before any process can load it), so the
    training starts from the seed. An owner file without a status predates status recording:
    a checkpoint with no epoch left to train (last epoch reached, or stopped early) is taken
    as finished.
    """
    path = directory / CHECKPOINT_NAME
    if not path.exists():
        return StartPlan(False, "no checkpoint")
    owner = read_owner(directory)
    try:
        header = _header(path)
    except CheckpointError as exc:
        return StartPlan(False, str(exc))
    epoch, meta = header["epoch"], header["meta"]
    if owner is not None and owner.status is not None:
        finished = owner.status == FINISHED
    else:
        finished = epoch >= epochs or int(meta.get("bad_epochs", 0)) >= patience
    owner_id = owner.run_id if owner is not None else "unknown"
    if finished:
        path.unlink(missing_ok=True)
        return StartPlan(False, f"previous run {owner_id} finished (its final checkpoint cleared)")
    if meta.get("fingerprint") != fingerprint:
        return StartPlan(False, f"the checkpoint of run {owner_id} is for another config or data")
    return StartPlan(
        True, f"resuming interrupted run {owner_id} from epoch {epoch}", owner_id, epoch
    )
