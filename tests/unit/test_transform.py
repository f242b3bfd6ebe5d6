"""Fit-on-train preprocessing: statistics come from train only; JSON round-trips exactly."""

import json

import numpy as np
import pandas as pd
import pytest

from neuroflow.features.transform import (
    FittedPreprocessor,
    PreprocessOptions,
    fit_preprocessor,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame(
        {
            "a": rng.normal(10, 2, n),
            "b": rng.normal(-3, 5, n),
            "noise": rng.normal(0, 1, n),
            "color": rng.choice(["red", "green", "blue"], n),
        }
    )
    df.loc[::10, "a"] = np.nan
    df.loc[::7, "color"] = None
    df["color"] = df["color"].astype("string")
    return df


def fit(df: pd.DataFrame, **opts: object) -> FittedPreprocessor:
    y = (df["b"].fillna(0) > -3).astype(int)
    return fit_preprocessor(
        df,
        y,
        numeric=["a", "b", "noise"],
        categorical=["color"],
        options=PreprocessOptions(**opts),
        classification=True,  # type: ignore[arg-type]
    )


def test_standard_scaling_uses_train_statistics_only(frame: pd.DataFrame) -> None:
    train, test = frame.iloc[:150], frame.iloc[150:]
    pre = fit(train)
    x_train = pre.transform(train)
    assert np.allclose(x_train[:, :3].mean(axis=0), 0, atol=1e-6)
    assert pre.impute_values[0] == pytest.approx(train["a"].median())
    # The test split is transformed with train's numbers, not its own.
    x_test = pre.transform(test)
    expected = (test["b"].to_numpy() - train["b"].mean()) / train["b"].std(ddof=0)
    assert np.allclose(x_test[:, 1], expected, atol=1e-5)


def test_missing_values_are_imputed_and_unseen_categories_encode_to_zeros(
    frame: pd.DataFrame,
) -> None:
    pre = fit(frame)
    new = frame.head(3).copy()
    new["a"] = np.nan
    new["color"] = pd.array(["purple", None, "red"], dtype="string")
    x = pre.transform(new)
    assert np.isfinite(x).all()
    onehot = x[:, 3:]
    assert onehot.shape[1] == len(pre.categories["color"])
    assert onehot[0].sum() == 0  # unseen → all zeros
    assert onehot[2].sum() == 1


@pytest.mark.parametrize("scale", ["standard", "minmax", "robust", "none"])
def test_scalers(frame: pd.DataFrame, scale: str) -> None:
    pre = fit(frame, scale=scale)
    x = pre.transform(frame)[:, :3]
    if scale == "minmax":
        assert x.min() >= -1e-6 and x.max() <= 1 + 1e-6
    elif scale == "robust":
        assert np.allclose(np.median(x, axis=0), 0, atol=1e-6)
    elif scale == "none":
        assert np.allclose(x[:, 1], frame["b"].to_numpy(), atol=1e-4)


@pytest.mark.parametrize("select", ["kbest_f", "kbest_chi2", "kbest_mi"])
def test_kbest_keeps_k_informative_columns(frame: pd.DataFrame, select: str) -> None:
    pre = fit(frame, select=select, k=2)
    assert len(pre.selected) == 2 and pre.transform(frame).shape[1] == 2
    assert "b" in pre.feature_names  # the target is derived from b


def test_variance_threshold_drops_constant_columns(frame: pd.DataFrame) -> None:
    frame = frame.assign(noise=1.0)
    pre = fit(frame, select="variance", variance_threshold=0.0)
    assert "noise" not in pre.feature_names


def test_pca_projects_to_k_components(frame: pd.DataFrame) -> None:
    pre = fit(frame, pca=2)
    x = pre.transform(frame)
    assert x.shape == (len(frame), 2) and pre.feature_names == ["pc0", "pc1"]


def test_json_round_trip_is_exact(frame: pd.DataFrame) -> None:
    pre = fit(frame, pca=2, select="kbest_f", k=3)
    again = FittedPreprocessor.from_json(json.loads(json.dumps(pre.to_json())))
    assert np.array_equal(pre.transform(frame), again.transform(frame))


def test_missing_input_column_is_named(frame: pd.DataFrame) -> None:
    pre = fit(frame)
    with pytest.raises(KeyError, match="color"):
        pre.transform(frame.drop(columns=["color"]))
