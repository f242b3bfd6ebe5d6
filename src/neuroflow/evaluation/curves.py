"""Curves and matrices for the evaluation report, in numpy (see `batched` for why not sklearn).

The points are scikit-learn's: the same thresholds, the same dropped collinear ROC points, the
same precision-recall end point; unit tests compare them on data with ties.
"""

from __future__ import annotations

import numpy as np


def _cumulative_counts(
    positive: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives when flagging every row scoring >= each distinct score,
    from the highest score down; and those scores."""
    order = np.argsort(score, kind="stable")[::-1]
    ordered = score[order]
    hits = positive[order].astype(np.float64)
    last_of_tie = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]
    tps = np.cumsum(hits)[last_of_tie]
    fps = 1 + last_of_tie - tps
    return fps, tps, ordered[last_of_tie]


def roc_curve(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """(fpr, tpr, thresholds) from (0, 0) at threshold +inf; collinear points dropped."""
    fps, tps, thresholds = _cumulative_counts(positive, score)
    if len(fps) > 2:
        corner = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thresholds = fps[corner], tps[corner], thresholds[corner]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thresholds = np.r_[np.inf, thresholds]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full_like(fps, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full_like(tps, np.nan)
    return fpr, tpr, thresholds


def precision_recall_curve(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """(precision, recall, thresholds) by increasing threshold, ending at (1, 0)."""
    fps, tps, thresholds = _cumulative_counts(positive, score)
    flagged = tps + fps
    precision = np.divide(tps, flagged, out=np.zeros_like(tps), where=flagged != 0)
    recall = tps / tps[-1] if tps[-1] > 0 else np.ones_like(tps)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision-recall step curve (no interpolation)."""
    precision, recall, _ = precision_recall_curve(positive, score)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with rows = actual class index, columns = predicted class index."""
    cells = y_true.astype(np.intp) * n_classes + y_pred.astype(np.intp)
    return np.bincount(cells, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


class PcaPlane:
    """The plane of the first two principal components: project rows onto it and back."""

    def __init__(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        self.mean = x.mean(axis=0)
        _, singular, rows = np.linalg.svd(x - self.mean, full_matrices=False)
        self.components = rows[:2]
        variance = singular**2
        total = variance.sum()
        self.explained_variance_ratio = variance[:2] / total if total > 0 else variance[:2]

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray((x - self.mean) @ self.components.T)

    def inverse_transform(self, plane: np.ndarray) -> np.ndarray:
        return np.asarray(plane @ self.components + self.mean)
