"""Per-epoch training checkpoints as safetensors + JSON metadata: resumable, never pickle.

Tensors (weights, optimizer moments, RNG states, best weights) go in the safetensors body;
everything else (epoch, history, optimizer hyper-parameters, scheduler state) is JSON in the
header metadata. Loading a pickle planted at the checkpoint path fails in the safetensors
header parser before any byte of it is interpreted as code.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from neuroflow.io import write_with

CHECKPOINT_NAME = "last.safetensors"


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
