"""Hyperparameter search with Optuna (TPE, grid or random), every trial a nested MLflow run.

Trials train in memory on the processed train split and are judged on the validation split's
loss (the quantity early stopping also watches), so the test split is never looked at. Only
`model.*` and `train.*` keys can be searched: other keys change the data, which needs the DVC
pipeline (run those as experiments). The best values are written as a preset-format YAML.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from neuroflow.config import Params, Paths
from neuroflow.errors import ConfigError
from neuroflow.evaluation.direction import optuna_direction
from neuroflow.io import write_text
from neuroflow.processed import load_split
from neuroflow.search.common import context, fit_once

log = logging.getLogger(__name__)

SEARCHABLE = ("model.", "train.")


class TuneError(ConfigError):
    """The search space is invalid; the message names the key."""


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _check_space(space: dict[str, dict[str, Any]]) -> None:
    if not space:
        raise TuneError("tune.space is empty")
    for key, spec in space.items():
        if not key.startswith(SEARCHABLE):
            raise TuneError(f"tune.space: {key!r} is not a model.* or train.* key")
        if "choices" not in spec and not {"low", "high"} <= spec.keys():
            raise TuneError(f"tune.space.{key}: give 'choices' or 'low' and 'high'")


def _suggest(trial: Any, key: str, spec: dict[str, Any]) -> Any:
    if "choices" in spec:
        choices = spec["choices"]
        # Optuna's categorical values must be scalars: lists (e.g. model.hidden) go by index.
        if any(isinstance(c, list | dict) for c in choices):
            return choices[trial.suggest_categorical(key, list(range(len(choices))))]
        return trial.suggest_categorical(key, choices)
    if spec.get("int"):
        return trial.suggest_int(
            key, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log"))
        )
    return trial.suggest_float(
        key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log"))
    )


def _sampler(params: Params) -> Any:
    import optuna

    cfg = params.tune
    if cfg.sampler == "grid":
        grid = {}
        for key, spec in cfg.space.items():
            if "choices" not in spec:
                raise TuneError(f"tune.sampler=grid needs 'choices' for {key!r}")
            choices = spec["choices"]
            grid[key] = (
                list(range(len(choices)))
                if any(isinstance(c, list | dict) for c in choices)
                else choices
            )
        return optuna.samplers.GridSampler(grid, seed=params.seed)
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=params.seed)
    return optuna.samplers.TPESampler(seed=params.seed)


def tune(params: Params, paths: Paths, trials: int | None = None) -> dict[str, Any]:
    import mlflow
    import optuna
    import yaml

    from neuroflow import tracking
    from neuroflow.config import ParamsError, with_overrides

    cfg = params.tune
    _check_space(cfg.space)
    n_trials = trials or cfg.trials
    schema, affine = context(paths)
    x_tr, y_tr = load_split(paths, "train")
    x_va, y_va = load_split(paths, "val")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    tracking.client(paths.root)  # sets the tracking URI and creates the store
    mlflow.set_experiment(params.registry.experiment)
    with (
        tracking.reachable(mlflow.get_tracking_uri()),
        mlflow.start_run(run_name=f"tune-{cfg.sampler}") as parent,
    ):
        mlflow.log_params({"tune.sampler": cfg.sampler, "tune.trials": n_trials})

        def objective(trial: Any) -> float:
            values = {key: _suggest(trial, key, spec) for key, spec in cfg.space.items()}
            try:
                trial_params = with_overrides(params, values, "tune.space")
            except ParamsError as exc:
                raise TuneError(f"tune.space gives invalid params {values}: {exc}") from exc
            with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
                mlflow.log_params({k: str(v) for k, v in values.items()})
                _, result = fit_once(trial_params, schema, affine, x_tr, y_tr, x_va, y_va)
                mlflow.log_metrics(
                    {"best_val_loss": result.best_val_loss, "best_epoch": result.best_epoch}
                )
            trial.set_user_attr("values", values)
            return float(result.best_val_loss)

        study = optuna.create_study(
            direction=optuna_direction("val_loss"), sampler=_sampler(params)
        )
        study.optimize(objective, n_trials=n_trials)
        best = study.best_trial.user_attrs["values"]
        mlflow.log_metric("best_val_loss", study.best_value)
        mlflow.log_params({f"best.{k}": str(v) for k, v in best.items()})
        run_id = parent.info.run_id

    output = Path(cfg.output)
    output = output if output.is_absolute() else paths.root / output
    header = (
        f"# Best of {len(study.trials)} {cfg.sampler} trials (val loss {study.best_value:.6g}),\n"
        f"# MLflow run {run_id}. Apply: neuroflow run-preset --file {cfg.output}\n"
    )
    write_text(output, header + yaml.safe_dump(_nested(best), sort_keys=True))
    log.info("tune: best val loss %.5g with %s → %s", study.best_value, best, output)
    return {
        "best": best,
        "best_val_loss": study.best_value,
        "output": str(output),
        "run_id": run_id,
    }
