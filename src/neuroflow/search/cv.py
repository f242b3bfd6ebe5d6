"""k-fold cross-validation on train + val (test stays unseen): mean ± std per metric.

Folds are stratified for classification and contiguous, in time order, for forecasts (each
fold's validation block is scored by a model that also trains on what follows it: a standard
blocked CV; use it to compare configurations, not as a leak-free backtest). Inside each fold the
fold's validation rows drive early stopping and are then scored, so every fold's number is
optimistic the same way; the spread across folds is the point.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from neuroflow.config import Params, Paths
from neuroflow.io import write_json
from neuroflow.processed import load_split
from neuroflow.search.common import context, fit_once, score

log = logging.getLogger(__name__)


def fold_indices(params: Params, y: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    idx = np.arange(len(y))
    if params.is_classification and np.bincount(y.astype(int)).min() >= folds:
        splitter: Any = StratifiedKFold(folds, shuffle=True, random_state=params.seed)
        return list(splitter.split(idx, y))
    shuffle = params.task != "forecast"
    splitter = KFold(folds, shuffle=shuffle, random_state=params.seed if shuffle else None)
    return list(splitter.split(idx))


def cross_validate(params: Params, paths: Paths) -> dict[str, Any]:
    schema, affine = context(paths)
    x_tr, y_tr = load_split(paths, "train")
    x_va, y_va = load_split(paths, "val")
    x, y = np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])
    per_fold: list[dict[str, float]] = []
    for k, (train_idx, val_idx) in enumerate(fold_indices(params, y, params.cv.folds)):
        head, result = fit_once(
            params, schema, affine, x[train_idx], y[train_idx], x[val_idx], y[val_idx]
        )
        metrics = score(params, head, x[val_idx], y[val_idx], schema["classes"])
        metrics["best_epoch"] = float(result.best_epoch)
        per_fold.append(metrics)
        log.info("cv fold %d/%d: %s", k + 1, params.cv.folds, metrics)
    keys = [k for k in per_fold[0] if all(np.isfinite(f.get(k, np.nan)) for f in per_fold)]
    summary = {
        key: {
            "mean": float(np.mean([f[key] for f in per_fold])),
            "std": float(np.std([f[key] for f in per_fold], ddof=1)),
        }
        for key in keys
    }
    report = {"folds": params.cv.folds, "summary": summary, "per_fold": per_fold}
    write_json(paths.cv_report, report)
    return report
