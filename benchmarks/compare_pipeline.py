"""Cold ``dvc repro`` of the default pipeline: an earlier revision's code vs the checkout's.

    python -m benchmarks.compare_pipeline --before 8048d90 [--rounds 5]

Interleaved rounds (the order alternates), each run in a fresh copy of its revision's files with
its own new MLflow store; both use this virtual environment, the earlier code through
PYTHONPATH. Writes ``results/pipeline_before_after.json`` (rendered into RESULTS.md by
``make bench``). Not part of ``make bench`` itself: it needs a revision to compare with.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RESULTS_DIR,
    ROOT,
    copy_project,
    machine,
    median,
    project_env,
    write_json,
)

log = logging.getLogger("benchmarks.compare_pipeline")
BIN = Path(sys.executable).parent


def cold_repro(source: Path, dest: Path) -> float:
    copy_project(dest, source)
    env = project_env(dest)
    env["PYTHONPATH"] = os.pathsep.join([str(source / "src"), env.get("PYTHONPATH", "")])
    started = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "dvc"), "repro"], cwd=dest, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"dvc repro of {source} failed: {proc.stderr[-2000:]}")
    return seconds


def compare(before_rev: str, rounds: int) -> dict[str, Any]:
    after_rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    runs: dict[str, list[float]] = {"before": [], "after": []}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="neuroflow-compare-") as tmp:
        before_tree = Path(tmp) / "before-tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(before_tree), before_rev],
            cwd=ROOT,
            check=True,
        )
        try:
            trees = {"before": before_tree, "after": ROOT}
            for index in range(rounds):
                order = ["before", "after"] if index % 2 == 0 else ["after", "before"]
                this: dict[str, float] = {}
                for name in order:
                    this[name] = cold_repro(trees[name], Path(tmp) / f"{name}{index}")
                    runs[name].append(this[name])
                    log.info("round %d %s: %.2f s", index + 1, name, this[name])
                ratios.append(this["before"] / this["after"])
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(before_tree)], cwd=ROOT, check=False
            )
    return {
        "name": "pipeline_before_after",
        "machine": machine(("dvc", "mlflow", "great_expectations")),
        "conditions": (
            f"{rounds} interleaved rounds, each run in a fresh copy with its own new MLflow "
            f"store; 'before' is {before_rev}, 'after' is {after_rev} (plus any uncommitted "
            "changes), same virtual environment"
        ),
        "runs": runs,
        "ratios": ratios,
        "table": {
            "columns": ["code", "cold dvc repro s (median)", "runs s", "before / after"],
            "rows": [
                [name, median(values), ", ".join(f"{v:.2f}" for v in values), ratio]
                for name, values, ratio in (
                    ("before", runs["before"], ""),
                    ("after", runs["after"], round(median(ratios), 2)),
                )
            ],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = compare(args.before, args.rounds)
    write_json(RESULTS_DIR / "pipeline_before_after.json", result)
    log.info("before/after medians: %s", result["table"]["rows"])


if __name__ == "__main__":
    main()
