"""Orchestration overhead: the pipeline through the `retrain` flow vs plain `dvc repro`.

Both run forced (every stage re-runs) on the same throw-away copy of the project, after one
warm-up run, in interleaved rounds (three; one for the smoke); the flow reports to a temporary
local Prefect API started before timing.
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

import yaml

from benchmarks.common import ROOT, copy_project, median

GOAL = 1.3
log = logging.getLogger(__name__)


def _shrink(root: Path, epochs: int) -> None:
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["train"].update({"epochs": epochs, "patience": epochs, "device": "cpu"})
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _dvc(root: Path, *args: str) -> float:
    from pipelines.dag import venv_env

    start = time.perf_counter()
    proc = subprocess.run(["dvc", *args], cwd=root, env=venv_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return time.perf_counter() - start


def run(smoke: bool, rounds: int = 3) -> dict[str, Any]:
    """Seconds for `dvc repro -f` and for `retrain(force=True)` in interleaved rounds (the order
    alternates), the medians, and the median of the per-round ratios."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pipelines.flows import retrain
    from prefect.testing.utilities import prefect_test_harness

    rounds = 1 if smoke else rounds
    plain_runs: list[float] = []
    flow_runs: list[float] = []
    ratios: list[float] = []

    def flow() -> float:
        start = time.perf_counter()
        state = retrain(root=str(root), force=True, return_state=True)
        seconds = time.perf_counter() - start
        if not state.is_completed():
            raise RuntimeError(f"retrain did not complete: {state.message}")
        stages.extend(s for s in state.result()["ran"] if s not in stages)
        return seconds

    stages: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-prefect-") as tmp:
        root = copy_project(Path(tmp) / "project")
        if smoke:
            _shrink(root, epochs=3)
        saved = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
        try:
            warmup = _dvc(root, "repro")
            with prefect_test_harness(server_startup_timeout=60):
                for index in range(rounds):
                    if index % 2 == 0:
                        plain, flow_s = _dvc(root, "repro", "--force"), flow()
                    else:
                        flow_s, plain = flow(), _dvc(root, "repro", "--force")
                    plain_runs.append(plain)
                    flow_runs.append(flow_s)
                    ratios.append(flow_s / plain)
                    log.info(
                        "round %d: dvc repro -f %.1fs, retrain flow %.1fs", index + 1, plain, flow_s
                    )
        finally:
            if saved is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = saved
    ratio = median(ratios)
    log.info("median ratio %.3fx (goal <= %.1fx)", ratio, GOAL)
    return {
        "name": "prefect_overhead",
        "what": "retrain flow (force) / dvc repro -f, same workspace, default pipeline",
        "note": (
            f"`retrain` flow vs `dvc repro -f` (every stage re-runs), {rounds} interleaved "
            "round(s) on one copy of the project; seconds are medians, the ratio is the median "
            f"of per-round ratios. dvc repro -f: {', '.join(f'{v:.2f}' for v in plain_runs)} s; "
            f"flow: {', '.join(f'{v:.2f}' for v in flow_runs)} s."
        ),
        "smoke": smoke,
        "stages": stages,
        "rounds": rounds,
        "warmup_dvc_repro_s": round(warmup, 2),
        "dvc_repro_force_s": round(median(plain_runs), 2),
        "prefect_flow_force_s": round(median(flow_runs), 2),
        "dvc_repro_force_runs_s": [round(v, 2) for v in plain_runs],
        "prefect_flow_force_runs_s": [round(v, 2) for v in flow_runs],
        "ratio": round(ratio, 3),
        "goal_ratio_max": GOAL,
        "meets_goal": ratio <= GOAL,
    }


if __name__ == "__main__":
    import json

    logging.basicConfig(level=logging.INFO)
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
