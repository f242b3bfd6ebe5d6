"""Which way is better for a metric: the one definition every ranking in neuroflow uses.

The promotion gate, the sweep's pick of the best trial, tune's Optuna direction and the training
engine's early stopping all ask `lower_is_better`, so they can never rank the same models in
opposite orders. A leaf module (standard library only): the engine imports it with torch alone.
"""

from __future__ import annotations

from typing import Literal

# Errors and losses: smaller is better. Any other metric (accuracy, roc_auc, r2, f1_macro, ...)
# is a score: larger is better. `*loss` covers log_loss, loss, val_loss, best_val_loss.
LOWER_IS_BETTER = frozenset(
    {"rmse", "mae", "mse", "mae_vs_naive", "naive_mae", "fid", "fid_real", "fid_ratio"}
)


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER or metric.endswith("loss")


def higher_is_better(metric: str) -> bool:
    return not lower_is_better(metric)


def is_better(metric: str, new: float, best: float, *, margin: float = 0.0) -> bool:
    """`new` beats `best` on `metric` by more than `margin` (in the metric's units)."""
    return new < best - margin if lower_is_better(metric) else new > best + margin


def optuna_direction(metric: str) -> Literal["minimize", "maximize"]:
    return "minimize" if lower_is_better(metric) else "maximize"
