"""Deterministic, seeded train / val / test splits, stratified for classification.

The draws are scikit-learn's `train_test_split` (ShuffleSplit / StratifiedShuffleSplit) done in
numpy: the same rows for the same seed (tests/unit/test_split.py compares them), without
importing scikit-learn (~1.5 s) in the ingest stage.
"""

from __future__ import annotations

from math import ceil

import numpy as np
import pandas as pd

from neuroflow.errors import DataError


def split_indices(
    target: pd.Series,
    *,
    stratify: bool,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    bins: int = 0,
) -> dict[str, np.ndarray]:
    """Row positions of each split, from the target column alone.

    Splitting positions instead of the frame picks exactly the rows (in the same order) that
    splitting the frame would, without copying the frame into two intermediate halves; the
    caller materialises one split at a time. `bins` > 1 (regression): stratify on quantile
    bins of the target, so a small test split is not by chance all easy or all extreme rows.
    """
    labels = target.reset_index(drop=True)
    if len(labels) < 3:
        raise DataError(
            f"{len(labels)} row(s) cannot make train, val and test splits: at least 3 are needed "
            "(and far more to learn anything)"
        )

    def strat(positions: np.ndarray) -> pd.Series | None:
        part = labels.iloc[positions]
        if bins > 1 and not stratify:
            binned = pd.Series(pd.qcut(part, bins, labels=False, duplicates="drop"))
            return binned if binned.value_counts().min() >= 2 else None
        if not stratify:
            return None
        # Stratifying needs two rows per class; otherwise fall back to a plain shuffle.
        return part if part.value_counts().min() >= 2 else None

    everything = np.arange(len(labels))
    rest, test = _draw(everything, test_fraction, seed, strat(everything))
    train, val = _draw(rest, val_fraction / (1.0 - test_fraction), seed, strat(rest))
    return {"train": train, "val": val, "test": test}


def _draw(
    rows: np.ndarray, fraction: float, seed: int, labels: pd.Series | None
) -> tuple[np.ndarray, np.ndarray]:
    """`train_test_split(rows, test_size=fraction, random_state=seed, stratify=labels)`."""
    n_test = ceil(fraction * len(rows))
    n_train = len(rows) - n_test
    if n_train <= 0:
        raise DataError(f"{len(rows)} rows leave no training rows after a {fraction:.0%} split")
    rng = np.random.RandomState(seed)
    if labels is None:
        order = rng.permutation(len(rows))
        return rows[order[n_test:]], rows[order[:n_test]]
    train, test = _stratified(np.asarray(labels), n_train, n_test, rng)
    return rows[train], rows[test]


def _stratified(
    y: np.ndarray, n_train: int, n_test: int, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """StratifiedShuffleSplit's one split: each class's share of train and test, drawn in the
    same order from `rng` as scikit-learn draws it."""
    classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    for size, name in ((n_train, "training"), (n_test, "held-out")):
        if size < len(classes):
            raise DataError(
                f"a stratified split needs a {name} row per class: {size} rows for "
                f"{len(classes)} classes; add rows or raise the split fractions"
            )
    class_rows = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i, count in enumerate(class_counts):
        shuffled = class_rows[i].take(rng.permutation(count), mode="clip")
        train.extend(shuffled[: n_i[i]])
        test.extend(shuffled[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def _approximate_mode(
    class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState
) -> np.ndarray:
    """The most likely per-class counts of `n_draws` drawn without replacement; ties in the
    remainders are broken at random (scikit-learn's `_approximate_mode`)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            add_now = min(len(tied), need_to_add)
            floored[rng.choice(tied, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def split_frame(
    frame: pd.DataFrame,
    *,
    target: str,
    stratify: bool,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    bins: int = 0,
) -> dict[str, pd.DataFrame]:
    """The splits of `frame` (see `split_indices`), each with a fresh 0..n-1 index."""
    positions = split_indices(
        frame[target],
        stratify=stratify,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        bins=bins,
    )
    return {name: frame.take(rows).reset_index(drop=True) for name, rows in positions.items()}
