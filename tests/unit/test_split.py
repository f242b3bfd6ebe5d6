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


def _sklearn_split(labels: pd.Series, seed: int, stratify: bool, bins: int) -> list[np.ndarray]:
    """What the splits were when they called scikit-learn's train_test_split."""
    from sklearn.model_selection import train_test_split

    from neuroflow.data.split import split_indices

    def strat(part: pd.Series) -> pd.Series | None:
        if bins > 1 and not stratify:
            binned = pd.Series(pd.qcut(part, bins, labels=False, duplicates="drop"))
            return binned if binned.value_counts().min() >= 2 else None
        return part if stratify and part.value_counts().min() >= 2 else None

    everything = np.arange(len(labels))
    rest, test = train_test_split(
        everything, test_size=0.2, random_state=seed, stratify=strat(labels.iloc[everything])
    )
    train, val = train_test_split(
        rest, test_size=0.15 / 0.8, random_state=seed, stratify=strat(labels.iloc[rest])
    )
    ours = split_indices(
        labels, stratify=stratify, val_fraction=0.15, test_fraction=0.2, seed=seed, bins=bins
    )
    return [train, val, test, ours["train"], ours["val"], ours["test"]]


def test_rows_are_scikit_learns_for_every_seed_and_kind_of_target() -> None:
    rng = np.random.default_rng(7)
    targets = {
        "binary": pd.Series((rng.random(569) < 0.37).astype(int)),
        "three strings": pd.Series(rng.choice(["a", "bb", "c"], size=178, p=[0.3, 0.4, 0.3])),
        "ten classes": pd.Series(rng.integers(0, 10, size=1797)),
        "tiny": pd.Series([0, 1] * 6),
        "one rare": pd.Series([0] * 40 + [1]),  # stratifying impossible: a plain shuffle
        "regression": pd.Series(rng.normal(size=442)),
    }
    for name, labels in targets.items():
        numeric = pd.api.types.is_numeric_dtype(labels)
        for seed in (0, 1, 42, 1234):
            for stratify, bins in ((True, 0), (False, 0), (False, 10)):
                if (name == "regression" and stratify) or (bins and not numeric):
                    continue  # stratified regression / quantile bins of strings: never asked
                t, v, te, our_t, our_v, our_te = _sklearn_split(labels, seed, stratify, bins)
                for theirs, ours in ((t, our_t), (v, our_v), (te, our_te)):
                    np.testing.assert_array_equal(ours, theirs, err_msg=f"{name} seed {seed}")
