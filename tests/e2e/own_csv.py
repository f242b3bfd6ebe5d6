"""A user's own CSV, start to finish: the README's "Your own data" steps on a penguins-like table.

The table is generated here (string categoricals and numeric columns with NaNs, a mass in grams;
nothing downloaded) and saved as data/external/penguins.csv in a fresh copy of the project. For
each of three targets of the same file (species: multiclass, sex: binary, body_mass_g:
regression, in thousands) the test configures params.yaml as the README says, runs
`neuroflow profile`, `dvc repro`, `neuroflow predict` on raw rows (strings, NaN, the label, an
unknown column, an island never seen in training) and `neuroflow serve` answering MLflow's
`dataframe_split` and `dataframe_records` payloads, and checks that both report the same
ignored columns and unseen category, and that `--strict` refuses it in both.

One test file per target (test_own_csv_*.py): `make test` hands out whole files, so the three
cold pipelines run side by side.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from tests.conftest import copy_project, neuroflow_server, run, set_params

SOURCE = "data/external/penguins.csv"
ISLANDS = {"Adelie": ["Torgersen", "Biscoe", "Dream"], "Chinstrap": ["Dream"], "Gentoo": ["Biscoe"]}
# species: (bill length, bill depth, flipper length, body mass) of a female; males are larger.
SHAPE = {
    "Adelie": (37.0, 17.6, 188.0, 3370.0),
    "Chinstrap": (46.6, 17.6, 192.0, 3530.0),
    "Gentoo": (45.6, 14.2, 213.0, 4680.0),
}
MALE = (3.0, 1.8, 6.0, 620.0)


def penguins(rows: int = 300, seed: int = 7) -> pd.DataFrame:
    """Penguins-like rows: three species, islands by species, sexes apart in size; NaN in the
    string columns and the measurements (3%), none in the three targets."""
    rng = np.random.default_rng(seed)
    species = rng.choice(list(SHAPE), size=rows, p=[0.44, 0.2, 0.36])
    sex = rng.choice(["female", "male"], size=rows)
    base = np.array([SHAPE[s] for s in species]) + np.outer(sex == "male", MALE)
    noise = rng.normal(size=(rows, 4)) * np.array([1.2, 0.5, 3.5, 160.0])
    bill_length, bill_depth, flipper, mass = (base + noise).T
    mass = mass + 18.0 * (flipper - base[:, 2])  # heavier with longer flippers
    frame = pd.DataFrame(
        {
            "species": species,
            "island": [rng.choice(ISLANDS[s]) for s in species],
            "bill_length_mm": bill_length.round(1),
            "bill_depth_mm": bill_depth.round(1),
            "flipper_length_mm": flipper.round(0),
            "body_mass_g": (mass / 25).round(0) * 25,
            "sex": sex,
            "clutch_completion": rng.choice(["Yes", "No"], size=rows, p=[0.9, 0.1]),
        }
    )
    for column in ("island", "clutch_completion", "bill_length_mm", "bill_depth_mm"):
        frame.loc[rng.random(rows) < 0.03, column] = np.nan
    return frame


# target → (task, a test metric predict --metrics must reproduce). The defaults fit each task:
# export parity is relative to the output scale (grams), promotion.metric follows the task.
TARGETS: dict[str, tuple[str, str]] = {
    "species": ("multiclass", "accuracy"),
    "sex": ("binary", "accuracy"),
    "body_mass_g": ("regression", "r2"),
}


def fresh_clone(dest: Path) -> Path:
    """A fresh clone with the user's file in data/external (nothing run yet)."""
    root = copy_project(dest)
    (root / SOURCE).parent.mkdir(parents=True, exist_ok=True)
    penguins().to_csv(root / SOURCE, index=False)
    return root


def configure(root: Path, target: str) -> tuple[str, str]:
    """params.yaml as the README's "Your own data" snippet shows; returns (task, model name)."""
    task = TARGETS[target][0]
    name = f"penguins-{target.replace('_', '-')}"
    set_params(
        root,
        {
            "task": task,
            "data": {"source": "csv", "path": SOURCE, "target": target, "categorical": []},
            "validate": {"suite": f"data/suites/penguins_{target}.json"},
            "registry": {"model_name": name},
            # Shrunk for the test: tiny network, few epochs, CPU.
            "model": {"hidden": [16]},
            "train": {"epochs": 25, "patience": 8, "device": "cpu", "lr": 0.01},
            # The first champion's bars are the gate's business, tested elsewhere: here any
            # trained model may become the champion that `serve` loads.
            "promotion": {"thresholds": {task: {}}},
        },
    )
    return task, name


def review(suite: Path) -> None:
    """The README's "review it" step: the proposed null bound is the train split's non-null
    share minus 0.05, tighter than a 45-row validation split's sampling noise at 3% NaN (3 NaN
    there is 6.7%); a reviewer allows 10% missing."""
    data = json.loads(suite.read_text())
    for expectation in data["expectations"]:
        if "mostly" in expectation["kwargs"]:
            expectation["kwargs"]["mostly"] = min(expectation["kwargs"]["mostly"], 0.9)
    suite.write_text(json.dumps(data, indent=2))


