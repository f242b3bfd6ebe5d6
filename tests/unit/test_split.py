"""Splits are deterministic for a seed and stratified for classification."""

import numpy as np
import pandas as pd

from neuroflow.data.split import split_frame


def frame(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=n), "y": (rng.random(n) < 0.2).astype(int)})


def split(df: pd.DataFrame, seed: int, stratify: bool = True) -> dict[str, pd.DataFrame]:
    return split_frame(
        df, target="y", stratify=stratify, val_fraction=0.15, test_fraction=0.2, seed=seed
    )


def test_same_seed_same_rows_and_different_seed_different_rows() -> None:
    df = frame()
    a, b, c = split(df, 1), split(df, 1), split(df, 2)
    for name in ("train", "val", "test"):
        pd.testing.assert_frame_equal(a[name], b[name])
    assert not a["test"]["x"].equals(c["test"]["x"])


def test_sizes_and_no_row_in_two_splits() -> None:
    df = frame()
    parts = split(df, 3)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [260, 60, 80]
    rows = pd.concat(parts.values())["x"]
    assert rows.is_unique and len(rows) == len(df)


def test_class_shares_are_kept_in_every_split() -> None:
    df = frame()
    share = df["y"].mean()
    for part in split(df, 4).values():
        assert abs(part["y"].mean() - share) < 0.02
