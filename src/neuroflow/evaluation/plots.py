"""Plot data for DVC (JSON rows) and rendered PNGs for MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def confusion_rows(y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any]) -> list[dict]:
    """One row per test example, DVC's `confusion` template counts them."""
    names = [str(c) for c in classes]
    return [
        {"actual": names[int(t)], "predicted": names[int(p)]}
        for t, p in zip(y_true, y_pred, strict=True)
    ]


def roc_rows(y_true: np.ndarray, proba: np.ndarray, classes: list[Any]) -> list[dict]:
    """ROC points; for more than two classes, one-vs-rest per class (column `class`)."""
    from sklearn.metrics import roc_curve

    rows: list[dict] = []
    positive = [1] if len(classes) == 2 else list(range(len(classes)))
    for idx in positive:
        truth = (y_true == idx).astype(int)
        if truth.min() == truth.max():
            continue
        fpr, tpr, thr = roc_curve(truth, proba[:, idx])
        rows.extend(
            {
                "class": str(classes[idx]),
                "fpr": float(f),
                "tpr": float(t),
                "threshold": float(min(th, 1.0)),
            }
            for f, t, th in zip(fpr, tpr, thr, strict=True)
        )
    return rows


def residual_rows(y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
    return [
        {"actual": float(t), "predicted": float(p), "residual": float(t - p)}
        for t, p in zip(y_true, y_pred, strict=True)
    ]


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on CI or servers
    import matplotlib.pyplot as plt

    return plt


def save_history_png(history: list[dict], path: Path) -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Training vs validation loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_confusion_png(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any], path: Path
) -> None:
    from sklearn.metrics import confusion_matrix

    plt = _figure()
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))))
    fig, ax = plt.subplots(figsize=(4 + 0.3 * len(classes), 4 + 0.3 * len(classes)))
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(classes))
    ax.set_xticks(list(ticks), [str(c) for c in classes])
    ax.set_yticks(list(ticks), [str(c) for c in classes])
    for i in ticks:
        for j in ticks:
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_roc_png(rows: list[dict], path: Path) -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 5))
    for cls in dict.fromkeys(r["class"] for r in rows):
        pts = [r for r in rows if r["class"] == cls]
        ax.plot([r["fpr"] for r in pts], [r["tpr"] for r in pts], label=f"class {cls}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC (test)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_residuals_png(y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(y_pred, y_true - y_pred, s=8)
    ax.axhline(0, color="grey", linestyle="--")
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (actual - predicted)")
    ax.set_title("Residuals (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
