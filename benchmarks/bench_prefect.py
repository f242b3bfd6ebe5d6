"""Orchestration overhead: the pipeline through the `retrain` flow vs plain `dvc repro`.

Both run forced (every stage re-runs) on the same throw-away copy of the project, after one
warm-up run; the flow reports to a temporary local Prefect API started before timing.
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

from benchmarks.common import ROOT, copy_project

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


def run(smoke: bool) -> dict[str, Any]:
    """Seconds for `dvc repro -f` and for `retrain(force=True)`, and their ratio."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pipelines.flows import retrain
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory(prefix="bench-prefect-") as tmp:
        root = copy_project(Path(tmp) / "project")
        if smoke:
            _shrink(root, epochs=3)
        saved = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
        try:
            warmup = _dvc(root, "repro")
            plain = _dvc(root, "repro", "--force")
            with prefect_test_harness(server_startup_timeout=60):
                start = time.perf_counter()
                state = retrain(root=str(root), force=True, return_state=True)
                flow_s = time.perf_counter() - start
            if not state.is_completed():
                raise RuntimeError(f"retrain did not complete: {state.message}")
            stages = state.result()["ran"]
        finally:
            if saved is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = saved
    ratio = flow_s / plain
    log.info(
        "dvc repro -f %.1fs, retrain flow %.1fs: %.3fx (goal <= %.1fx)", plain, flow_s, ratio, GOAL
    )
    return {
        "name": "prefect_overhead",
        "what": "retrain flow (force) / dvc repro -f, same workspace, default pipeline",
        "smoke": smoke,
        "stages": stages,
        "warmup_dvc_repro_s": round(warmup, 2),
        "dvc_repro_force_s": round(plain, 2),
        "prefect_flow_force_s": round(flow_s, 2),
        "ratio": round(ratio, 3),
        "goal_ratio_max": GOAL,
        "meets_goal": ratio <= GOAL,
    }


if __name__ == "__main__":
    import json

    logging.basicConfig(level=logging.INFO)
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
