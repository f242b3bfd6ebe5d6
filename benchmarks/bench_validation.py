"""Validation cost: ``run_suite`` (Great Expectations) vs plain vectorised pandas, same rules.

The suite has the structure of ``data/suites/breast_cancer.json``: exact column set, row count,
and per feature column a dtype list, not-null and a value range, plus the target in {0, 1}. It
uses 10 feature columns (not 30) so that 10⁷ rows (0.9 GB of float64) fit beside the other work
on a small machine. Every measurement runs in a fresh interpreter so that its peak RSS
(``ru_maxrss``) is its own; the data is generated inside it, and peak RSS is reported both in
total and above the peak after building the frame. Runs are interleaved.
"""

from __future__ import annotations

import logging
from typing import Any

from benchmarks.common import interleave, machine, median, run_python

log = logging.getLogger("benchmarks.validation")

FEATURES = 10
GOAL_RATIO = 3.0

# The child builds the frame, then checks it; it prints one JSON line.
_CHILD = r"""
import json, resource, sys, time
import numpy as np, pandas as pd

kind, rows, features = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
cols = {f"f{i}": rng.random(rows) * 50.0 for i in range(features)}
cols["target"] = rng.integers(0, 2, rows)
frame = pd.DataFrame(cols, copy=False)
del cols
names = list(frame.columns)
floats = ["float16", "float32", "float64", "Float32Dtype", "Float64Dtype"]
exps = [
    {"type": "expect_table_columns_to_match_set",
     "kwargs": {"column_set": names, "exact_match": True}},
    {"type": "expect_table_row_count_to_be_between",
     "kwargs": {"min_value": 1, "max_value": 10 * rows}},
]
for name in names[:-1]:
    exps += [
        {"type": "expect_column_values_to_be_in_type_list",
         "kwargs": {"column": name, "type_list": floats}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": name}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": name, "min_value": 0.0, "max_value": 49.9}},  # some rows fail
    ]
exps += [
    {"type": "expect_column_values_to_be_in_type_list",
     "kwargs": {"column": "target", "type_list": ["int64", "Int64Dtype"]}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "target"}},
    {"type": "expect_column_values_to_be_in_set",
     "kwargs": {"column": "target", "value_set": [0, 1]}},
]
suite = {"name": "bench", "expectations": exps, "meta": {}}
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def pandas_checks(df):
    # The same rules, vectorised; failures keep a count and up to 5 examples, like GE's BASIC.
    failures = []
    for exp in exps:
        kw, kind_ = exp["kwargs"], exp["type"]
        if kind_ == "expect_table_columns_to_match_set":
            if set(df.columns) != set(kw["column_set"]):
                failures.append((kind_, None, 0, []))
            continue
        if kind_ == "expect_table_row_count_to_be_between":
            if not kw["min_value"] <= len(df) <= kw["max_value"]:
                failures.append((kind_, None, 0, []))
            continue
        s = df[kw["column"]]
        if kind_ == "expect_column_values_to_be_in_type_list":
            names = (type(s.dtype).__name__, str(s.dtype))
            if not set(names) & set(kw["type_list"]):
                failures.append((kind_, kw["column"], 0, []))
            continue
        if kind_ == "expect_column_values_to_not_be_null":
            bad = s.isna().to_numpy()
        elif kind_ == "expect_column_values_to_be_between":
            v = s.to_numpy()
            bad = ~((v >= kw["min_value"]) & (v <= kw["max_value"])) & ~np.isnan(v)
        else:
            bad = ~s.isin(kw["value_set"]).to_numpy() & s.notna().to_numpy()
        count = int(bad.sum())
        if count:
            failures.append((kind_, kw["column"], count, s[bad].head(5).tolist()))
    return failures

started = time.perf_counter()
if kind == "pandas":
    import_s = 0.0
    t0 = time.perf_counter()
    failures = len(pandas_checks(frame))
    seconds = time.perf_counter() - t0
else:
    from neuroflow.validation.runner import import_gx, run_suite
    t0 = time.perf_counter()
    import_gx()
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = run_suite({"train": frame}, suite, None)
    seconds = time.perf_counter() - t0
    failures = len(report.failures)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({
    "seconds": seconds, "import_seconds": import_s, "failures": failures,
    "expectations": len(exps),
    "peak_rss_mb": peak / 1024, "base_rss_mb": base_rss / 1024,
    "extra_rss_mb": (peak - base_rss) / 1024,
}))
"""


def _measure(kind: str, rows: int) -> dict[str, Any]:
    return run_python(_CHILD, kind, str(rows), str(FEATURES))


def run(smoke: bool) -> dict[str, Any]:
    sizes = [(10_000, 1)] if smoke else [(1_000_000, 3), (10_000_000, 3)]
    out: dict[str, Any] = {
        "name": "validation",
        "machine": machine(("great_expectations",)),
        "features": FEATURES,
        "sizes": {},
    }
    for rows, rounds in sizes:
        runs = interleave(
            {
                "neuroflow": lambda rows=rows: _measure("neuroflow", rows),
                "pandas": lambda rows=rows: _measure("pandas", rows),
            },
            rounds,
        )
        per_round = [
            ours["seconds"] / theirs["seconds"]
            for ours, theirs in zip(runs["neuroflow"], runs["pandas"], strict=True)
        ]
        entry: dict[str, Any] = {
            "rounds": runs,
            "ratio_seconds": {"per_round": per_round, "median": median(per_round)},
        }
        for name, results in runs.items():
            entry[name] = {
                key: median([r[key] for r in results])
                for key in ("seconds", "import_seconds", "peak_rss_mb", "extra_rss_mb", "failures")
            }
        if runs["neuroflow"][0]["failures"] != runs["pandas"][0]["failures"]:
            log.warning("validation: GE and pandas disagree on the number of failures")
        out["sizes"][str(rows)] = entry
    largest = out["sizes"][str(sizes[-1][0])]
    out["goal"] = {
        "rows": sizes[-1][0],
        "goal_ratio": GOAL_RATIO,
        "ratio": largest["ratio_seconds"]["median"],
        "met": largest["ratio_seconds"]["median"] <= GOAL_RATIO,
    }
    return out
