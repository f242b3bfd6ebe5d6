"""Fixed costs a stage pays whatever the data size, each with and without what removes it.

- **validate**: the default pipeline's suite (``data/suites/breast_cancer.json``, 95 rules) on
  the bundled 569 rows split as ingest splits them, with Data Docs, as ``neuroflow validate``
  runs it: with the kwargs tuning of ``validation.gx_tuning`` (what the stage does) and with
  Great Expectations' own kwargs helpers.
- **new tracking store**: the first call on a project's new SQLite store, seeded from the
  migrated empty store (``store_seed``, what ``tracking.client`` does) and made by MLflow's
  migrations.

Every measurement runs in a fresh interpreter that has imported what the stage imports, and
reports the CPU seconds (user + system) of the measured call alone; rounds are interleaved and
each ratio is taken within its round.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import interleave, machine, median, run_python

log = logging.getLogger("benchmarks.stage_costs")

_VALIDATE = r"""
import json, sys, tempfile, time
from pathlib import Path
from neuroflow.config import load_params
from neuroflow.data import bundled
from neuroflow.data.split import split_frame
from neuroflow.validation import gx_tuning, runner
from neuroflow.validation.suite import load_suite

tuned = sys.argv[1] == "tuned"
runner.import_gx()
params = load_params("params.yaml")  # the default pipeline's data, split as ingest splits it
data = params.data
frames = split_frame(
    bundled.load(data.name), target=data.target, stratify=True,
    val_fraction=data.val_fraction, test_fraction=data.test_fraction, seed=params.seed,
)
suite = load_suite(params.validate_.suite)
if not tuned:  # Great Expectations' own kwargs helpers (the fingerprint is skipped in both)
    gx_tuning._read_kwargs_once = lambda: None
with tempfile.TemporaryDirectory() as tmp:
    started = time.process_time()
    report = runner.run_suite(frames, suite, Path(tmp) / "docs")
    cpu = time.process_time() - started
print(json.dumps({"cpu_s": cpu, "success": report.success,
                  "evaluated": sum(s["evaluated"] for s in report.splits.values())}))
"""

_STORE = r"""
import json, os, sys, time
from pathlib import Path
import mlflow
from mlflow.tracking import MlflowClient
from neuroflow import store_seed

seeded, root = sys.argv[1] == "seeded", Path(sys.argv[2])
uri = f"sqlite:///{root / 'mlflow.db'}"
os.chdir(root)
started = time.process_time()
if seeded:
    assert store_seed.seed(uri)
experiments = MlflowClient(uri).search_experiments()
cpu = time.process_time() - started
print(json.dumps({"cpu_s": cpu, "experiments": len(experiments)}))
"""


def _validate(variant: str) -> dict[str, Any]:
    return run_python(_VALIDATE, variant)


def _store(variant: str, base: Path, counter: list[int]) -> dict[str, Any]:
    counter[0] += 1
    root = base / f"{variant}{counter[0]}"
    root.mkdir()
    return run_python(_STORE, variant, str(root), env={"NEUROFLOW_CACHE_DIR": str(base / "cache")})


def _compare(runs: dict[str, list[dict[str, Any]]], ours: str, theirs: str) -> dict[str, Any]:
    per_round = [a["cpu_s"] / b["cpu_s"] for a, b in zip(runs[ours], runs[theirs], strict=True)]
    return {
        "rounds": runs,
        ours: median([r["cpu_s"] for r in runs[ours]]),
        theirs: median([r["cpu_s"] for r in runs[theirs]]),
        "ratio_per_round": per_round,
        "ratio": median(per_round),
    }


def run(smoke: bool) -> dict[str, Any]:
    rounds = 1 if smoke else 5
    out: dict[str, Any] = {
        "name": "stage_costs",
        "machine": machine(("great_expectations", "mlflow")),
        "rounds": rounds,
    }
    validate = interleave(
        {"tuned": lambda: _validate("tuned"), "ge_own": lambda: _validate("ge_own")}, rounds
    )
    if [r["evaluated"] for r in validate["tuned"]] != [r["evaluated"] for r in validate["ge_own"]]:
        raise RuntimeError("validate: the two variants evaluated different numbers of rules")
    out["validate"] = _compare(validate, "tuned", "ge_own")
    with tempfile.TemporaryDirectory(prefix="neuroflow-bench-store-") as tmp:
        base, counter = Path(tmp), [0]
        _store("seeded", base, counter)  # makes the template once, outside the rounds
        store = interleave(
            {
                "seeded": lambda: _store("seeded", base, counter),
                "migrated": lambda: _store("migrated", base, counter),
            },
            rounds,
        )
    out["new_store"] = _compare(store, "seeded", "migrated")
    v, s = out["validate"], out["new_store"]
    out["note"] = (
        f"Fresh interpreter per measurement, CPU seconds of the measured call, median of {rounds} "
        "interleaved rounds; the ratio is taken within each round."
    )
    out["table"] = {
        "columns": ["fixed cost", "as the stage runs it (CPU s)", "without (CPU s)", "ratio"],
        "rows": [
            [
                "validate: 95-rule suite, 3 splits of 569 rows, Data Docs; GE kwargs read once",
                v["tuned"],
                v["ge_own"],
                v["ratio"],
            ],
            [
                "first call on a new SQLite tracking store; seeded vs MLflow's migrations",
                s["seeded"],
                s["migrated"],
                s["ratio"],
            ],
        ],
    }
    return out
