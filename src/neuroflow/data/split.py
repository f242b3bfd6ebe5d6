"""Deterministic, seeded train / val / test splits, stratified for classification."""

from __future__ import annotations

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
    from sklearn.model_selection import train_test_split

    labels = target.reset_index(drop=True)
    if len(labels) < 3:  # scikit-learn's own error speaks of n_samples and train_size
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
    rest, test = train_test_split(
        everything, test_size=test_fraction, random_state=seed, stratify=strat(everything)
    )
    train, val = train_test_split(
        rest,
        test_size=val_fraction / (1.0 - test_fraction),
        random_state=seed,
        stratify=strat(rest),
    )
    return {"train": train, "val": val, "test": test}


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
