"""Plot data for DVC (JSON rows) and rendered PNGs for MLflow."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from neuroflow.io import write_json

# DVC plot data the evaluate stage writes: artifacts/plots/test/<kind>/<kind>.json for the kinds
# that fit the task. Each kind is a folder in dvc.yaml's `plots`, so DVC draws nothing for a kind
# left empty, where a declared but missing file would be reported as a failure.
PLOT_KINDS = ("confusion", "roc", "pr", "calibration", "residuals", "forecast", "samples")
# An empty kind's folder holds this (ignored by DVC in .dvcignore) so git keeps the folder.
PLACEHOLDER = ".gitkeep"


def write_plot_data(root: Path, plot_data: dict[str, list[dict]]) -> None:
    """Rewrite root/<kind>/ for every kind: `<kind>.json` where there are rows, else only the
    placeholder (an earlier run's data for another task is removed, not left to be drawn)."""
    for kind in PLOT_KINDS:
        folder = root / kind
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        if plot_data.get(kind):
            write_json(folder / f"{kind}.json", plot_data[kind])
        else:
            (folder / PLACEHOLDER).touch()


def clear_pngs(folder: Path) -> None:
    """`folder` exists and holds no PNG: an earlier run's (another task's) pictures are gone."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):
        stale.unlink()


def confusion_rows(y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any]) -> list[dict]:
    """One row per test example, DVC's `confusion` template counts them."""
    names = [str(c) for c in classes]
    return [
        {"actual": names[int(t)], "predicted": names[int(p)]}
        for t, p in zip(y_true, y_pred, strict=True)
    ]


def roc_rows(y_true: np.ndarray, proba: np.ndarray, classes: list[Any]) -> list[dict]:
    """ROC points; for more than two classes, one-vs-rest per class (column `class`)."""
    from neuroflow.evaluation.curves import roc_curve

    rows: list[dict] = []
    positive = [1] if len(classes) == 2 else list(range(len(classes)))
    for idx in positive:
        truth = y_true == idx
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


@contextmanager
def png_axes(path: Path, figsize: tuple[float, float]) -> Iterator[Any]:
    """One figure's axes; saved to `path` (PNG) on success and always closed."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on CI or servers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    try:
        yield ax
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def save_history_png(history: list[dict], path: Path) -> None:
    with png_axes(path, figsize=(6, 4)) as ax:
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["train_loss"] for h in history], label="train")
        ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title("Training vs validation loss")
        ax.legend()


def save_confusion_png(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any], path: Path
) -> None:
    from neuroflow.evaluation.curves import confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, len(classes))
    with png_axes(path, figsize=(4 + 0.3 * len(classes), 4 + 0.3 * len(classes))) as ax:
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


def save_roc_png(rows: list[dict], path: Path) -> None:
    with png_axes(path, figsize=(5, 5)) as ax:
        for cls in dict.fromkeys(r["class"] for r in rows):
            pts = [r for r in rows if r["class"] == cls]
            ax.plot([r["fpr"] for r in pts], [r["tpr"] for r in pts], label=f"class {cls}")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("ROC (test)")
        ax.legend()


def save_residuals_png(y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> None:
    with png_axes(path, figsize=(5, 4)) as ax:
        ax.scatter(y_pred, y_true - y_pred, s=8)
        ax.axhline(0, color="grey", linestyle="--")
        ax.set_xlabel("predicted")
        ax.set_ylabel("residual (actual - predicted)")
        ax.set_title("Residuals (test)")


def pr_rows(y_true: np.ndarray, scores: np.ndarray, labels: list[str]) -> list[dict]:
    """Precision-recall points per positive class; `scores` is (n, len(labels)), `y_true`
    holds indices into labels (binary: pass only the positive column and label)."""
    from neuroflow.evaluation.curves import precision_recall_curve

    rows: list[dict] = []
    for idx, name in enumerate(labels):
        truth = y_true == idx if len(labels) > 1 else y_true.astype(bool)
        if truth.min() == truth.max():
            continue
        precision, recall, _ = precision_recall_curve(truth, scores[:, idx])
        rows.extend(
            {"class": name, "recall": float(r), "precision": float(p)}
            for p, r in zip(precision, recall, strict=True)
        )
    return rows


def calibration_rows(correct: np.ndarray, confidence: np.ndarray, bins: int = 10) -> list[dict]:
    """Reliability diagram: mean confidence vs observed frequency per confidence bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "bin": b,
                    "confidence": float(confidence[mask].mean()),
                    "observed": float(correct[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return rows


def forecast_rows(
    times: list[str], actual: np.ndarray, predicted: np.ndarray, naive: np.ndarray
) -> list[dict]:
    return [
        {"step": i, "time": t, "actual": float(a), "predicted": float(p), "naive": float(n)}
        for i, (t, a, p, n) in enumerate(zip(times, actual, predicted, naive, strict=True))
    ]


def save_pr_png(rows: list[dict], path: Path) -> None:
    with png_axes(path, figsize=(5, 5)) as ax:
        for cls in dict.fromkeys(r["class"] for r in rows):
            pts = [r for r in rows if r["class"] == cls]
            ax.plot([r["recall"] for r in pts], [r["precision"] for r in pts], label=f"class {cls}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title("Precision-recall (test)")
        if rows:
            ax.legend()


def save_calibration_png(rows: list[dict], path: Path) -> None:
    with png_axes(path, figsize=(5, 5)) as ax:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
        ax.plot(
            [r["confidence"] for r in rows],
            [r["observed"] for r in rows],
            marker="o",
            label="model",
        )
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed frequency")
        ax.set_title("Calibration (test)")
        ax.legend()


def save_forecast_png(rows: list[dict], path: Path) -> None:
    with png_axes(path, figsize=(8, 4)) as ax:
        steps = [r["time"] for r in rows]
        ax.plot(steps, [r["actual"] for r in rows], label="actual", color="black")
        ax.plot(steps, [r["predicted"] for r in rows], label="forecast")
        ax.plot(steps, [r["naive"] for r in rows], label="seasonal naive", linestyle="--")
        ax.set_xlabel("time")
        ax.set_title("One-step forecast vs actual (test)")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.legend()


def save_decision_boundary_png(
    head: Any, x: np.ndarray, y: np.ndarray, classes: list[Any], path: Path
) -> None:
    """Predicted class over the plane of the first two principal components of `x`.

    Points of the plane are mapped back to feature space (PCA inverse transform) and classified:
    a 2-D slice through the model's decision function, with the test rows projected on it.
    """
    import torch

    from neuroflow.evaluation.curves import PcaPlane

    pca = PcaPlane(x)
    xy = pca.transform(x)
    pad = 0.5
    gx, gy = np.meshgrid(
        np.linspace(xy[:, 0].min() - pad, xy[:, 0].max() + pad, 150),
        np.linspace(xy[:, 1].min() - pad, xy[:, 1].max() + pad, 150),
    )
    grid = pca.inverse_transform(np.c_[gx.ravel(), gy.ravel()]).astype(np.float32)
    with torch.inference_mode():
        pred = head(torch.from_numpy(grid)).numpy().argmax(axis=1).reshape(gx.shape)
    with png_axes(path, figsize=(6, 5)) as ax:
        ax.contourf(gx, gy, pred, levels=np.arange(len(classes) + 1) - 0.5, alpha=0.3, cmap="tab10")
        scatter = ax.scatter(
            xy[:, 0], xy[:, 1], c=y, s=12, cmap="tab10", vmin=0, vmax=9, edgecolors="k"
        )
        ax.set_xlabel(f"PC1 ({pca.explained_variance_ratio[0]:.0%} var.)")
        ax.set_ylabel(f"PC2 ({pca.explained_variance_ratio[1]:.0%} var.)")
        ax.set_title("Decision regions on the PCA plane (test rows)")
        handles = scatter.legend_elements()[0][: len(classes)]
        ax.legend(handles, [str(c) for c in classes], title="actual", fontsize=7)
