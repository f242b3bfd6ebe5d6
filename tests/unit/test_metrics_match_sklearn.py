"""The numpy metrics, curves and PCA plane give scikit-learn's values (ties included)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn import metrics as skm
from sklearn.decomposition import PCA

from neuroflow.evaluation import batched, curves
from neuroflow.evaluation.metrics import (
    anomaly_metrics,
    classification_metrics,
    regression_metrics,
)


def _proba(rng: np.random.Generator, y: np.ndarray, n_classes: int, decimals: int) -> np.ndarray:
    """Noisy probabilities; rounding to few decimals makes many tied scores."""
    logits = rng.normal(size=(len(y), n_classes))
    logits[np.arange(len(y)), y] += 1.0
    e = np.exp(logits)
    rounded = np.round(e / e.sum(axis=1, keepdims=True), decimals) + 1e-3
    return rounded / rounded.sum(axis=1, keepdims=True)  # rows sum to 1, as sklearn requires


@pytest.mark.parametrize(("n_classes", "decimals"), [(2, 8), (2, 1), (3, 8), (4, 1)])
def test_classification_metrics(n_classes: int, decimals: int) -> None:
    rng = np.random.default_rng(n_classes * 10 + decimals)
    y = rng.integers(0, n_classes, size=250)
    proba = _proba(rng, y, n_classes, decimals)
    labels = list(range(n_classes))
    overall, per_class = classification_metrics(y, proba, labels)
    pred = proba.argmax(axis=1)
    auc = (
        skm.roc_auc_score(y, proba[:, 1])
        if n_classes == 2
        else skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels)
    )
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision_macro": skm.precision_score(
            y, pred, labels=labels, average="macro", zero_division=0
        ),
        "recall_macro": skm.recall_score(y, pred, labels=labels, average="macro", zero_division=0),
        "f1_macro": skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0),
        "roc_auc": auc,
        "log_loss": skm.log_loss(y, proba, labels=labels),
    }
    assert overall == pytest.approx(expected, abs=1e-12)
    prec, rec, f1, support = skm.precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    for i in labels:
        assert per_class[str(i)] == pytest.approx(
            {"precision": prec[i], "recall": rec[i], "f1": f1[i], "support": support[i]}
        )


def test_log_loss_clips_float32_probabilities_like_sklearn() -> None:
    logits = np.array([[20.0, -20.0], [1.0, 0.0], [0.0, 2.0], [-30.0, 30.0]])
    proba = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    y = np.array([1, 0, 1, 1])  # the first row is confidently wrong: its p is clipped
    overall, _ = classification_metrics(y, proba, [0, 1])
    assert overall["log_loss"] == pytest.approx(skm.log_loss(y, proba), rel=1e-6)


def test_nan_scores_leave_roc_auc_undefined() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=50)
    proba = _proba(rng, y, 2, 8)
    proba[::7] = np.nan  # a model that emits NaN on some rows
    overall, _ = classification_metrics(y, proba, [0, 1])
    assert np.isnan(overall["roc_auc"])
    assert np.isnan(anomaly_metrics(y, proba[:, 1], 0.5)["roc_auc"])


def test_a_class_never_predicted_scores_zero_not_an_error() -> None:
    y = np.array([0, 1, 2, 2, 1, 0])
    proba = np.tile([0.6, 0.4, 0.0], (6, 1))  # always class 0
    overall, per_class = classification_metrics(y, proba, [0, 1, 2])
    assert per_class["2"]["precision"] == 0.0 and per_class["2"]["recall"] == 0.0
    assert overall["precision_macro"] == pytest.approx(
        skm.precision_score(y, proba.argmax(1), average="macro", zero_division=0)
    )


@pytest.mark.parametrize("shape", ["flat", "column"])
def test_regression_metrics(shape: str) -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=120)
    pred = y + rng.normal(scale=0.4, size=120)
    got = regression_metrics(y, pred[:, None] if shape == "column" else pred)
    assert got == pytest.approx(
        {
            "rmse": np.sqrt(skm.mean_squared_error(y, pred)),
            "mae": skm.mean_absolute_error(y, pred),
            "r2": skm.r2_score(y, pred),
        },
        abs=1e-12,
    )


@pytest.mark.parametrize("pred", [np.arange(5.0), np.ones(5)], ids=["imperfect", "perfect"])
def test_r2_on_a_constant_target_is_scikit_learns(pred: np.ndarray) -> None:
    got = regression_metrics(np.ones(5), pred)["r2"]
    assert got == skm.r2_score(np.ones(5), pred) and np.isfinite(got)


def test_anomaly_metrics() -> None:
    rng = np.random.default_rng(6)
    is_anomaly = (rng.random(300) < 0.2).astype(int)
    scores = np.round(rng.normal(size=300) + is_anomaly, 1)  # ties
    threshold = 0.7
    flagged = scores > threshold
    got = anomaly_metrics(is_anomaly, scores, threshold)
    assert got == pytest.approx(
        {
            "roc_auc": skm.roc_auc_score(is_anomaly, scores),
            "average_precision": skm.average_precision_score(is_anomaly, scores),
            "threshold": threshold,
            "precision": skm.precision_score(is_anomaly, flagged, zero_division=0),
            "recall": skm.recall_score(is_anomaly, flagged, zero_division=0),
            "f1": skm.f1_score(is_anomaly, flagged, zero_division=0),
        },
        abs=1e-12,
    )


@pytest.mark.parametrize("decimals", [1, 2, 8])
def test_curves_have_sklearns_points(decimals: int) -> None:
    rng = np.random.default_rng(decimals)
    positive = rng.random(400) < 0.4
    score = np.round(rng.random(400) * 0.7 + 0.3 * positive, decimals)
    for ours, theirs in zip(
        curves.roc_curve(positive, score), skm.roc_curve(positive, score), strict=True
    ):
        np.testing.assert_allclose(ours, theirs)
    for ours, theirs in zip(
        curves.precision_recall_curve(positive, score),
        skm.precision_recall_curve(positive, score),
        strict=True,
    ):
        np.testing.assert_allclose(ours, theirs)
    assert curves.average_precision(positive, score) == pytest.approx(
        skm.average_precision_score(positive, score), abs=1e-12
    )


def test_confusion_matrix() -> None:
    rng = np.random.default_rng(7)
    y, pred = rng.integers(0, 4, size=200), rng.integers(0, 4, size=200)
    np.testing.assert_array_equal(
        curves.confusion_matrix(y, pred, 4), skm.confusion_matrix(y, pred, labels=[0, 1, 2, 3])
    )


def test_average_ranks_share_ties_like_scipy() -> None:
    rng = np.random.default_rng(8)
    for n in (1, 2, 7, 64):
        scores = rng.integers(0, 4, size=(5, n)).astype(float)
        np.testing.assert_allclose(batched.average_ranks(scores), rankdata(scores, axis=-1))


def test_pca_plane_matches_sklearn_up_to_sign() -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    ours, theirs = curves.PcaPlane(x), PCA(n_components=2).fit(x)
    np.testing.assert_allclose(ours.explained_variance_ratio, theirs.explained_variance_ratio_)
    projected, expected = ours.transform(x), theirs.transform(x)
    signs = np.sign((projected * expected).sum(axis=0))
    np.testing.assert_allclose(projected * signs, expected, atol=1e-9)
    np.testing.assert_allclose(
        ours.inverse_transform(projected), theirs.inverse_transform(expected), atol=1e-9
    )
