"""A regression target in grams with missing values, as a user brings it, through `dvc repro`.

The path that used to end in a NaN training loss with the wrong advice, then in an export parity
failure on float32 rounding: now `profile` and `ingest` refuse the rows without a target and name
their lines; with `data.drop_missing_target: true` they are dropped (and said so in the log), and
the pipeline runs through export under the default parity tolerances (no `export.*` override).
A stray text cell added later stops `dvc repro` at ingest, by line, and changes nothing on disk.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.conftest import copy_project, run, set_params
from tests.stage.test_bad_inputs import review_suite

SOURCE = "data/external/penguins.csv"
SUITE = "data/suites/penguins_mass.json"


def penguins(rows: int = 240, seed: int = 3) -> pd.DataFrame:
    """Measurements with string categoricals and NaN; the mass in grams follows the flipper."""
    rng = np.random.default_rng(seed)
    flipper = rng.normal(200, 14, rows)
    frame = pd.DataFrame(
        {
            "island": rng.choice(["Biscoe", "Dream", "Torgersen"], rows),
            "bill_length_mm": rng.normal(44, 5, rows).round(1),
            "flipper_length_mm": flipper.round(0),
            "sex": rng.choice(["female", "male"], rows),
            "body_mass_g": (4200 + 45 * (flipper - 200) + rng.normal(0, 250, rows)).round(0),
        }
    )
    frame.loc[rng.random(rows) < 0.03, "bill_length_mm"] = np.nan
    frame.loc[rng.random(rows) < 0.03, "island"] = None
    frame.loc[[9, 130], "body_mass_g"] = np.nan  # two weighings never made: lines 11 and 132
    return frame


def hashes(root: Path, *folders: str) -> dict[str, str]:
    files = [p for folder in folders for p in sorted((root / folder).rglob("*")) if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def locked(root: Path) -> dict[str, object]:
    """dvc.lock's entries for ingest and every stage after it."""
    stages = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {name: entry for name, entry in stages.items() if name != "check"}


@pytest.mark.slow
def test_missing_grams_are_named_then_dropped_and_the_model_exports(tmp_path: Path) -> None:
    root = copy_project(tmp_path / "project")
    (root / SOURCE).parent.mkdir(parents=True, exist_ok=True)
    penguins().to_csv(root / SOURCE, index=False)
    set_params(
        root,
        {
            "task": "regression",
            "data": {"source": "csv", "path": SOURCE, "target": "body_mass_g", "categorical": []},
            "validate": {"suite": SUITE},
            "registry": {"model_name": "penguins-mass"},
            "model": {"hidden": [16]},
            "train": {"epochs": 20, "patience": 8, "device": "cpu", "lr": 0.01},
            "promotion": {"metric": "rmse", "thresholds": {"regression": {}}},
        },
    )
    # Profiling splits the source as ingest does: it refuses the same rows, by their lines.
    proc = run(root, "neuroflow", "profile", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "penguins.csv: target column 'body_mass_g' is missing in 2 of 240 rows" in out
    assert "(line 11, line 132)" in out and "data.drop_missing_target: true" in out
    assert "Traceback" not in out and not (root / SUITE).exists()

    set_params(root, {"data": {"drop_missing_target": True}})
    run(root, "neuroflow", "profile", "--margin", "0.5")
    review_suite(root / SUITE)
    proc = run(root, "dvc", "repro", timeout=900)
    out = proc.stdout + proc.stderr
    assert "dropped 2 of 240 rows (line 11, line 132) whose target 'body_mass_g'" in out

    schema = json.loads((root / "data" / "raw" / "schema.json").read_text())
    assert sum(schema["rows"].values()) == 238
    export = yaml.safe_load((root / "params.yaml").read_text())["export"]
    assert export["parity_atol"] == 1e-5  # the default: no override for grams
    registration = json.loads((root / "artifacts" / "export" / "registration.json").read_text())
    assert registration["model_name"] == "penguins-mass" and registration["version"]
    # Export passed its parity check on predictions in grams (thousands): what it allowed is
    # atol + rtol × the largest prediction, a fraction of a gram, not 1e-5.
    assert 0 <= registration["parity_max_abs_diff"] < 1e-5 + 1e-4 * 2000

    # Later, a stray "?" typed into a measurement: ingest stops the run at that line, nothing
    # downstream runs or changes, and `dvc checkout` puts the last good raw splits back.
    downstream = ("data/processed", "data/validated", "artifacts")
    before, raw, lock = hashes(root, *downstream), hashes(root, "data/raw"), locked(root)
    frame = pd.read_csv(root / SOURCE)
    frame["flipper_length_mm"] = frame["flipper_length_mm"].astype(object)
    frame.loc[57, "flipper_length_mm"] = "?"
    frame.to_csv(root / SOURCE, index=False)
    proc = run(root, "dvc", "repro", check=False, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "failed to reproduce 'ingest'" in out, out
    assert "penguins.csv, column 'flipper_length_mm': 1 cell(s) are not numbers" in out
    assert "line 59 '?'" in out and "Traceback" not in out
    assert "Running stage 'validate'" not in out
    assert hashes(root, *downstream) == before and locked(root) == lock
    run(root, "dvc", "checkout")
    assert hashes(root, "data/raw") == raw
