"""Metrics by task. Keys are stable: DVC metrics, MLflow and the promotion gate read them."""

from __future__ import annotations

from typing import Any

import numpy as np

from neuroflow.evaluation import batched

CLASSIFICATION_KEYS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc",
    "log_loss",
)
REGRESSION_KEYS = ("rmse", "mae", "r2")


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: list[Any]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Overall metrics and per-class precision / recall / f1 / support.

    `y_true` holds class indices into `classes`; `proba` is (n, n_classes).
    """
    y, p = y_true[None, :], proba[None, :, :]  # a batch of one row set
    overall = {name: float(batched.METRICS[name](y, p)[0]) for name in CLASSIFICATION_KEYS}
    tp, n_pred, n_true = (a[0] for a in batched.class_counts(y, p))
    precision = batched.safe_div(tp, n_pred)
    recall = batched.safe_div(tp, n_true)
    f1 = batched.safe_div(2 * tp, n_pred + n_true)
    per_class = {
        str(cls): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(n_true[i]),
        }
        for i, cls in enumerate(classes)
    }
    return overall, per_class


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE and MAE over all values; R² per output column, averaged (NaN on a constant target)."""
    y = y_true.reshape(len(y_true), -1).T.astype(np.float64)  # outputs as the batch axis
    pred = y_pred.reshape(len(y_true), -1).T.astype(np.float64)
    return {
        "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
        "mae": float(np.mean(np.abs(pred - y))),
        "r2": float(np.mean(batched.r2(y, pred))),
    }


def json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    """NaN is not JSON: an undefined metric is written as null."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out[key] = json_safe(value)
        elif isinstance(value, float) and not np.isfinite(value):
            out[key] = None
        else:
            out[key] = value
    return out


def forecast_metrics(y_true: np.ndarray, y_pred: np.ndarray, naive: np.ndarray) -> dict[str, float]:
    """Regression metrics plus the seasonal-naive baseline on the same horizon (MASE-style)."""
    out = regression_metrics(y_true, y_pred)
    naive_mae = float(np.mean(np.abs(y_true - naive)))
    out["naive_mae"] = naive_mae
    out["mae_vs_naive"] = out["mae"] / naive_mae if naive_mae > 0 else float("nan")
    return out


def anomaly_metrics(
    is_anomaly: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """Ranking quality of the score, and the confusion at a threshold chosen on normal rows."""
    from neuroflow.evaluation.curves import average_precision

    positive = is_anomaly.astype(bool)
    flagged = scores > threshold
    tp = float(np.sum(flagged & positive))
    n_flagged, n_positive = float(flagged.sum()), float(positive.sum())
    both = 0 < n_positive < len(positive)
    return {
        "roc_auc": float(batched.binary_auc(positive, scores.astype(np.float64))),
        "average_precision": average_precision(positive, scores) if both else float("nan"),
        "threshold": float(threshold),
        "precision": tp / n_flagged if n_flagged else 0.0,
        "recall": tp / n_positive if n_positive else 0.0,
        "f1": 2 * tp / (n_flagged + n_positive) if n_flagged + n_positive else 0.0,
    }
