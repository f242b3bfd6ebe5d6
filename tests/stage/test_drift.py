"""Drift against the train split: the statistics, the validate stage's gate, and later batches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuroflow.config import Params, Paths
from neuroflow.io import write_json
from neuroflow.stages import validate
from neuroflow.validation.drift import DriftConfig, compute_drift, psi

NUMERIC = ["age", "ratio"]
CATEGORICAL = ["color"]
TARGET = "label"


def frame(rows: int, seed: int, *, age_shift: float = 0.0, red: float = 1 / 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rest = (1 - red) / 2
    return pd.DataFrame(
        {
            "age": rng.normal(50 + age_shift, 10, rows),
            "ratio": rng.uniform(0, 1, rows),
            "color": rng.choice(["red", "green", "blue"], rows, p=[red, rest, rest]),
            TARGET: np.array(["no", "yes"])[np.arange(rows) % 2],
        }
    ).astype({"color": "string"})


def test_same_distribution_small_splits_do_not_drift() -> None:
    # 60-row splits: PSI's sampling noise alone reaches ~0.15–0.25; the p-value gate keeps
    # chance from failing the pipeline.
    train = frame(300, 0)
    current = {f"s{seed}": frame(60, seed) for seed in range(1, 11)}
    report = compute_drift(
        train, current, numeric=NUMERIC, categorical=CATEGORICAL, config=DriftConfig()
    )
    assert report.drifted == []
    assert len(report.features) == 10 * 3


@pytest.mark.parametrize("method", ["psi", "ks"])
def test_numeric_shift_is_drift(method: str) -> None:
    cfg = DriftConfig(numeric_method=method)
    report = compute_drift(
        frame(300, 0),
        {"val": frame(80, 1, age_shift=15.0)},
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        config=cfg,
    )
    assert [(f.split, f.column, f.statistic) for f in report.drifted] == [("val", "age", method)]
    age = report.drifted[0]
    assert age.value > (cfg.psi_threshold if method == "psi" else cfg.ks_threshold)
    assert age.p_value < cfg.max_p_value
    assert "median" in age.summary


def test_categorical_shift_unseen_and_missing_count() -> None:
    cur = frame(100, 1, red=0.9)
    cur.loc[:9, "color"] = "purple"  # unseen in train
    report = compute_drift(
        frame(300, 0), {"batch": cur}, numeric=[], categorical=CATEGORICAL, config=DriftConfig()
    )
    (color,) = report.drifted
    assert color.statistic == "tvd" and color.value > 0.2
    assert color.current["<unseen>"] == pytest.approx(0.1)
    assert "purple" in color.summary and "'red'" in color.summary


def test_missing_rate_jump_is_numeric_drift() -> None:
    cur = frame(100, 1)
    cur.loc[:59, "ratio"] = np.nan
    report = compute_drift(
        frame(300, 0), {"val": cur}, numeric=NUMERIC, categorical=[], config=DriftConfig()
    )
    assert [f.column for f in report.drifted] == ["ratio"]
    assert report.drifted[0].current["<missing>"] == pytest.approx(0.6)


def test_psi_is_zero_for_identical_counts_and_small_splits_are_not_judged() -> None:
    counts = np.array([10.0, 20.0, 30.0])
    assert psi(counts, counts) == pytest.approx(0.0, abs=1e-12)
    assert psi(counts, counts * 2) < 1e-3  # same shares; only the +0.5 smoothing differs
    report = compute_drift(
        frame(300, 0),
        {"tiny": frame(5, 1, age_shift=50)},
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        config=DriftConfig(),
    )
    assert report.splits["tiny"]["judged"] is False and report.drifted == []


# --- the validate stage and `validate --batch` ------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> tuple[Params, Paths]:
    """Raw splits + schema as ingest writes them, and a one-rule suite (GE is not under test)."""
    paths = Paths(root=tmp_path)
    for split, data in {
        "train": frame(300, 0),
        "val": frame(80, 1),
        "test": frame(80, 2),
    }.items():
        paths.raw_dir.mkdir(parents=True, exist_ok=True)
        data.to_parquet(paths.raw_split(split), index=False)
    write_json(
        paths.schema,
        {
            "task": "binary",
            "target": TARGET,
            "numeric": NUMERIC,
            "categorical": CATEGORICAL,
            "classes": ["no", "yes"],
        },
    )
    suite = {
        "name": "drift",
        "expectations": [
            {
                "type": "expect_table_columns_to_match_set",
                "kwargs": {"column_set": [*NUMERIC, *CATEGORICAL, TARGET], "exact_match": True},
            }
        ],
    }
    write_json(tmp_path / "suite.json", suite)
    params = Params.model_validate(
        {"data": {"target": TARGET}, "validate": {"suite": "suite.json"}}
    )
    return params, paths


@pytest.mark.slow
def test_validate_stage_reports_and_fails_on_drift(project: tuple[Params, Paths]) -> None:
    params, paths = project
    summary = validate.run(params, paths)
    assert summary["success"] and summary["drift"]["drifted"] == []

    frame(80, 1, age_shift=20.0).to_parquet(paths.raw_split("val"), index=False)
    with pytest.raises(validate.ValidationFailedError) as info:
        validate.run(params, paths)
    message = str(info.value)
    assert "drift in data/raw: split 'val', column 'age': psi=" in message
    assert "threshold 0.25" in message
    written = json.loads(paths.validation_summary.read_text())
    assert written["drift_failed"] is True and written["drift"]["drifted"] == ["val:age"]
    page = (paths.data_docs / "drift.html").read_text()
    assert "DRIFT" in page and "age" in page
    assert (paths.data_docs / "index.html").is_file()  # beside the expectation results


@pytest.mark.slow
def test_validate_batch(project: tuple[Params, Paths], tmp_path: Path) -> None:
    params, paths = project
    good = tmp_path / "good.csv"
    frame(120, 7).to_csv(good, index=False)
    summary = validate.validate_batch(params, paths, good)
    assert summary["success"] and summary["drift"]["splits"]["good.csv"]["judged"]
    assert validate.batch_summary_path(paths, good).is_file()

    # Rows to score carry no label: the features' rules still apply, the label's are left out.
    unlabelled = tmp_path / "unlabelled.csv"
    frame(120, 7).drop(columns=[TARGET]).to_csv(unlabelled, index=False)
    assert validate.validate_batch(params, paths, unlabelled)["success"]
    broken = tmp_path / "broken.csv"
    frame(120, 7).drop(columns=[TARGET, "ratio"]).to_csv(broken, index=False)
    with pytest.raises(validate.ValidationFailedError, match=r"missing columns \['ratio'\]"):
        validate.validate_batch(params, paths, broken)

    shifted = tmp_path / "shifted.parquet"
    frame(120, 8, red=0.95).to_parquet(shifted, index=False)
    with pytest.raises(validate.ValidationFailedError, match=r"split 'shifted.parquet', column "):
        validate.validate_batch(params, paths, shifted)
    written = json.loads(validate.batch_summary_path(paths, shifted).read_text())
    assert written["drift"]["drifted"] == ["shifted.parquet:color"]

    renamed = tmp_path / "renamed.csv"
    frame(120, 9).rename(columns={"ratio": "rate"}).to_csv(renamed, index=False)
    with pytest.raises(validate.ValidationFailedError, match=r"missing columns \['ratio'\]"):
        validate.validate_batch(params, paths, renamed)


def test_duplicate_rule_tolerates_a_couple_of_repeats_in_small_splits() -> None:
    small = frame(20, 3)
    twice = pd.concat([small, small.iloc[:2]], ignore_index=True)  # 2 repeats in 22 rows: 9 %
    assert validate.duplicate_failures({"val": twice}, 0.05) == []
    resent = pd.concat([small, small.iloc[:8]], ignore_index=True)
    (failure,) = validate.duplicate_failures({"val": resent}, 0.05)
    assert failure.unexpected_count == 8 and failure.observed == pytest.approx(8 / 28, abs=1e-4)
    assert len(failure.examples) == 5 and set(failure.examples[0]) == set(small.columns)
    assert "split 'val', table: neuroflow_max_duplicate_fraction(max_fraction=0.05)" in (
        failure.describe("data/raw")
    )
