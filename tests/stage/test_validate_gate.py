"""Bad data stops the pipeline at validate; nothing downstream runs; the registry is untouched."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import clean_env, run

pytestmark = pytest.mark.slow

Tamper = Callable[[pd.DataFrame], pd.DataFrame]


def _missing_column(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["mean radius"])


def _wrong_type(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["mean texture"] = df["mean texture"].astype(str)
    df.loc[3, "mean texture"] = "n/a"
    return df


def _nan(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[[1, 4], "worst area"] = np.nan
    return df


def _out_of_range(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[2, "mean smoothness"] = -7.5
    return df


def _unknown_label(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[0, "target"] = 7
    return df


CASES: dict[str, tuple[Tamper, list[str]]] = {
    "missing column": (_missing_column, ["expect_table_columns_to_match_set", "mean radius"]),
    "wrong type": (_wrong_type, ["mean texture", "expect_column_values_to_be_in_type_list"]),
    "nan": (_nan, ["worst area", "expect_column_values_to_not_be_null"]),
    "out of range": (
        _out_of_range,
        ["mean smoothness", "expect_column_values_to_be_between", "-7.5"],
    ),
    "unknown label": (_unknown_label, ["'target'", "expect_column_values_to_be_in_set", "7"]),
}


def digest(root: Path, rels: list[str]) -> dict[str, str]:
    out = {}
    for rel in rels:
        for file in sorted((root / rel).rglob("*")) if (root / rel).is_dir() else [root / rel]:
            if file.is_file():
                out[str(file.relative_to(root))] = hashlib.sha256(file.read_bytes()).hexdigest()
    return out


def registry_versions(root: Path) -> list[tuple[str, str]]:
    from mlflow.tracking import MlflowClient

    uri = clean_env(root)["MLFLOW_TRACKING_URI"]
    mlc = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return sorted((v.name, str(v.version)) for v in mlc.search_model_versions())


# Two cases go through `dvc repro` end to end; every case also runs through the stage itself.
THROUGH_DVC = ("missing column", "out of range")


@pytest.mark.parametrize("case", list(CASES))
def test_validate_stage_names_split_column_rule_and_examples(
    pipeline_done: Path, tmp_path: Path, case: str
) -> None:
    from neuroflow.config import Paths, load_params
    from neuroflow.stages.validate import ValidationFailedError
    from neuroflow.stages.validate import run as validate

    root = tmp_path / "copy"
    shutil.copytree(pipeline_done, root, symlinks=True)
    tamper, expected = CASES[case]
    split = root / "data/raw/test.parquet"
    tamper(pd.read_parquet(split)).to_parquet(split, index=False)
    with pytest.raises(ValidationFailedError) as info:
        validate(load_params(root / "params.yaml"), Paths(root=root))
    message = str(info.value)
    assert "split 'test'" in message, message
    for needle in expected:
        assert needle in message, (needle, message)


@pytest.mark.parametrize("case", THROUGH_DVC)
def test_bad_test_split_fails_validate_and_nothing_downstream_runs(
    pipeline_done: Path, tmp_path: Path, case: str
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(pipeline_done, root, symlinks=True)
    downstream = ["data/processed", "artifacts/model", "artifacts/export", "artifacts/metrics.json"]
    before, versions = digest(root, downstream), registry_versions(root)
    good_raw = digest(root, ["data/raw"])

    tamper, expected = CASES[case]
    split = root / "data/raw/test.parquet"
    tamper(pd.read_parquet(split)).to_parquet(split, index=False)

    proc = run(root, "dvc", "repro", "--downstream", "validate", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "split 'test'" in output, output
    for needle in expected:
        assert needle in output, (needle, output[-3000:])
    assert "Running stage 'preprocess'" not in output
    assert digest(root, downstream) == before
    assert registry_versions(root) == versions
    # The last good data is one command away.
    run(root, "dvc", "checkout", "--force", "data/raw")
    assert digest(root, ["data/raw"]) == good_raw
