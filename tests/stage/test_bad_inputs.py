"""Bad-input matrix: each kind of bad CSV / Parquet input stops `ingest` or `validate`.

Each case overwrites the source file of a project that passed with a good file, runs the real
`neuroflow ingest` / `neuroflow validate` commands (in-process, so Great Expectations is
imported once for the whole matrix) and checks the exit code and that the message names the
file or split, the column, the rule and offending values (cells by their line in a CSV file, the
header being line 1, or their 1-based data row in a Parquet file). A failed ingest changes no
file of the project. The pipeline-level guarantees (nothing downstream runs, outputs
recoverable, registry untouched) are checked through `dvc repro` on representative cases in
tests/e2e/test_faults.py.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from neuroflow.cli import app

TARGET = "label"
ROWS = 400


def good_frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Mixed numeric + categorical columns with missing values and a categorical target."""
    rng = np.random.default_rng(seed)
    age = rng.normal(50, 10, rows)
    age[::20] = np.nan  # 5 % missing, spread evenly so every split has some
    color = rng.choice(["red", "green", "blue"], rows).astype(object)
    color[7::20] = None
    ratio = rng.uniform(0, 1, rows)
    score = np.nan_to_num(age, nan=50) / 10 + 3 * ratio + (color == "red")
    return pd.DataFrame(
        {
            "age": age,
            "ratio": ratio,
            "count": rng.integers(0, 20, rows),
            "color": color,
            "size": rng.choice(["S", "M", "L"], rows),
            TARGET: np.where(score > 6.5, "yes", "no"),
        }
    )


def write_source(frame: pd.DataFrame, path: Path, fmt: str, **csv: str) -> None:
    if fmt == "csv":
        frame.to_csv(path, index=False, **csv)
    else:
        frame.to_parquet(path, index=False)


# A substring of the message, or one that depends on the format (cells are located by line in
# a CSV file, by data row in a Parquet file).
Expected = str | Callable[[str], str]


@dataclass(frozen=True)
class Case:
    name: str
    stage: str  # the command that must fail: ingest | validate
    make: Callable[[Path, str], None]  # (source path, format) -> writes the bad file
    expect: tuple[Expected, ...]  # substrings the error message must contain
    formats: tuple[str, ...] = ("csv", "parquet")
    params: dict[str, object] | None = None  # params.yaml overrides for this case


def where(fmt: str, row: int) -> str:
    """How a message names the 0-based data row `row` of a file written by `write_source`."""
    return f"line {row + 2}" if fmt == "csv" else f"row {row + 1}"


def cells(*found: tuple[int, str]) -> Callable[[str], str]:
    """'line 2 'twelve', line 27 'twelve'' (CSV) / 'row 1 'twelve', …' (Parquet)."""
    return lambda fmt: ", ".join(f"{where(fmt, row)} {value}" for row, value in found)


def rows(*found: int) -> Callable[[str], str]:
    return lambda fmt: ", ".join(where(fmt, row) for row in found)


def _frame_case(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path, str], None]:
    def make(path: Path, fmt: str) -> None:
        write_source(change(good_frame()), path, fmt)

    return make


