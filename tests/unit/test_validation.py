"""neuroflow.validation: propose a suite, run it with real Great Expectations, report, Data Docs.

Great Expectations is slow to import and to run, so the module shares two run_suite calls: one
on clean splits (with Data Docs) and one where every split carries one kind of bad data.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from neuroflow.validation.profile import propose_suite
from neuroflow.validation.runner import (
    ValidationReport,
    build_gx_suite,
    json_safe,
    run_suite,
)
from neuroflow.validation.suite import SuiteFormatError, load_suite, save_suite

SOURCE = "data/raw"
TARGET = "diagnosis"


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "mean radius": rng.uniform(6.0, 28.0, rows),
            "count": rng.integers(0, 50, rows),
            "color": rng.choice(["red", "green", "blue"], rows),
            TARGET: np.arange(rows) % 2,  # both classes in every split
        }
    )


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return _frame(80, seed=0)


@pytest.fixture(scope="module")
def clean_frames(train: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"train": train, "val": _frame(20, seed=1), "test": _frame(20, seed=2)}


@pytest.fixture(scope="module")
def suite_file(
    train: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    suite = propose_suite(train, name="demo", target=TARGET)
    path = tmp_path_factory.mktemp("suite") / "suite.json"
    save_suite(suite, path)
    return suite, path


@pytest.fixture(scope="module")
def suite(suite_file: tuple[dict[str, Any], Path]) -> dict[str, Any]:
    # Validate with what a reviewer committed: the saved-and-loaded file.
    return load_suite(suite_file[1])


def _bad_frames(base: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One split per kind of bad data; each differs from clean data in one column."""
    wrong_dtype = base.copy()
    wrong_dtype["mean radius"] = wrong_dtype["mean radius"].astype(object)
    wrong_dtype.loc[3, "mean radius"] = "12.5 mm"
    with_nan = base.copy()
    with_nan.loc[4, "mean radius"] = np.nan
    with_inf = base.copy()
    with_inf.loc[5, "mean radius"] = np.inf
    with_inf.loc[8, "mean radius"] = -np.inf
    out_of_range = base.copy()
    out_of_range.loc[6, "count"] = 10_000
    unseen_label = base.copy()
    unseen_label.loc[7, TARGET] = 7
    return {
        "clean": base,
        "missing_column": base.drop(columns=["count"]),
        "wrong_dtype": wrong_dtype,
        "nan": with_nan,
        "inf": with_inf,
        "out_of_range": out_of_range,
        "unseen_label": unseen_label,
    }


class _Runs:
    def __init__(
        self, clean: ValidationReport, bad: ValidationReport, docs: Path, connects: list[Any]
    ) -> None:
        self.clean = clean
        self.bad = bad
        self.docs = docs
        self.connects = connects


@pytest.fixture(scope="module")
def runs(
    suite: dict[str, Any],
    clean_frames: dict[str, pd.DataFrame],
    tmp_path_factory: pytest.TempPathFactory,
) -> _Runs:
    docs = tmp_path_factory.mktemp("docs") / "site"
    cwd = tmp_path_factory.mktemp("cwd")
    connects: list[Any] = []

    def no_network(self: socket.socket, address: Any) -> None:
        connects.append(address)
        raise OSError("validation must not use the network")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", no_network)
        mp.chdir(cwd)  # nothing may be written to the working directory
        clean = run_suite(clean_frames, suite, docs)
        bad = run_suite(_bad_frames(clean_frames["val"]), suite, None)
    assert list(cwd.iterdir()) == []
    return _Runs(clean, bad, docs, connects)


# --- the proposal --------------------------------------------------------------------------


def _by_column(suite: dict[str, Any], column: str | None) -> dict[str, dict[str, Any]]:
    return {
        e["type"]: e["kwargs"] for e in suite["expectations"] if e["kwargs"].get("column") == column
    }