def user_rows(root: Path, target: str) -> pd.DataFrame:
    """Rows as a user holds them, in a CSV: the raw test split (strings and NaN, the label), an
    unknown column, and one more row, unlabelled, from an island the model never saw."""
    rows = pd.read_parquet(root / "data" / "raw" / "test.parquet")
    assert rows.isna().any().any() and all(isinstance(v, str) for v in rows["island"].dropna())
    mars = rows.head(1).assign(island="Mars", **{target: np.nan})
    return pd.concat([rows, mars], ignore_index=True).assign(note="field notes")


def start_to_finish(tmp_path: Path, target: str) -> None:
    """The steps above for `target` on a fresh clone in `tmp_path`."""
    root = fresh_clone(tmp_path / "project")
    task, name = configure(root, target)
    suite = f"data/suites/penguins_{target}.json"
    run(root, "neuroflow", "profile")  # writes validate.suite
    review(root / suite)
    run(root, "dvc", "repro", timeout=600)
    evaluated = json.loads((root / "artifacts" / "metrics.json").read_text())["test"]
    metric = TARGETS[target][1]
    rows = user_rows(root, target)
    rows.to_csv(root / "rows.csv", index=False)

    if task == "multiclass":  # once: the same code for every task
        # No champion yet: the message says so and gives the command that uses the challenger.
        refused = run(root, "neuroflow", "predict", "-i", "rows.csv", "-o", "out.csv", check=False)
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0 and "no @champion yet" in said, said
        assert "`neuroflow predict -i rows.csv -o out.csv --alias challenger`" in said, said
        assert "Traceback" not in said

    scored = run(root, *_predict("rows.csv", "out.csv"), "--metrics", "--json")
    log = scored.stderr
    assert f"label column ['{target}'] ignored" in log, log
    assert "unknown column(s) ['note'] ignored" in log, log
    assert "column 'island' has category 'Mars' in 1 row(s), unseen in training" in log, log
    assert "1 row(s) without a label left out" in log, log
    # --metrics on the labelled rows (the test split) reports evaluate's test metrics.
    reported = json.loads(scored.stdout.strip().splitlines()[-1])
    assert reported["rows"] == len(rows) - 1
    assert math.isclose(reported[metric], evaluated[metric], rel_tol=1e-4, abs_tol=1e-4), (
        reported,
        evaluated,
    )
    out = pd.read_csv(root / "out.csv")
    assert list(out.columns[: rows.shape[1]]) == list(rows.columns)  # input kept, label included
    outputs = ["prediction"] if task == "regression" else ["label"]
    assert out[outputs].notna().all().all() and len(out) == len(rows)
    if task == "regression":  # grams, not the standardised training scale
        assert out["prediction"].between(2000, 7000).all(), out["prediction"].describe()

    if task == "multiclass":
        # --strict refuses the unknown column, then (without it) the unseen island; no output.
        rows.drop(columns=["note"]).to_csv(root / "rows_known.csv", index=False)
        for source, refusal in (
            ("rows.csv", "unknown column(s) ['note']"),
            ("rows_known.csv", "column 'island' value 'Mars' (1 row(s))"),
        ):
            strict = run(root, *_predict(source, "strict.csv"), "--strict", check=False)
            said = strict.stdout + strict.stderr
            assert strict.returncode != 0 and refusal in said, said
            assert not (root / "strict.csv").exists()

    promoted = run(root, "neuroflow", "promote", "--json")
    assert json.loads(promoted.stdout)["decision"] == "promoted", promoted.stdout
    with neuroflow_server(root, "--refresh", "0") as url:
        assert httpx.get(f"{url}/metadata").json()["model"] == name
        split = _post(url, "dataframe_split", rows)
        records = _post(url, "dataframe_records", rows)
        for response in (split, records):
            assert response.status_code == 200, response.text
            assert response.headers["x-neuroflow-unseen-categories"] == "1"
            assert response.headers["x-neuroflow-ignored-columns"] == f"{target},note"
        assert split.json() == records.json()
        assert "category 'Mars' in 1 row(s), unseen in training" in (root / "serve.log").read_text()
        served = split.json()["predictions"][outputs[0]]
        if task == "regression":
            np.testing.assert_allclose(served, out["prediction"], rtol=1e-5)
        else:
            assert [str(v) for v in served] == out["label"].astype(str).tolist()
    if task == "multiclass":
        with neuroflow_server(root, "--strict", log_name="serve-strict.log") as url:
            refused_http = _post(url, "dataframe_records", rows.drop(columns=["note"]))
            assert refused_http.status_code == 400
            body = refused_http.json()
            assert body["error_code"] == "UNSEEN_CATEGORY"
            assert body["unseen"] == [{"column": "island", "value": "Mars", "rows": 1}]


def _predict(source: str, output: str) -> list[str]:
    return ["neuroflow", "predict", "-i", source, "-o", output, "--alias", "challenger"]


def _post(url: str, kind: str, rows: pd.DataFrame) -> httpx.Response:
    """An MLflow scoring payload of raw rows; NaN travels as JSON null."""
    plain = rows.astype(object).where(rows.notna(), None)
    if kind == "dataframe_split":
        payload: dict[str, Any] = {
            kind: {"columns": list(plain.columns), "data": plain.values.tolist()}
        }
    else:
        payload = {kind: plain.to_dict(orient="records")}
    return httpx.post(f"{url}/invocations", json=payload, timeout=30)
