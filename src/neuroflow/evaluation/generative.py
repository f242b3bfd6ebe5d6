"""Scores for generated samples: Fréchet distance and Inception Score (numpy only).

Both follow the FID / IS recipes with a domain classifier in place of Inception-v3: features
are the rating classifier's penultimate activations, probabilities its softmax. The scores are
reported beside the same scores for held-out real rows, which is the reference a number like
"FD 4.2" needs: the sampling noise of a few hundred rows alone gives real-vs-real a distance
above zero.

Numpy only (no scipy): the training engine scores each epoch with `frechet_distance` too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Bar of the generative task: generated-vs-real FD at most this multiple of real-vs-real.
FD_RATIO_BAR = 3.0


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(a)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of `a` and `b` (same width).

    ||mu_a - mu_b||² + tr(S_a) + tr(S_b) - 2 tr((S_a^½ S_b S_a^½)^½); the last trace equals
    tr((S_a S_b)^½) and stays real and stable because the inner matrix is symmetric PSD.
    """
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(
            f"frechet_distance needs at least two rows per side, got {len(a)}, {len(b)}"
        )
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"frechet_distance: widths differ ({a.shape[1]} vs {b.shape[1]})")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
    root = _sqrtm_psd(cov_a)
    inner = root @ cov_b @ root
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)
    return max(fd, 0.0)  # rounding can leave -1e-12 for identical sets


def inception_score(probs: np.ndarray, eps: float = 1e-12) -> float:
    """exp(E_x KL(p(y|x) || p(y))): high when each sample is confidently one class and the
    classes are spread; between 1 and the number of classes."""
    p = np.asarray(probs, dtype=np.float64)
    marginal = p.mean(axis=0, keepdims=True)
    kl = (p * (np.log(p + eps) - np.log(marginal + eps))).sum(axis=1)
    return float(np.exp(kl.mean()))


def class_histogram(probs: np.ndarray, classes: int) -> list[int]:
    """How many samples the rater assigns to each class (argmax)."""
    return np.bincount(np.asarray(probs).argmax(axis=1), minlength=classes).astype(int).tolist()


def generative_scores(
    fake_features: np.ndarray,
    fake_probs: np.ndarray,
    real_features: np.ndarray,
    real_probs: np.ndarray,
    reference_features: np.ndarray,
) -> dict[str, Any]:
    """The generative task's test metrics.

    `reference_*` is the held-out real set both sides are compared with (the test split);
    `real_*` is another held-out real set of the same size as the generated one (the validation
    split), so `fid_real` carries the same sample-size bias as `fid`.
    """
    classes = fake_probs.shape[1]
    fid = frechet_distance(fake_features, reference_features)
    fid_real = frechet_distance(real_features, reference_features)
    histogram = class_histogram(fake_probs, classes)
    return {
        "fid": fid,
        "fid_real": fid_real,
        "fid_ratio": fid / fid_real if fid_real > 0 else float("inf"),
        "inception_score": inception_score(fake_probs),
        "inception_score_real": inception_score(real_probs),
        "classes_generated": sum(1 for c in histogram if c > 0),
        "classes": classes,
        "class_histogram": histogram,
    }


def meets_bar(scores: dict[str, Any]) -> bool:
    """The preset's bar: FD within FD_RATIO_BAR × real-vs-real, and no class left empty."""
    return bool(
        scores["fid_ratio"] <= FD_RATIO_BAR and scores["classes_generated"] == scores["classes"]
    )