def test_proposal_covers_table_and_columns(suite: dict[str, Any], train: pd.DataFrame) -> None:
    table = _by_column(suite, None)
    assert table["expect_table_columns_to_match_set"] == {
        "column_set": list(train.columns),
        "exact_match": True,
    }
    rows = table["expect_table_row_count_to_be_between"]
    assert rows["min_value"] == 1
    assert rows["max_value"] >= 10 * len(train)

    radius = _by_column(suite, "mean radius")
    assert "float64" in radius["expect_column_values_to_be_in_type_list"]["type_list"]
    low, high = (
        radius["expect_column_values_to_be_between"][k] for k in ("min_value", "max_value")
    )
    observed_low, observed_high = train["mean radius"].min(), train["mean radius"].max()
    assert low < observed_low and high > observed_high  # widened by the margin
    assert high - low == pytest.approx(1.2 * (observed_high - observed_low), rel=1e-3)
    assert radius["expect_column_values_to_not_be_null"] == {"column": "mean radius"}
    assert "expect_column_values_to_be_in_set" not in radius  # numeric feature: range, no set

    count = _by_column(suite, "count")
    assert "int64" in count["expect_column_values_to_be_in_type_list"]["type_list"]

    color = _by_column(suite, "color")
    assert color["expect_column_values_to_be_in_set"]["value_set"] == ["blue", "green", "red"]
    target = _by_column(suite, TARGET)
    assert target["expect_column_values_to_be_in_set"]["value_set"] == [0, 1]

    columns_in_order = list(
        dict.fromkeys(
            e["kwargs"]["column"] for e in suite["expectations"] if "column" in e["kwargs"]
        )
    )
    assert columns_in_order == list(train.columns)
    meta = suite["meta"]["neuroflow"]
    assert meta["proposed_from"] == "data"
    assert meta["train_rows"] == len(train)
    assert meta["proposed_at"]


