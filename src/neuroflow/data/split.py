"""Deterministic, seeded train / val / test splits, stratified for classification."""

from __future__ import annotations

import pandas as pd


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
    """`bins` > 1 (regression): stratify on quantile bins of the target, so a small test split
    is not by chance all easy or all extreme rows."""
    from sklearn.model_selection import train_test_split

    def strat(part: pd.DataFrame) -> pd.Series | None:
        if bins > 1 and not stratify:
            binned = pd.qcut(part[target], bins, labels=False, duplicates="drop")
            return binned if binned.value_counts().min() >= 2 else None
        if not stratify:
            return None
        counts = part[target].value_counts()
        # Stratifying needs two rows per class; otherwise fall back to a plain shuffle.
        return part[target] if counts.min() >= 2 else None

    rest, test = train_test_split(
        frame, test_size=test_fraction, random_state=seed, stratify=strat(frame)
    )
    train, val = train_test_split(
        rest,
        test_size=val_fraction / (1.0 - test_fraction),
        random_state=seed,
        stratify=strat(rest),
    )
    return {
        "train": train.reset_index(drop=True),
        "val": val.reset_index(drop=True),
        "test": test.reset_index(drop=True),
    }
