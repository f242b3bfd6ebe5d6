"""`neuroflow ingest` on a user's own table: where the numeric-column rule draws its line, what
`data.drop_missing_target` keeps, and how cells are located in the file a person opens.

Each test writes a small CSV or Parquet file into a bare project and runs the real `ingest`
command (no Great Expectations: these are fast). The bad-input matrix against a validated
project is tests/stage/test_bad_inputs.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.stage.test_bad_inputs import invoke

from neuroflow.data.sources import NUMERIC_SHARE, csv_lines

ROWS = 200


def table(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Penguin-like: numbers, a string categorical, a mass in grams and a species label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "bill_length_mm": rng.normal(44, 5, rows).round(1),
            "flipper_length_mm": rng.normal(200, 14, rows).round(0),
            "island": rng.choice(["Biscoe", "Dream", "Torgersen"], rows),
            "body_mass_g": rng.normal(4200, 800, rows).round(0),
            "species": rng.choice(["Adelie", "Chinstrap", "Gentoo"], rows),
        }
    )


def project(root: Path, frame: pd.DataFrame, fmt: str = "csv", **data: object) -> Path:
    """A bare project whose params point at `frame` written as data/external/penguins.<fmt>."""
    source = root / "data" / "external" / f"penguins.{fmt}"
    source.parent.mkdir(parents=True)
    if fmt == "csv":
        frame.to_csv(source, index=False)
    else:
        frame.to_parquet(source, index=False)
    task = data.pop("task", "regression")
    params = {
        "seed": 0,
        "task": task,
        "data": {
            "source": fmt,
            "path": f"data/external/penguins.{fmt}",
            "target": "body_mass_g",
            **data,
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def raw(root: Path) -> pd.DataFrame:
    return pd.concat(
        pd.read_parquet(root / "data" / "raw" / f"{s}.parquet") for s in ("train", "val", "test")
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_missing_targets_are_dropped_and_counted_when_asked(fmt: str, tmp_path: Path) -> None:
    frame = table()
    frame.loc[[4, 150], "body_mass_g"] = np.nan
    root = project(tmp_path, frame, fmt)
    code, out = invoke(root, "ingest")
    where = "line 6, line 152" if fmt == "csv" else "row 5, row 151"
    assert code == 1 and f"is missing in 2 of 200 rows ({where})" in out, out
    assert not (root / "data" / "raw").exists()

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"]["drop_missing_target"] = True
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    code, out = invoke(root, "ingest")  # the CLI's log goes to the output
    assert code == 0, out
    assert f"WARNING neuroflow.stages.ingest: ingest: dropped 2 of 200 rows ({where}) " in out
    assert "whose target 'body_mass_g' is missing (data.drop_missing_target)" in out
    kept = raw(root)
    assert len(kept) == 198 and kept["body_mass_g"].notna().all()
    assert (
        sum(json.loads((root / "data" / "raw" / "schema.json").read_text())["rows"].values()) == 198
    )


def test_a_blank_label_is_a_missing_label(tmp_path: Path) -> None:
    frame = table()
    frame["species"] = frame["species"].astype(object)
    frame.loc[7, "species"] = "   "
    root = project(tmp_path, frame, task="multiclass", target="species")
    code, out = invoke(root, "ingest")
    assert code == 1 and "'species' is missing in 1 of 200 rows (line 9)" in out, out


def test_dropping_missing_labels_can_leave_one_class(tmp_path: Path) -> None:
    frame = table()
    frame["species"] = np.where(np.arange(ROWS) < 190, "Adelie", None)
    root = project(tmp_path, frame, task="binary", target="species", drop_missing_target=True)
    code, out = invoke(root, "ingest")
    assert code == 1, out
    assert "single class ('Adelie' in all 190 rows after dropping the rows without one)" in out


def test_the_numeric_rule_is_95_percent_of_filled_cells(tmp_path: Path) -> None:
    assert NUMERIC_SHARE == 0.95
    frame = table()
    frame["flipper_length_mm"] = frame["flipper_length_mm"].astype(object)
    frame.loc[::20, "flipper_length_mm"] = "?"  # 10 of 200: exactly 95 % are numbers
    frame.loc[[1, 2], "bill_length_mm"] = None  # empty cells are missing values, not text
    code, out = invoke(project(tmp_path / "at", frame), "ingest")
    assert code == 1, out
    assert "column 'flipper_length_mm': 10 cell(s) are not numbers in a numeric column " in out
    assert "(190 of 200 filled cells are): line 2 '?', line 22 '?', line 42 '?'" in out
    assert "bill_length_mm" not in out

    frame.loc[3, "flipper_length_mm"] = "?"  # 11 of 200: a text column, left to validate
    root = project(tmp_path / "below", frame)
    code, out = invoke(root, "ingest")
    assert code == 0, out
    schema = json.loads((root / "data" / "raw" / "schema.json").read_text())
    assert "flipper_length_mm" in schema["categorical"]


def test_declared_categorical_columns_are_never_judged(tmp_path: Path) -> None:
    frame = table()
    frame["code"] = np.arange(ROWS).astype(str)
    frame.loc[3, "code"] = "X7"  # a code that is mostly digits is still a code
    code, out = invoke(project(tmp_path / "undeclared", frame), "ingest")
    assert code == 1 and "column 'code'" in out and "line 5 'X7'" in out, out

    root = project(tmp_path / "declared", frame, categorical=["code"])
    code, out = invoke(root, "ingest")
    assert code == 0, out
    assert "code" in json.loads((root / "data" / "raw" / "schema.json").read_text())["categorical"]


def test_regression_target_must_be_finite_numbers(tmp_path: Path) -> None:
    frame = table()
    frame["body_mass_g"] = frame["body_mass_g"].astype(object)
    frame.loc[12, "body_mass_g"] = "heavy"
    code, out = invoke(project(tmp_path / "text", frame), "ingest")
    assert code == 1, out
    assert "task=regression needs a numeric target, but 1 cell(s) are not numbers: " in out
    assert "line 14 'heavy'" in out

    frame.loc[12, "body_mass_g"] = np.inf
    frame["body_mass_g"] = frame["body_mass_g"].astype(float)
    code, out = invoke(project(tmp_path / "inf", frame, "parquet"), "ingest")
    assert code == 1 and "1 target value(s) are infinite: row 13 inf" in out, out


def test_a_constant_regression_target_is_refused(tmp_path: Path) -> None:
    frame = table().assign(body_mass_g=4200.0)
    code, out = invoke(project(tmp_path, frame), "ingest")
    assert code == 1, out
    assert "'body_mass_g' holds one value (4200.0 in all 200 rows)" in out


def test_a_directory_is_not_a_source_file(tmp_path: Path) -> None:
    root = project(tmp_path, table())
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"]["path"] = "data/external"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    code, out = invoke(root, "ingest")
    assert code == 1 and "data/external: not a file" in out, out


def test_csv_lines_count_as_an_editor_shows_them(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "\n"  # line 1: blank lines before the header are skipped
        "a,b\n"  # line 2: the header
        '1,"two\nlines"\n'  # lines 3-4: row 0
        "\n"  # line 5: blank
        "2,x\r\n"  # line 6: row 1, a Windows line end
        "   \n"  # line 7: only spaces, skipped like a blank line
        "3,y\n"  # line 8: row 2
    )
    assert pd.read_csv(path)["a"].tolist() == [1, 2, 3]  # the reader sees the same rows
    assert csv_lines(path, ",", [0, 1, 2]) == {0: 3, 1: 6, 2: 8}
