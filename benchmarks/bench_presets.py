"""Every preset's quality bar, across seeds, on the real stages (the figures the README quotes).

For each preset and seed: a scratch project (params.yaml + presets/ + data/suites/), then the
ingest → validate → preprocess → train → evaluate stages in process, exactly as `dvc repro` runs
them (export is left out: its ONNX parity is covered per model type by the tests). The bar is
checked on the `test` metrics `evaluate` writes. Every preset runs on eleven seeds: 99 runs of
3-13 s each on two cores, which does not fit beside the rest of the test suite in its 10-minute
budget, so the bars are checked here and the suite runs a shrunken forecast preset through the
real `run-preset` → `dvc exp run` path instead (tests/stage/test_presets.py).

    python -m benchmarks.bench_presets            # all presets, seeds 0-9 and 42
    python -m benchmarks.bench_presets --smoke    # iris, one seed, few epochs
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, machine

log = logging.getLogger("benchmarks.presets")

# preset -> (metric, comparison, bar); "mae_vs_naive" ≤ 0.9 is "mae at least 10% below naive".
BARS: dict[str, tuple[str, str, float]] = {
    "breast_cancer": ("accuracy", ">=", 0.95),
    "iris": ("accuracy", ">=", 0.93),
    "wine": ("accuracy", ">=", 0.95),
    "diabetes": ("r2", ">=", 0.40),
    "digits": ("accuracy", ">=", 0.97),
    "forecast": ("mae_vs_naive", "<=", 0.90),
    "forecast_gru": ("mae_vs_naive", "<=", 0.90),
    "forecast_transformer": ("mae_vs_naive", "<=", 0.90),
    "anomaly": ("roc_auc", ">=", 0.90),
    # Generated-vs-test FD over real-vs-test FD; the full bar (and all 10 classes generated)
    # over seeds 0-4 beside a noise baseline: benchmarks/bench_gan.py.
    "gan_digits": ("fid_ratio", "<=", 3.0),
}
# Presets measured by their own benchmark (minutes per seed), left out of the default run.
OWN_BENCHMARK = frozenset({"gan_digits"})
# "Any seed": ten seeds plus the default one (each run takes seconds on two cores).
SEEDS = (*range(10), 42)
STAGES = ("ingest", "validate", "preprocess", "train", "evaluate")


def _scratch(base: Path, name: str, seed: int, extra: dict[str, Any]) -> Path:
    import yaml

    from neuroflow.config import merge_overrides as merge
    from neuroflow.presets import load_overrides

    root = base / f"{name}-{seed}"
    root.mkdir(parents=True)
    shutil.copytree(ROOT / "data" / "suites", root / "data" / "suites")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = merge(merge(params, load_overrides(ROOT / "presets" / f"{name}.yaml")), extra)
    params["seed"] = seed
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def run_preset(
    base: Path, name: str, seed: int, extra: dict[str, Any], stages: tuple[str, ...] = STAGES
) -> dict[str, Any]:
    import importlib

    from neuroflow.config import Paths, load_params

    root = _scratch(base, name, seed, extra)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    params, paths = load_params(root / "params.yaml"), Paths(root=root)
    started = time.perf_counter()
    for stage in stages:
        importlib.import_module(f"neuroflow.stages.{stage}").run(params, paths)
    seconds = time.perf_counter() - started
    test = json.loads(paths.metrics.read_text())["test"]
    summary = json.loads(paths.train_summary.read_text())
    metric, op, bar = BARS[name]
    value = test[metric]
    ok = value >= bar if op == ">=" else value <= bar
    return {
        "preset": name,
        "seed": seed,
        "metric": metric,
        "value": round(value, 4),
        "bar": f"{op} {bar}",
        "passed": bool(ok),
        "best_epoch": summary["best_epoch"],
        "seconds": round(seconds, 1),
        "test": {k: round(v, 4) for k, v in test.items() if isinstance(v, int | float)},
    }


def run(smoke: bool) -> dict[str, Any]:
    import torch

    # Tiny networks on 2 shared cores: one intra-op thread avoids oversubscription stalls.
    torch.set_num_threads(1)
    logging.getLogger("neuroflow").setLevel(logging.WARNING)
    presets = ["iris"] if smoke else [p for p in BARS if p not in OWN_BENCHMARK or len(BARS) == 1]
    extra: dict[str, Any] = (
        {"train": {"epochs": 5, "device": "cpu"}} if smoke else {"train": {"device": "cpu"}}
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="neuroflow-presets-") as tmp:
        for name in presets:
            seeds = (0,) if smoke else SEEDS
            for seed in seeds:
                # The smoke run skips validate (Great Expectations' import alone is seconds).
                stages = tuple(s for s in STAGES if s != "validate") if smoke else STAGES
                row = run_preset(Path(tmp), name, seed, extra, stages)
                log.info(
                    "%s seed %d: %s = %s (bar %s)",
                    name,
                    seed,
                    row["metric"],
                    row["value"],
                    row["bar"],
                )
                rows.append(row)
    return {
        "benchmark": "presets",
        "smoke": smoke,
        "machine": machine(("torch", "scikit-learn")),
        "seeds": {
            name: sorted({r["seed"] for r in rows if r["preset"] == name}) for name in presets
        },
        "results": rows,
        "all_passed": all(r["passed"] for r in rows) if not smoke else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", nargs="*", help="preset names")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.only:
        chosen = {k: BARS[k] for k in args.only}
        BARS.clear()
        BARS.update(chosen)
    print(json.dumps(run(args.smoke), indent=2))


if __name__ == "__main__":
    main()
