"""Scale: a generated tabular dataset through ingest → validate → preprocess → train → evaluate.

Sizes 10⁵, 10⁶ and 10⁷ rows × 32 float32 features (smoke: 10⁴). Every stage runs as its own
`neuroflow <stage>` process under a fresh wrapper interpreter, so the wrapper's
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is that stage's peak RSS alone. Train runs one epoch
with a large batch (the point is the data path, not convergence). The suite is proposed from
the ingested train split by `neuroflow profile` (set-up, not timed).

Goals: wall time and peak RSS grow about linearly with rows (per-row cost at the largest size
within 1.5× of the middle one), and peak RSS < 3× the raw data size at 10⁷ rows.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import copy_project, machine, project_env

log = logging.getLogger("benchmarks.scale")

FEATURES = 32
SIZES = (100_000, 1_000_000, 10_000_000)
SMOKE_SIZES = (10_000,)
STAGES = ("ingest", "validate", "preprocess", "train", "evaluate")
BIN = Path(sys.executable).parent
RSS_GOAL_X_RAW = 3.0
LINEAR_SLACK = 1.5

# Runs `argv` and prints its wall seconds and peak RSS (KiB on Linux); a fresh interpreter per
# stage, so RUSAGE_CHILDREN holds that stage's process only.
_WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=sys.stderr).returncode\n"
    "wall = time.perf_counter() - t\n"
    "print(rc, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def raw_bytes(rows: int) -> int:
    """The data as the machine holds it at its smallest: float32 features + an int8 label."""
    return rows * (FEATURES * 4 + 1)


def generate(path: Path, rows: int, seed: int = 0, chunk: int = 1_000_000) -> None:
    """A learnable binary task: the label is a noisy linear function of the features."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=FEATURES).astype(np.float32)
    names = [f"f{i:02d}" for i in range(FEATURES)]
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, rows, chunk):  # bounded memory while writing 10⁷ rows
            n = min(chunk, rows - start)
            x = rng.normal(size=(n, FEATURES)).astype(np.float32)
            logits = x @ weights + rng.normal(scale=2.0, size=n).astype(np.float32)
            cols = {name: x[:, i] for i, name in enumerate(names)}
            cols["target"] = (logits > 0).astype(np.int8)
            table = pa.table(cols)
            if writer is None:
                writer = pq.ParquetWriter(str(path), table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _configure(project: Path, data: Path, rows: int) -> None:
    import yaml

    params_path = project / "params.yaml"
    params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    params["task"] = "binary"
    params["data"].update(
        source="parquet", name="scale", path=str(data), target="target", max_rows=rows * 2
    )
    params["validate"]["suite"] = "data/suites/scale.json"
    params["train"].update(epochs=1, patience=1, batch_size=4096, device="cpu")
    params["registry"].update(model_name="neuroflow-scale", experiment="neuroflow-scale")
    params["promotion"]["slices"] = []
    params_path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def _stage(project: Path, env: dict[str, str], *args: str) -> dict[str, float]:
    cmd = [sys.executable, "-c", _WRAPPER, str(BIN / "neuroflow"), *args]
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=7200)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"neuroflow {' '.join(args)}: {proc.stderr[-2000:]}")
    rc, wall, rss_kib = proc.stdout.split()[-3:]
    if int(rc) != 0:
        raise RuntimeError(f"neuroflow {' '.join(args)} exited {rc}: {proc.stderr[-2000:]}")
    return {"wall_s": float(wall), "peak_rss_mb": int(rss_kib) / 1024}


