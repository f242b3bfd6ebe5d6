"""The memory-lean data path gives the same answers as the plain pandas one it replaced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuroflow.data.sources import normalise_types, read_parquet
from neuroflow.errors import DataError
from neuroflow.features import transform
from neuroflow.features.transform import PreprocessOptions, fit_preprocessor
from neuroflow.stages.preprocess import encode_target
from neuroflow.stages.validate import duplicated_rows
from neuroflow.validation.runner import widen_for_gx

FLOATS = ["float16", "float32", "float64", "Float32Dtype", "Float64Dtype"]


def test_float32_stays_float32_and_other_numerics_become_float64(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "f32": np.arange(4, dtype=np.float32) / 3,
            "i8": np.arange(4, dtype=np.int8),
            "nullable": pd.array([1, None, 3, 4], dtype="Int64"),
            "flag": [True, False, True, True],
            "y": [0, 1, 0, 1],
        }
    )
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    source = read_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(source, frame)
    out, numeric, categorical = normalise_types(source, target="y", categorical=[])
    assert numeric == ["f32", "i8", "nullable"] and categorical == ["flag"]
    assert {c: str(t) for c, t in out.dtypes.items()} == {
        "f32": "float32",
        "i8": "float64",
        "nullable": "float64",
        "flag": "string",
        "y": "int64",
    }
    assert np.isnan(out["nullable"][1]) and out["f32"].equals(frame["f32"])
    assert str(source["i8"].dtype) == "int8"  # the input frame is left as it was


def test_duplicated_rows_matches_pandas_on_nan_signed_zero_and_missing_strings() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame(
        {
            "x": rng.integers(0, 4, n).astype(np.float32),
            "s": pd.array(rng.choice(["a", "b", None], n), dtype="string"),
            "y": rng.integers(0, 2, n),
        }
    )
    frame.loc[::5, "x"] = np.nan
    frame.loc[::7, "x"] = -0.0  # equal to 0.0, so a duplicate of it
    expected = frame.duplicated(keep="first").to_numpy()
    assert expected.any() and not expected.all()
    assert np.array_equal(duplicated_rows(frame), expected)
    unique = pd.DataFrame({"x": rng.normal(size=500)})
    assert not duplicated_rows(unique).any()


def test_transform_in_row_blocks_equals_the_whole_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    n = 50
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n).astype(np.float32),
            "c": pd.array(rng.choice(["u", "v", None], n), dtype="string"),
        }
    )
    frame.loc[::4, "a"] = np.nan
    for options in (PreprocessOptions(), PreprocessOptions(scale="robust", pca=2)):
        pre = fit_preprocessor(
            frame,
            pd.Series(rng.integers(0, 2, n)),
            numeric=["a", "b"],
            categorical=["c"],
            options=options,
            classification=True,
        )
        whole = (pre.encode(frame)[:, pre.selected] - pre.center) / pre.scale
        if pre.pca_components:
            whole = (whole - pre.pca_mean) @ np.asarray(pre.pca_components).T
        monkeypatch.setattr(transform, "TRANSFORM_ROWS", 7)  # blocks that do not divide n
        assert np.array_equal(pre.transform(frame), whole.astype(np.float32))


def test_encode_target_maps_labels_and_names_unknown_ones() -> None:
    labels = pd.Series(np.array([1, 0, 1, 1], dtype=np.int8))
    assert encode_target(labels, [0, 1], "val").tolist() == [1, 0, 1, 1]
    words = pd.Series(["b", "a"], dtype="string")
    assert encode_target(words, ["a", "b"], "val").tolist() == [1, 0]
    with pytest.raises(DataError, match=r"split 'test'.*\['7'\]"):
        encode_target(pd.Series([0, 7]), [0, 1], "test")


def test_widening_for_gx_never_changes_a_type_rule_verdict() -> None:
    frame = pd.DataFrame(
        {
            "family": np.ones(3, np.float32),
            "only32": np.ones(3, np.float32),
            "free": np.ones(3, np.int8),
            "wide": np.ones(3),
        }
    )
    rules = [
        ("family", "type_list", FLOATS),
        ("only32", "type_list", ["float32"]),  # float64 would fail this rule: not widened
        ("wide", "type_", "float64"),
    ]
    suite = {
        "name": "s",
        "expectations": [
            {
                "type": "expect_column_values_to_be_in_type_list"
                if key == "type_list"
                else "expect_column_values_to_be_of_type",
                "kwargs": {"column": column, key: value},
            }
            for column, key, value in rules
        ],
    }
    seen = {c: str(t) for c, t in widen_for_gx(frame, suite).dtypes.items()}
    assert seen == {"family": "float64", "only32": "float32", "free": "int64", "wide": "float64"}
    assert str(frame["family"].dtype) == "float32"
