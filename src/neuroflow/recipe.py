"""Params → what training needs: the model spec, the engine's settings, the targets.

The one recipe the train stage and model selection (`neuroflow cv`, `neuroflow tune`) follow,
so a cross-validated or tuned model is built and trained exactly like the pipeline's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from neuroflow.config import Params, Paths
from neuroflow.io import read_json
from neuroflow.models.spec import ModelSpec

if TYPE_CHECKING:
    from neuroflow.training.engine import TrainSettings


def build_spec(
    params: Params,
    input_dim: int,
    classes: list[Any],
    y_train: np.ndarray,
    schema: dict[str, Any] | None = None,
    target_affine: tuple[float, float] | None = None,
) -> ModelSpec:
    """`target_affine`: the (centre, scale) the target is trained in; by default the train
    target's mean/std (forecasts pass the series scaling, so inputs and target share units)."""
    schema = schema or {}
    center, scale = 0.0, 1.0
    if params.is_classification:
        output_dim = 1 if params.train.loss == "bce" else len(classes)
    elif params.task in ("anomaly", "generative"):
        output_dim = input_dim  # the reconstruction, or a generated row
    else:
        output_dim = 1
        if target_affine is not None:
            center, scale = target_affine
        else:
            center = float(y_train.mean())
            scale = float(y_train.std()) or 1.0
    if schema.get("modality") == "image":
        input_shape = list(schema["image_shape"])
    elif schema.get("modality") == "sequence":
        input_shape = [int(schema["window"]), 1]
    else:
        input_shape = [input_dim]
    return ModelSpec(
        **params.model.model_dump(),  # every `model.*` key is the spec field of the same name
        task=params.task,
        input_dim=input_dim,
        output_dim=output_dim,
        target_center=center,
        target_scale=scale,
        classes=list(classes),
        input_shape=input_shape,
        season=int(schema.get("season", 1)),
    )


def target_affine(paths: Paths, schema: dict[str, Any]) -> tuple[float, float] | None:
    """Forecasts: the target is scaled like the window values (one shared series scaling)."""
    if schema.get("modality") != "sequence":
        return None
    pre = read_json(paths.preprocessor)
    return float(pre["center"][0]), float(pre["scale"][0])


Arrays = tuple[np.ndarray, np.ndarray]


def training_targets(params: Params, spec: ModelSpec) -> Callable[[np.ndarray, np.ndarray], Arrays]:
    """(x, y) → what the model reads and what the loss compares with: labels, a standardised
    target, or the input itself. Applied to whole splits, or to each streamed chunk."""
    if params.task == "anomaly":  # an autoencoder reconstructs its (normal-only) input
        return lambda x, y: (x, x.copy())
    if params.is_classification:
        if params.train.loss == "bce":
            return lambda x, y: (x, y.astype(np.float32))
        return lambda x, y: (x, y)
    center, scale = spec.target_center, spec.target_scale  # the head undoes this
    return lambda x, y: (x, ((y - center) / scale).astype(np.float32))


def settings_from(params: Params) -> TrainSettings:
    from neuroflow.training.engine import TrainSettings

    t = params.train
    loss = t.loss
    if loss == "auto":  # anomaly: mse on the reconstruction
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
        threads=params.runtime.cpu_threads,
        cuda_graphs=t.cuda_graphs,
    )