def _set(
    column: str, rows: slice | list[int], value: object
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        if not isinstance(value, float | int):
            frame[column] = frame[column].astype(object)
        frame.loc[frame.index[rows], column] = value
        return frame

    return change


def _duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    # 40 % of the rows sent twice: far beyond the 5 % allowed per split.
    return pd.concat([frame, frame.iloc[: int(0.4 * len(frame))]], ignore_index=True)


def _empty(path: Path, fmt: str) -> None:
    path.write_bytes(b"")


def _header_only(path: Path, fmt: str) -> None:
    write_source(good_frame().iloc[:0], path, fmt)


def _truncated(path: Path, fmt: str) -> None:
    write_source(good_frame(), path, fmt)
    data = path.read_bytes()
    if fmt == "csv":  # cut the last row after its first field: the row loses its label
        last = data.rstrip(b"\n").rfind(b"\n") + 1
        path.write_bytes(data[: data.index(b",", last)] + b"\n")
    else:
        path.write_bytes(data[: len(data) // 2])


def _corrupt(path: Path, fmt: str) -> None:
    write_source(good_frame(), path, fmt)
    data = bytearray(path.read_bytes())
    if fmt == "csv":
        data[10:60] = bytes(range(200, 250))  # binary garbage in the header
    else:
        data[-4:] = b"XXXX"  # the footer magic: not a Parquet file any more
    path.write_bytes(bytes(data))


def _wrong_delimiter(path: Path, fmt: str) -> None:
    good_frame().to_csv(path, index=False, sep=";")


def _non_utf8(path: Path, fmt: str) -> None:
    frame = good_frame()
    frame.loc[3, "color"] = "café"
    frame.to_csv(path, index=False, encoding="latin-1")


def _wrong_dtype(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["count"] = frame["count"].astype(str)  # numbers as text, 4 % not numbers at all
    frame.loc[::25, "count"] = "twelve"
    return frame


def _mostly_text(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["count"] = frame["count"].astype(str)  # half words: a text column, not stray cells
    frame.loc[::2, "count"] = "many"
    return frame


def _missing_file(path: Path, fmt: str) -> None:
    path.unlink()


def _text_after_multiline_cell(path: Path, fmt: str) -> None:
    """A quoted cell spanning two lines shifts every later row down one line in the file."""
    frame = good_frame()
    frame["color"] = frame["color"].astype(object)
    frame.loc[3, "color"] = "dark\nred"
    frame["ratio"] = frame["ratio"].astype(object)
    frame.loc[10, "ratio"] = "n.a."
    frame.to_csv(path, index=False)


CASES = [
    Case(
        "missing_column",
        "validate",
        _frame_case(lambda f: f.drop(columns=["ratio"])),
        ("split 'train'", "expect_table_columns_to_match_set", "missing columns ['ratio']"),
    ),
    Case(
        "extra_column",
        "validate",
        _frame_case(lambda f: f.assign(customer_id=np.arange(len(f)))),
        ("expect_table_columns_to_match_set", "unexpected columns ['customer_id']"),
    ),
    Case(
        "renamed_column",
        "validate",
        _frame_case(lambda f: f.rename(columns={"ratio": "ratio_v2"})),
        ("missing columns ['ratio']", "unexpected columns ['ratio_v2']"),
    ),
    Case(
        "text_in_numeric_column",
        "ingest",
        _frame_case(_wrong_dtype),
        (
            "input.",
            "column 'count': 16 cell(s) are not numbers in a numeric column "
            "(384 of 400 filled cells are)",
            cells((0, "'twelve'"), (25, "'twelve'"), (50, "'twelve'")),
            "list 'count' in data.categorical if it is not numeric",
        ),
    ),
    Case(
        "text_after_multiline_cell",
        "ingest",
        _text_after_multiline_cell,
        ("input.csv", "column 'ratio'", "line 13 'n.a.'"),  # row 10: line 12, +1 for row 3
        formats=("csv",),
    ),
    Case(
        "text_column_where_numbers_expected",  # below the 95 % rule: a text column
        "validate",
        _frame_case(_mostly_text),
        ("column 'count'", "expect_column_values_to_be_in_type_list", "'many'"),
    ),
    Case(
        "all_null_column",
        "validate",
        _frame_case(lambda f: f.assign(ratio=np.nan)),
        ("column 'ratio'", "expect_column_values_to_not_be_null", "unexpected"),
    ),
    Case(
        "nan",
        "validate",
        _frame_case(_set("ratio", slice(0, None, 10), np.nan)),
        ("column 'ratio'", "expect_column_values_to_not_be_null", "e.g. [nan"),
    ),
    Case(
        "positive_inf",
        "validate",
        _frame_case(_set("ratio", slice(0, None, 10), np.inf)),
        ("column 'ratio'", "expect_column_values_to_be_between", "e.g. [inf"),
    ),
    Case(
        "negative_inf",
        "validate",
        _frame_case(_set("ratio", slice(0, None, 10), -np.inf)),
        ("column 'ratio'", "expect_column_values_to_be_between", "e.g. [-inf"),
    ),
    Case(
        "out_of_range",
        "validate",
        _frame_case(_set("age", slice(0, None, 10), 1.0e6)),
        ("column 'age'", "expect_column_values_to_be_between", "1000000.0"),
    ),
    Case(
        "unseen_category",
        "validate",
        _frame_case(_set("color", slice(0, None, 10), "purple")),
        ("column 'color'", "expect_column_values_to_be_in_set", "'purple'"),
    ),
    Case(
        "third_label_for_binary",
        "ingest",
        _frame_case(_set(TARGET, slice(0, None, 10), "maybe")),
        ("input.", "task=binary needs two classes", "has 3 (['maybe', 'no', 'yes'])", "multiclass"),
    ),
    Case(
        "single_class",
        "ingest",
        _frame_case(lambda f: f.assign(**{TARGET: "yes"})),
        ("input.", "'label' has a single class ('yes' in all 400 rows)", "needs at least two"),
    ),
    Case(
        "missing_label",
        "ingest",
        _frame_case(_set(TARGET, [5, 6, 300], None)),
        (
            "input.",
            "target column 'label' is missing in 3 of 400 rows",
            rows(5, 6, 300),
            "data.drop_missing_target: true",
        ),
    ),
    Case(
        "missing_regression_target",  # `age` has 20 missing values, every 20th row
        "ingest",
        _frame_case(lambda f: f),
        (
            "input.",
            "target column 'age' is missing in 20 of 400 rows",
            lambda fmt: rows(0, 20, 40, 60, 80)(fmt) + ", …)",
        ),
        params={"task": "regression", "data": {"target": "age"}},
    ),
    Case(
        "text_in_regression_target",
        "ingest",
        _frame_case(_wrong_dtype),
        (
            "input.",
            "column 'count': task=regression needs a numeric target, but 16 cell(s) are not",
            cells((0, "'twelve'"), (25, "'twelve'")),
        ),
        params={"task": "regression", "data": {"target": "count"}},
    ),
    Case(
        "two_rows",
        "ingest",
        _frame_case(lambda f: f.head(2)),
        ("input.", "2 row(s) cannot make train, val and test splits"),
        params={"task": "regression", "data": {"target": "ratio"}},
    ),
    Case("missing_file", "ingest", _missing_file, ("input.", "file not found")),
    Case("empty_file", "ingest", _empty, ("input.", "the file is empty")),
    Case("header_only", "ingest", _header_only, ("input.", "no data rows")),
    Case(
        "duplicate_rows",
        "validate",
        _frame_case(_duplicates),
        ("split 'train'", "neuroflow_max_duplicate_fraction", "max_fraction=0.05", "unexpected"),
    ),
    Case("truncated", "ingest", _truncated, ("input.",)),
    Case("corrupt", "ingest", _corrupt, ("input.",)),
    Case(
        "wrong_delimiter",
        "ingest",
        _wrong_delimiter,
        ("input.csv", "target column 'label' not found", "csv_delimiter"),
        formats=("csv",),
    ),
    Case("non_utf8", "ingest", _non_utf8, ("input.csv", "UTF-8"), formats=("csv",)),
    Case(
        "too_many_rows",
        "ingest",
        _frame_case(lambda f: f),
        ("input.", "400 rows exceeds data.max_rows=300"),
        params={"data": {"max_rows": 300}},
    ),
]
MATRIX = [
    pytest.param(case, fmt, id=f"{fmt}-{case.name}") for case in CASES for fmt in case.formats
]


@contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@contextmanager
def cli_logging() -> Iterator[None]:
    """The CLI points the root logger at its own stderr: put the test process's logging back.

    Otherwise later tests in the process log into CliRunner's closed stream ("--- Logging
    error ---" on stderr), and tests that check a quiet stderr fail depending on order.
    """
    root, ours = logging.getLogger(), logging.getLogger("neuroflow")
    handlers, root_level, our_level = root.handlers[:], root.level, ours.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        ours.setLevel(our_level)


def invoke(root: Path, *args: str) -> tuple[int, str]:
    with chdir(root), cli_logging():
        result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a bug: users get messages, not stack traces
    return result.exit_code, result.output


def merge_params(root: Path, overrides: dict[str, object]) -> None:
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for key, values in overrides.items():
        if isinstance(values, dict):
            params.setdefault(key, {}).update(values)
        else:
            params[key] = values
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def project_files(root: Path) -> dict[str, bytes]:
    """Every file of the project but the ones a case edits (the input and params.yaml)."""
    edited = {root / "params.yaml", root / "data" / "external"}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not edited & {p, *p.parents}
    }


def review_suite(path: Path) -> None:
    """The reviewer's edit: per-split null slack wide enough for the small val/test splits."""
    suite = json.loads(path.read_text())
    for exp in suite["expectations"]:
        if "mostly" in exp["kwargs"]:
            exp["kwargs"]["mostly"] = 0.8
    path.write_text(json.dumps(suite, indent=2))


def make_baseline(root: Path, fmt: str) -> Path:
    """A project whose good source passes ingest + validate, with its own reviewed suite."""
    (root / "data" / "external").mkdir(parents=True)
    source = root / "data" / "external" / f"input.{fmt}"
    write_source(good_frame(), source, fmt)
    (root / "params.yaml").write_text(
        yaml.safe_dump(
            {
                "seed": 42,
                "task": "binary",
                "data": {"source": fmt, "path": str(source.relative_to(root)), "target": TARGET},
                "validate": {"suite": "data/suites/input.json"},
            }
        )
    )
    assert invoke(root, "ingest")[0] == 0
    code, out = invoke(root, "profile", "--margin", "0.5", "-o", "data/suites/input.json")
    assert code == 0, out
    review_suite(root / "data" / "suites" / "input.json")
    code, out = invoke(root, "validate")
    assert code == 0, out
    return root


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("bad_inputs")
    return {fmt: make_baseline(base / fmt, fmt) for fmt in ("csv", "parquet")}


def test_baseline_passes_with_drift_report(baselines: dict[str, Path]) -> None:
    for root in baselines.values():
        summary = json.loads((root / "data" / "validated" / "summary.json").read_text())
        assert summary["success"] is True
        assert summary["drift"]["drifted"] == []
        assert (root / "reports" / "data_docs" / "drift.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(("case", "fmt"), MATRIX)
def test_bad_input_stops_the_pipeline(
    case: Case, fmt: str, baselines: dict[str, Path], tmp_path: Path
) -> None:
    root = shutil.copytree(baselines[fmt], tmp_path / "project")
    before = project_files(root)
    if case.params:
        merge_params(root, case.params)
    case.make(root / "data" / "external" / f"input.{fmt}", fmt)

    code, out = invoke(root, "ingest")
    if case.stage == "ingest":
        assert code != 0, f"ingest accepted a {case.name} file:\n{out}"
        assert "Traceback" not in out
        # A failed ingest changes nothing: the previous raw splits, schema and suite stay.
        after = project_files(root)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        assert not changed, f"a failed ingest changed {changed}"
    else:
        assert code == 0, out
        code, out = invoke(root, "validate")
        assert code != 0, f"validate accepted a {case.name} file:\n{out}"
        summary = json.loads((root / "data" / "validated" / "summary.json").read_text())
        assert summary["success"] is False
        assert "Traceback" not in out
    for expected in case.expect:
        text = expected(fmt) if callable(expected) else expected
        assert text in out, f"{text!r} missing from the {case.stage} message:\n{out}"
    assert not (root / "data" / "processed").exists()
