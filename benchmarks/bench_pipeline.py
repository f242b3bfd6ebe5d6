"""Pipeline overhead: cold ``dvc repro`` in fresh copies (median of three), a no-op repro, CLI
start-up, per stage start-up/imports vs work.

The copy holds the repository's tracked (and untracked, not ignored) files in a new git repo
with its own ``mlflow.db`` (so MLflow creates and migrates a fresh store, as on a new clone).
Per stage, ``python -X importtime <venv>/bin/neuroflow <stage>`` is run after the cold repro:
import time is the sum of the top-level imports' cumulative times, start-up is a bare
interpreter, work is the rest of the wall time (importtime itself adds a little overhead).
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, copy_project, machine, median, own_warm_servers, project_env

log = logging.getLogger("benchmarks.pipeline")

STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "export")
GOALS = {"noop_repro_s": 1.5, "cold_repro_s": 20.0, "cli_help_s": 0.3}
COLD_RUNS = 3
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")

BIN = Path(sys.executable).parent


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return seconds, proc.stderr


def parse_importtime(stderr: str, top: int = 8) -> dict[str, Any]:
    """Total import seconds (top-level imports) and the heaviest root packages."""
    by_root: dict[str, float] = defaultdict(float)
    total = 0.0
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if not match or match.group(3):  # nested imports are inside their parent's cumulative
            continue
        cumulative = int(match.group(2)) / 1e6
        total += cumulative
        by_root[match.group(4).split(".")[0]] += cumulative
    heaviest = sorted(by_root.items(), key=lambda kv: -kv[1])[:top]
    return {"import_s": total, "heaviest": {k: round(v, 3) for k, v in heaviest}}


def cli_help(root: Path, env: dict[str, str], repeats: int) -> dict[str, Any]:
    neuroflow = str(BIN / "neuroflow")
    times = [_timed([neuroflow, "--help"], root, env)[0] for _ in range(repeats)]
    bare = [_timed([sys.executable, "-c", "pass"], root, env)[0] for _ in range(repeats)]
    _, stderr = _timed([sys.executable, "-X", "importtime", neuroflow, "--help"], root, env)
    return {
        "median_s": median(times),
        "runs": times,
        "bare_python_s": median(bare),
        **parse_importtime(stderr),
    }


def mlflow_store(root: Path, env: dict[str, str]) -> dict[str, float]:
    """Seconds for MLflow's first store call on a fresh SQLite DB vs on an existing one."""
    code = (
        "import time, sys; t=time.perf_counter(); import mlflow; i=time.perf_counter()-t;"
        "mlflow.set_tracking_uri(sys.argv[1]); t=time.perf_counter();"
        "mlflow.search_experiments(); print(i, time.perf_counter()-t)"
    )
    uri = f"sqlite:///{root / 'store-probe.db'}"
    out: dict[str, float] = {}
    for label in ("fresh_db", "existing_db"):
        proc = subprocess.run(
            [sys.executable, "-c", code, uri], env=env, capture_output=True, text=True, check=True
        )
        import_s, call_s = map(float, proc.stdout.split()[-2:])
        out[f"{label}_first_call_s"] = call_s
        out["import_mlflow_s"] = import_s
    return out


def run(smoke: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"name": "pipeline", "machine": machine(("dvc", "mlflow"))}
    with tempfile.TemporaryDirectory(prefix="neuroflow-bench-") as tmp:
        root = Path(tmp)
        env = project_env(root)
        result["cli_help"] = cli_help(ROOT, env, 1 if smoke else 5)
        if smoke:  # the dvc runs take a minute; the smoke checks the measuring code only
            return result
        # Each cold run in its own fresh copy (new MLflow store, empty DVC cache).
        cold_runs = []
        for attempt in range(COLD_RUNS):
            project = root / f"project{attempt}"
            copy_project(project)
            env = project_env(project)
            with own_warm_servers(env):  # its own server, started by this run: cold as well
                cold_runs.append(_timed([str(BIN / "dvc"), "repro"], project, env)[0])
            log.info("cold repro %d: %.2f s", attempt + 1, cold_runs[-1])
        noop = [_timed([str(BIN / "dvc"), "repro"], project, env)[0] for _ in range(3)]
        result["cold_repro_s"] = median(cold_runs)
        result["cold_runs"] = cold_runs
        result["noop_repro_s"] = median(noop)
        result["noop_runs"] = noop
        stages: dict[str, Any] = {}
        bare = result["cli_help"]["bare_python_s"]
        for stage in STAGES:
            wall, stderr = _timed(
                [sys.executable, "-X", "importtime", str(BIN / "neuroflow"), stage], project, env
            )
            parsed = parse_importtime(stderr)
            stages[stage] = {
                "wall_s": wall,
                "startup_s": bare,
                **parsed,
                "work_s": max(wall - parsed["import_s"] - bare, 0.0),
            }
            log.info("stage %s: %s", stage, stages[stage])
        result["stages"] = stages
        result["mlflow_store"] = mlflow_store(root, env)
    result["goals"] = {
        "noop_repro_s": {"goal": GOALS["noop_repro_s"], "value": result["noop_repro_s"]},
        "cold_repro_s": {"goal": GOALS["cold_repro_s"], "value": result["cold_repro_s"]},
        "cli_help_s": {"goal": GOALS["cli_help_s"], "value": result["cli_help"]["median_s"]},
    }
    for goal in result["goals"].values():
        goal["met"] = goal["value"] <= goal["goal"]
    return result
