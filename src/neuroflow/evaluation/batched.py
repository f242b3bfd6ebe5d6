"""Metrics as numpy kernels over a batch of row sets: the one implementation of each metric.

Each kernel takes `y` (B, n) and `proba` (B, n, C) or `value` (B, n) and returns (B,) values;
B is 1 for a plain evaluation and the resample count in the promotion gate's paired bootstrap,
so 1000 resamples of ROC AUC cost milliseconds. Pure numpy on purpose: importing scikit-learn
(or scipy.stats, which it pulls in) costs a stage process over a second of start-up.
Undefined values are NaN (ROC AUC with one class present, R² on a constant target); a ratio
with an empty denominator is 0, like scikit-learn's `zero_division=0`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_EPS = float(np.finfo(np.float32).eps)


def accuracy(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    return np.asarray((proba.argmax(axis=-1) == y).mean(axis=-1), dtype=np.float64)


def class_counts(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, C) true positives, predicted counts and true counts per class."""
    pred = proba.argmax(axis=-1)
    classes = np.arange(proba.shape[-1])
    is_pred = pred[..., None] == classes  # (B, n, C)
    is_true = y[..., None] == classes
    tp = (is_pred & is_true).sum(axis=-2).astype(np.float64)
    return tp, is_pred.sum(axis=-2).astype(np.float64), is_true.sum(axis=-2).astype(np.float64)


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def precision_macro(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    tp, n_pred, _ = class_counts(y, proba)
    return np.asarray(safe_div(tp, n_pred).mean(axis=-1))


def recall_macro(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    tp, _, n_true = class_counts(y, proba)
    return np.asarray(safe_div(tp, n_true).mean(axis=-1))


def f1_macro(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    tp, n_pred, n_true = class_counts(y, proba)
    return np.asarray(safe_div(2 * tp, n_pred + n_true).mean(axis=-1))


def average_ranks(score: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis, tied values sharing their average rank."""
    n = score.shape[-1]
    order = np.argsort(score, axis=-1, kind="stable")
    ordered = np.take_along_axis(score, order, axis=-1)
    position = np.broadcast_to(np.arange(1, n + 1, dtype=np.float64), ordered.shape)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    ends = np.ones(ordered.shape, dtype=bool)
    ends[..., :-1] = starts[..., 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0.0), axis=-1)
    last = np.flip(
        np.minimum.accumulate(np.flip(np.where(ends, position, n + 1.0), -1), axis=-1), -1
    )
    ranks = np.empty(ordered.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2, axis=-1)
    return ranks


def binary_auc(positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC (ties count half); NaN where a row set has one class only, or any NaN
    score (a model emitting NaN must not be ranked as if its NaNs were the highest scores)."""
    ranks = average_ranks(score)
    n_pos = positive.sum(axis=-1).astype(np.float64)
    n_neg = positive.shape[-1] - n_pos
    rank_sum = np.where(positive, ranks, 0.0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    defined = (n_pos > 0) & (n_neg > 0) & ~np.isnan(score).any(axis=-1)
    return np.asarray(np.where(defined, auc, np.nan))


def roc_auc(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    n_classes = proba.shape[-1]
    if n_classes == 2:
        return binary_auc(y == 1, proba[..., 1])
    # One-vs-rest macro average; undefined (NaN) when a class is absent, like scikit-learn.
    per_class = np.stack([binary_auc(y == c, proba[..., c]) for c in range(n_classes)], axis=-1)
    return np.asarray(per_class.mean(axis=-1))


def log_loss(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Mean -log p(true class), p clipped to [eps, 1 - eps] with float32's eps: the models emit
    float32 probabilities, and that is scikit-learn's clip for them, whatever dtype arrives."""
    picked = np.take_along_axis(proba, y[..., None].astype(np.intp), axis=-1)[..., 0]
    clipped = np.clip(picked.astype(np.float64), _EPS, 1.0 - _EPS)
    return np.asarray(-np.log(clipped).mean(axis=-1))


def rmse(y: np.ndarray, value: np.ndarray) -> np.ndarray:
    return np.asarray(np.sqrt(((value - y) ** 2).mean(axis=-1)))


def mae(y: np.ndarray, value: np.ndarray) -> np.ndarray:
    return np.asarray(np.abs(value - y).mean(axis=-1))


def r2(y: np.ndarray, value: np.ndarray) -> np.ndarray:
    ss_res = ((y - value) ** 2).sum(axis=-1)
    ss_tot = ((y - y.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    # A constant target has no variance to explain: 1 for a perfect fit, else 0, as
    # scikit-learn's r2_score (force_finite) says; NaN would break JSON metrics and the gate.
    constant = np.where(ss_res == 0, 1.0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(ss_tot > 0, 1 - ss_res / ss_tot, constant))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "accuracy": accuracy,
    "precision_macro": precision_macro,
    "recall_macro": recall_macro,
    "f1_macro": f1_macro,
    "roc_auc": roc_auc,
    "log_loss": log_loss,
    "rmse": rmse,
    "mae": mae,
    "r2": r2,
}
