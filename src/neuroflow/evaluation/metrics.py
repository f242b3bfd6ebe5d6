"""Metrics by task. Keys are stable: DVC metrics, MLflow and the promotion gate read them."""

from __future__ import annotations

from typing import Any

import numpy as np

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
    from sklearn import metrics as skm

    labels = list(range(len(classes)))
    y_pred = proba.argmax(axis=1)
    clipped = np.clip(proba, 1e-15, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    overall = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision_macro": float(
            skm.precision_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "recall_macro": float(
            skm.recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "f1_macro": float(
            skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "log_loss": float(skm.log_loss(y_true, clipped, labels=labels)),
    }
    present = np.unique(y_true)
    if len(present) < 2:
        overall["roc_auc"] = float("nan")
    elif len(classes) == 2:
        overall["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
    else:
        overall["roc_auc"] = float(
            skm.roc_auc_score(y_true, clipped, multi_class="ovr", average="macro", labels=labels)
        )
    prec, rec, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = {
        str(cls): {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, cls in enumerate(classes)
    }
    return overall, per_class


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn import metrics as skm

    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)),
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
    from sklearn import metrics as skm

    flagged = scores > threshold
    both = len(np.unique(is_anomaly)) == 2
    return {
        "roc_auc": float(skm.roc_auc_score(is_anomaly, scores)) if both else float("nan"),
        "average_precision": (
            float(skm.average_precision_score(is_anomaly, scores)) if both else float("nan")
        ),
        "threshold": float(threshold),
        "precision": float(skm.precision_score(is_anomaly, flagged, zero_division=0)),
        "recall": float(skm.recall_score(is_anomaly, flagged, zero_division=0)),
        "f1": float(skm.f1_score(is_anomaly, flagged, zero_division=0)),
    }