def measure(base: Path, rows: int) -> dict[str, Any]:
    """Every stage's wall time and peak RSS on a fresh project over `rows` generated rows."""
    project = copy_project(base / f"project-{rows}")
    data = base / f"scale-{rows}.parquet"
    started = time.perf_counter()
    generate(data, rows)
    generate_s = time.perf_counter() - started
    _configure(project, data, rows)
    env = project_env(project)
    stages: dict[str, dict[str, float]] = {}
    stages["ingest"] = _stage(project, env, "ingest")
    _stage(project, env, "profile", "--output", "data/suites/scale.json")  # set-up, not timed
    for stage in STAGES[1:]:
        stages[stage] = _stage(project, env, stage)
        log.info("scale %d rows: %s %s", rows, stage, stages[stage])
    raw_mb = raw_bytes(rows) / 2**20
    peak = max(s["peak_rss_mb"] for s in stages.values())
    total = sum(s["wall_s"] for s in stages.values())
    return {
        "rows": rows,
        "features": FEATURES,
        "raw_mb": raw_mb,
        "parquet_mb": data.stat().st_size / 2**20,
        "generate_s": generate_s,
        "stages": stages,
        "total_wall_s": total,
        "peak_rss_mb": peak,
        "peak_rss_x_raw": peak / raw_mb,
        "us_per_row": total / rows * 1e6,
    }


def _goals(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    goals: dict[str, Any] = {}
    if len(sizes) >= 2:
        # Fixed costs (interpreter, imports) dominate small sizes: compare the two largest.
        mid, big = sizes[-2], sizes[-1]
        ratio = big["us_per_row"] / mid["us_per_row"]
        goals["linear_time"] = {
            "goal": LINEAR_SLACK,
            "value": ratio,
            "met": ratio <= LINEAR_SLACK,
            "between_rows": [mid["rows"], big["rows"]],
        }
        rss_ratio = (big["peak_rss_mb"] / big["rows"]) / (mid["peak_rss_mb"] / mid["rows"])
        goals["linear_rss"] = {
            "goal": LINEAR_SLACK,
            "value": rss_ratio,
            "met": rss_ratio <= LINEAR_SLACK,
        }
    largest = sizes[-1]
    # Judged at 10⁷ rows only: below that the interpreter, torch and MLflow (~0.5 GB) dominate.
    judged = largest["rows"] >= SIZES[-1]
    goals["peak_rss_x_raw"] = {
        "goal": RSS_GOAL_X_RAW,
        "value": largest["peak_rss_x_raw"],
        "met": largest["peak_rss_x_raw"] < RSS_GOAL_X_RAW if judged else None,
        "at_rows": largest["rows"],
    }
    if len(sizes) >= 2:  # what the data itself costs: extra RSS per extra raw byte
        mid = sizes[-2]
        extra = (largest["peak_rss_mb"] - mid["peak_rss_mb"]) / (largest["raw_mb"] - mid["raw_mb"])
        goals["marginal_rss_x_raw"] = {"goal": RSS_GOAL_X_RAW, "value": extra}
        goals["marginal_rss_x_raw"]["met"] = extra < RSS_GOAL_X_RAW
    return goals


def run(smoke: bool, sizes: tuple[int, ...] | None = None) -> dict[str, Any]:
    """`sizes` overrides the row counts (e.g. ``(10**5, 10**6)`` where 10⁷ takes too long)."""
    chosen = sizes or (SMOKE_SIZES if smoke else SIZES)
    result: dict[str, Any] = {"name": "scale", "machine": machine(("pyarrow",))}
    measured: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="neuroflow-scale-") as tmp:
        for rows in chosen:
            measured.append(measure(Path(tmp), rows))
            log.info("scale %d rows: %s", rows, measured[-1])
    result["sizes"] = measured
    # One row per stage and size, so the report shows where the time and the memory go.
    result["stages"] = [
        {
            "rows": size["rows"],
            "stage": stage,
            "wall_s": figures["wall_s"],
            "peak_rss_mb": figures["peak_rss_mb"],
            "peak_rss_x_raw": figures["peak_rss_mb"] / size["raw_mb"],
        }
        for size in measured
        for stage, figures in size["stages"].items()
    ]
    result["goals"] = _goals(measured)
    return result


if __name__ == "__main__":  # python -m benchmarks.bench_scale 100000 1000000
    import json

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    picked = tuple(int(a) for a in sys.argv[1:]) or None
    print(json.dumps(run(smoke=False, sizes=picked), indent=2, default=str))