def test_proposal_is_deterministic_and_handles_nulls(train: pd.DataFrame) -> None:
    first = propose_suite(train, name="demo", target=TARGET)
    second = propose_suite(train, name="demo", target=TARGET)
    for s in (first, second):
        s["meta"]["neuroflow"].pop("proposed_at")
    assert first == second

    gappy = train.copy()
    gappy.loc[: len(gappy) // 4 - 1, "mean radius"] = np.nan  # 25 % null
    gappy.loc[0, "count"] = 10**6  # ranges come from finite values, widened
    many = gappy.assign(color=[f"c{i}" for i in range(len(gappy))])
    proposal = propose_suite(many, name="gappy", target=TARGET, categorical_max_unique=5)
    radius = _by_column(proposal, "mean radius")
    assert radius["expect_column_values_to_not_be_null"]["mostly"] == pytest.approx(0.70)
    assert "expect_column_values_to_be_in_set" not in _by_column(proposal, "color")
    count = _by_column(proposal, "count")["expect_column_values_to_be_between"]
    assert count["max_value"] > 10**6
    assert count["min_value"] == 0  # never negative in train: not widened below zero

    regression = propose_suite(train, name="reg", target="mean radius")
    assert "expect_column_values_to_be_in_set" not in _by_column(regression, "mean radius")


def test_null_rule_leaves_room_for_sampling_in_a_small_split(train: pd.DataFrame) -> None:
    """3 % missing in train: a 45-row split with 4 missing (8.9 %) is sampling, not drift."""
    gappy = train.copy()
    gappy.loc[gappy.index[: max(1, round(0.03 * len(gappy)))], "mean radius"] = np.nan
    share = float(gappy["mean radius"].notna().mean())
    plain = propose_suite(gappy, name="g", target=TARGET)
    sized = propose_suite(gappy, name="g", target=TARGET, smallest_split=45)
    loose = _by_column(sized, "mean radius")["expect_column_values_to_not_be_null"]["mostly"]
    tight = _by_column(plain, "mean radius")["expect_column_values_to_not_be_null"]["mostly"]
    assert tight > 41 / 45 > loose  # the plain margin fails 4 missing of 45, the sized one not
    assert loose < share < 1.0


# --- running it ----------------------------------------------------------------------------


def test_clean_data_passes(runs: _Runs, suite: dict[str, Any]) -> None:
    report = runs.clean
    assert report.success, report.describe_failures(SOURCE)
    assert report.failures == []
    assert report.describe_failures(SOURCE) == ""
    n = len(suite["expectations"])
    assert report.splits == {
        "train": {"success": True, "evaluated": n, "failed": 0, "rows": 80},
        "val": {"success": True, "evaluated": n, "failed": 0, "rows": 20},
        "test": {"success": True, "evaluated": n, "failed": 0, "rows": 20},
    }
    assert runs.connects == []


BAD_CASES = [
    # split, column, expectation, text expected in the failure's line
    ("missing_column", None, "expect_table_columns_to_match_set", "missing columns ['count']"),
    ("wrong_dtype", "mean radius", "expect_column_values_to_be_in_type_list", "'12.5 mm'"),
    ("nan", "mean radius", "expect_column_values_to_not_be_null", "1 unexpected, e.g. [nan]"),
    ("inf", "mean radius", "expect_column_values_to_be_between", "2 unexpected, e.g. [inf, -inf]"),
    ("out_of_range", "count", "expect_column_values_to_be_between", "e.g. [10000]"),
    ("unseen_label", TARGET, "expect_column_values_to_be_in_set", "e.g. [7]"),
]


@pytest.mark.parametrize(("split", "column", "expectation", "detail"), BAD_CASES)
def test_bad_data_fails_where_it_is(
    runs: _Runs, split: str, column: str | None, expectation: str, detail: str
) -> None:
    report = runs.bad
    assert not report.success
    assert report.splits["clean"]["success"] and report.splits["clean"]["failed"] == 0
    assert not report.splits[split]["success"]

    failures = [f for f in report.failures if f.split == split]
    assert report.splits[split]["failed"] == len(failures)
    assert (column, expectation) in {(f.column, f.expectation) for f in failures}
    # Only the broken column (or, for a dropped column, the table) is blamed.
    blamed = {f.column for f in failures}
    assert blamed <= ({None, "count"} if split == "missing_column" else {column})

    where = f"column {column!r}" if column is not None else "table"
    prefix = f"validate failed for {SOURCE}: split {split!r}, {where}: {expectation}("
    lines = [ln for ln in report.describe_failures(SOURCE).splitlines() if ln.startswith(prefix)]
    assert lines, report.describe_failures(SOURCE)
    assert detail in lines[0]


def test_range_rule_is_named_with_its_bounds(runs: _Runs, suite: dict[str, Any]) -> None:
    bounds = _by_column(suite, "count")["expect_column_values_to_be_between"]
    (failure,) = [f for f in runs.bad.failures if f.split == "out_of_range"]
    assert failure.kwargs == {"min_value": bounds["min_value"], "max_value": bounds["max_value"]}
    assert failure.unexpected_count == 1 and failure.examples == [10000]
    (line,) = [ln for ln in runs.bad.describe_failures(SOURCE).splitlines() if "out_of_range" in ln]
    rule = f"(min_value={bounds['min_value']!r}, max_value={bounds['max_value']!r})"
    assert f"column 'count': expect_column_values_to_be_between{rule} — 1 unexpected" in line


def test_missing_column_raises_are_failures(runs: _Runs) -> None:
    raised = [f for f in runs.bad.failures if f.split == "missing_column" and f.raised]
    assert raised and all(f.column == "count" for f in raised)
    assert all("count" in (f.raised or "") for f in raised if "exist" in (f.raised or ""))


def test_to_json_is_strict_json(runs: _Runs) -> None:
    for report in (runs.clean, runs.bad):
        text = json.dumps(report.to_json(), allow_nan=False)
        assert json.loads(text)["success"] is report.success
    summary = runs.bad.to_json()
    examples = {f["split"]: f["examples"] for f in summary["failures"] if f["column"]}
    assert examples["nan"] == ["nan"] and examples["inf"] == ["inf", "-inf"]


def test_data_docs_has_every_split(runs: _Runs) -> None:
    index = runs.docs / "index.html"
    assert index.is_file()
    html = index.read_text(encoding="utf-8")
    for split in ("train", "val", "test"):
        assert f"'run_name': '{split}'" in html  # each split's run is listed by name
        (page,) = (runs.docs / "validations" / "demo" / split).rglob("*.html")
        assert "mean radius" in page.read_text(encoding="utf-8")
    assert not [p for p in runs.docs.parent.iterdir() if p.name.startswith(".")]  # no staging


def test_docs_dir_is_rebuilt_without_stale_pages(
    tmp_path: Path, suite: dict[str, Any], train: pd.DataFrame
) -> None:
    docs = tmp_path / "docs"
    (docs / "validations").mkdir(parents=True)
    (docs / "index.html").write_text("old site")
    (docs / "validations" / "stale.html").write_text("old run")
    report = run_suite({"only": train.head(10)}, suite, docs)
    assert report.success
    assert "'run_name': 'only'" in (docs / "index.html").read_text(encoding="utf-8")
    assert not (docs / "validations" / "stale.html").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["docs"]


def test_docs_dir_that_is_not_a_site_is_not_replaced(
    tmp_path: Path, suite: dict[str, Any], train: pd.DataFrame
) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        run_suite({"train": train}, suite, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


# --- the suite file ------------------------------------------------------------------------


def test_save_and_load_round_trip(suite_file: tuple[dict[str, Any], Path]) -> None:
    proposed, path = suite_file
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert load_suite(path) == proposed
    assert sorted(p.name for p in path.parent.iterdir()) == ["suite.json"]  # no temp left


def test_save_refuses_nan_and_keeps_old_file(
    suite_file: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    proposed, _ = suite_file
    path = tmp_path / "suite.json"
    save_suite(proposed, path)
    before = path.read_bytes()
    broken = json.loads(json.dumps(proposed))
    broken["expectations"][1]["kwargs"]["max_value"] = float("nan")
    with pytest.raises(SuiteFormatError):
        save_suite(broken, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["suite.json"]


def test_bad_suite_files_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"expectation_suite_name": "old", "expectations": []}')
    with pytest.raises(SuiteFormatError, match="name"):
        load_suite(path)
    path.write_text("{not json")
    with pytest.raises(SuiteFormatError, match="not valid JSON"):
        load_suite(path)
    # GE would log and silently drop an unknown expectation; the runner refuses it.
    typo = {
        "name": "typo",
        "expectations": [{"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "x"}}],
    }
    with pytest.raises(SuiteFormatError, match="expectations\\[0\\]"):
        build_gx_suite(typo)


def test_json_safe() -> None:
    values = [np.float64("nan"), np.inf, -np.inf, np.int64(3), np.bool_(True), pd.NA, 1.5]
    assert json_safe(values) == ["nan", "inf", "-inf", 3, True, "<NA>", 1.5]
    assert json_safe({1: (np.float32(0.5),)}) == {"1": [0.5]}


def test_knock_on_failures_are_counted_not_listed() -> None:
    from neuroflow.validation.runner import ExpectationFailure, ValidationReport

    def failure(column: str | None, rule: str, **kw: object) -> ExpectationFailure:
        base: dict = {"kwargs": {}, "unexpected_count": None, "examples": [], "raised": None}
        return ExpectationFailure(split="train", column=column, expectation=rule, **(base | kw))

    failures = [
        failure(None, "expect_table_columns_to_match_set", observed={"missing": ["hue"]}),
        failure("hue", "expect_column_values_to_not_be_null", raised="column does not exist"),
        failure("alcohol", "expect_column_values_to_be_in_type_list", observed="str"),
        failure("alcohol", "expect_column_values_to_be_between", raised="must be of same type"),
        failure("ash", "expect_column_values_to_be_between", unexpected_count=1, examples=[9.0]),
    ]
    report = ValidationReport(success=False, splits={}, failures=failures)
    lines = report.describe_failures("data/raw").splitlines()
    assert len(lines) == 4, lines
    assert "missing columns ['hue']" in lines[0]
    assert "column 'alcohol'" in lines[1] and "in_type_list" in lines[1]
    assert "column 'ash'" in lines[2] and "e.g. [9.0]" in lines[2]
    assert lines[3].startswith("validate: 2 more failure(s)")
    assert len(report.to_json()["failures"]) == 5  # the summary keeps every one
