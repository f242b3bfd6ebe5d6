"""train: fit the network on the processed splits; weights as safetensors + a JSON spec."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np

from neuroflow.config import Params, Paths
from neuroflow.io import read_json, write_json, write_with
from neuroflow.models.spec import ModelSpec

log = logging.getLogger(__name__)


def load_split(paths: Paths, split: str) -> tuple[np.ndarray, np.ndarray]:
    from safetensors.numpy import load_file

    tensors = load_file(str(paths.processed_split(split)))
    return tensors["x"], tensors["y"]


def build_spec(
    params: Params, input_dim: int, classes: list[Any], y_train: np.ndarray
) -> ModelSpec:
    m = params.model
    if params.is_classification:
        output_dim, center, scale = len(classes), 0.0, 1.0
    else:
        output_dim = 1
        center = float(y_train.mean())
        scale = float(y_train.std()) or 1.0
    return ModelSpec(
        type=m.type,
        task=params.task,
        input_dim=input_dim,
        output_dim=output_dim,
        hidden=list(m.hidden),
        activation=m.activation,
        dropout=m.dropout,
        batch_norm=m.batch_norm,
        init=m.init,
        target_center=center,
        target_scale=scale,
        classes=list(classes),
    )


def settings_from(params: Params) -> Any:
    from neuroflow.training.engine import TrainSettings

    t = params.train
    loss = t.loss
    if loss == "auto":
        loss = "cross_entropy" if params.is_classification else "mse"
    return TrainSettings(
        epochs=t.epochs,
        batch_size=t.batch_size,
        optimizer=t.optimizer,
        lr=t.lr,
        momentum=t.momentum,
        weight_decay=t.weight_decay,
        l1=t.l1,
        scheduler=t.scheduler,
        step_size=t.step_size,
        gamma=t.gamma,
        grad_clip=t.grad_clip,
        patience=t.patience,
        loss=loss,
        device=t.device,
        deterministic=t.deterministic,
        seed=params.seed,
    )


def _fingerprint(spec: ModelSpec, settings: Any, paths: Paths) -> str:
    """Identity of (config, data): a checkpoint resumes only a run with the same one."""
    digest = hashlib.sha256()
    digest.update(json.dumps(spec.to_json(), sort_keys=True).encode())
    digest.update(json.dumps(settings.__dict__, sort_keys=True).encode())
    for split in ("train", "val"):
        digest.update(paths.processed_split(split).read_bytes())
    return digest.hexdigest()


def run(params: Params, paths: Paths) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    from neuroflow import tracking
    from neuroflow.models.factory import build_model
    from neuroflow.training.device import describe_device, resolve_device
    from neuroflow.training.engine import TensorSplits, fit

    x_train, y_train = load_split(paths, "train")
    x_val, y_val = load_split(paths, "val")
    schema = read_json(paths.schema)
    spec = build_spec(params, x_train.shape[1], schema["classes"], y_train)
    settings = settings_from(params)
    if not params.is_classification:  # train on a standardised target; the head undoes it
        y_train = (y_train - spec.target_center) / spec.target_scale
        y_val = (y_val - spec.target_center) / spec.target_scale

    torch.manual_seed(params.seed)  # initial weights depend on the seed alone
    model = build_model(spec)
    data = TensorSplits(
        torch.from_numpy(x_train),
        torch.from_numpy(y_train),
        torch.from_numpy(x_val),
        torch.from_numpy(y_val),
    )
    device = resolve_device(settings.device)
    run_id = tracking.start_run(
        paths.root,
        experiment=params.registry.experiment,
        run_name=f"{params.model.type}-{params.task}",
        params=params.flat(),
        tags={
            "neuroflow.task": params.task,
            "neuroflow.model_type": params.model.type,
            "neuroflow.source": schema["source"],
            **{f"env.{k}": v for k, v in describe_device(device).items()},
        },
    )
    tracking.save_run_info(paths.run_info, run_id, params.registry.experiment)
    try:
        result = fit(
            model,
            data,
            settings,
            checkpoint_dir=paths.checkpoint_dir,
            fingerprint=_fingerprint(spec, settings, paths),
        )
    except BaseException:
        tracking.finish_run(paths.root, run_id, status="FAILED")
        raise

    history = [r.as_dict() for r in result.history]
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_with(paths.weights, lambda tmp: save_file(weights, str(tmp), metadata={"format": "pt"}))
    write_json(paths.model_spec, spec.to_json())
    write_json(paths.history, history)
    summary = {
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "epochs_run": len(history),
        "stopped_early": result.stopped_early,
        "resumed_from_epoch": result.resumed_from,
        "samples_per_second": round(result.samples_per_second, 1),
        "device": result.device,
    }
    write_json(paths.train_summary, summary)

    rows: list[tuple[str, float, int]] = []
    for rec in history:
        for key in ("train_loss", "val_loss", "lr", "val_accuracy"):
            if key in rec:
                rows.append((key, rec[key], rec["epoch"]))
    rows += [
        ("best_epoch", result.best_epoch, 0),
        ("best_val_loss", result.best_val_loss, 0),
        ("samples_per_second", result.samples_per_second, 0),
    ]
    tracking.log_metrics(paths.root, run_id, rows)
    tracking.log_artifacts(paths.root, run_id, [paths.model_spec, paths.history], "model")
    log.info(
        "train: best epoch %d (val_loss %.4f) of %d on %s, %.0f samples/s; run %s",
        result.best_epoch,
        result.best_val_loss,
        len(history),
        result.device,
        result.samples_per_second,
        run_id,
    )
    return summary
