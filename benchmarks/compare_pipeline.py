"""The default pipeline, an earlier revision's code vs the checkout's: a cold ``dvc repro``,
then the iteration loop a user lives in, ``dvc exp run -S train.lr=<new value>`` (train →
evaluate → export re-run; the data stages are up to date).

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
import re
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
    own_warm_servers,
    project_env,
    write_json,
)

log = logging.getLogger("benchmarks.compare_pipeline")
BIN = Path(sys.executable).parent


GOALS = {"cold": 20.0, "iteration": 8.0}
NOTE = (
    "What 'after' changes: the stages DVC runs are forked from a warm server "
    "(`neuroflow/warm`), which imported torch, pandas, Great Expectations and MLflow once; the "
    "first stage of the cold run starts it and the light stages run on their own until it has "
    "imported everything. 'Pipeline overhead' above measures each stage run on its own "
    "(typed by hand, or `NEUROFLOW_WARM=0`), which is what 'before' paid per stage."
)
ITERATION_LR = "0.0007"  # params.yaml has 0.001: a new value, so training re-runs
_RAN = re.compile(r"Running stage '([\w-]+)'")


def _timed_dvc(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, list[str]]:
    """Seconds and the stages that ran."""
    started = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} in {cwd} failed: {proc.stderr[-2000:]}")
    return seconds, _RAN.findall(proc.stdout + proc.stderr)


def entry_point_bin(tree: Path, dest: Path) -> Path:
    """A folder holding the `neuroflow` script that installing `tree` would write (its own
    pyproject entry point): the virtual environment's script may name a module that the other
    revision does not have."""
    import tomllib

    target = tomllib.loads((tree / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = target["neuroflow"].split(":")
    dest.mkdir(parents=True, exist_ok=True)
    script = dest / "neuroflow"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n"
    )
    script.chmod(0o755)
    return dest


def cold_then_iteration(source: Path, dest: Path) -> dict[str, Any]:
    """A cold `dvc repro` in a fresh copy, then `dvc exp run -S train.lr=...` in it."""
    copy_project(dest, source)
    env = project_env(dest)
    env["PYTHONPATH"] = os.pathsep.join([str(source / "src"), env.get("PYTHONPATH", "")])
    scripts = entry_point_bin(source, dest.with_name(f"{dest.name}-bin"))
    env["PATH"] = f"{scripts}{os.pathsep}{env['PATH']}"
    with own_warm_servers(env):  # the cold run starts its own server, as on a fresh machine
        cold, _ = _timed_dvc(["repro"], dest, env)
        iteration, ran = _timed_dvc(["exp", "run", "-S", f"train.lr={ITERATION_LR}"], dest, env)
    return {"cold": cold, "iteration": iteration, "iteration_stages": ran}


def compare(before_rev: str, rounds: int) -> dict[str, Any]:
    after_rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    runs: dict[str, dict[str, list[float]]] = {
        name: {"cold": [], "iteration": []} for name in ("before", "after")
    }
    ratios: dict[str, list[float]] = {"cold": [], "iteration": []}
    stages_ran: dict[str, list[str]] = {}
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
                this: dict[str, dict[str, Any]] = {}
                for name in order:
                    this[name] = cold_then_iteration(trees[name], Path(tmp) / f"{name}{index}")
                    stages_ran[name] = this[name]["iteration_stages"]
                    for kind in ("cold", "iteration"):
                        runs[name][kind].append(this[name][kind])
                    log.info(
                        "round %d %s: cold %.2f s, iteration %.2f s (%s)",
                        index + 1,
                        name,
                        this[name]["cold"],
                        this[name]["iteration"],
                        ", ".join(this[name]["iteration_stages"]),
                    )
                for kind in ("cold", "iteration"):
                    ratios[kind].append(this["before"][kind] / this["after"][kind])
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(before_tree)], cwd=ROOT, check=False
            )
    after = {kind: median(runs["after"][kind]) for kind in GOALS}
    return {
        "name": "pipeline_before_after",
        "note": NOTE,
        "machine": machine(("dvc", "mlflow", "great_expectations")),
        "conditions": (
            f"{rounds} interleaved rounds, each a cold `dvc repro` in a fresh copy with its own "
            f"new MLflow store, then `dvc exp run -S train.lr={ITERATION_LR}` in that copy; "
            f"'before' is {before_rev}, 'after' is {after_rev} (plus any uncommitted changes), "
            "same virtual environment. Stages the iteration re-ran: "
            + "; ".join(f"{name}: {', '.join(ran)}" for name, ran in stages_ran.items())
        ),
        "runs": runs,
        "ratios": ratios,
        "goals": {
            f"{kind}_s": {"goal": goal, "value": after[kind], "met": after[kind] <= goal}
            for kind, goal in GOALS.items()
        },
        "table": {
            "columns": [
                "code",
                "cold dvc repro s (median)",
                "dvc exp run -S train.lr s (median)",
                "cold runs s",
                "iteration runs s",
                "before / after (cold, iteration)",
            ],
            "rows": [
                [
                    name,
                    median(runs[name]["cold"]),
                    median(runs[name]["iteration"]),
                    ", ".join(f"{v:.2f}" for v in runs[name]["cold"]),
                    ", ".join(f"{v:.2f}" for v in runs[name]["iteration"]),
                    ""
                    if name == "before"
                    else f"{median(ratios['cold']):.2f}, {median(ratios['iteration']):.2f}",
                ]
                for name in ("before", "after")
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
