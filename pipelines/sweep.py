"""`sweep`: a grid or random set of params overrides, each run in its own git worktree.

Every trial is a full `dvc repro` in an isolated checkout of HEAD (plus this workspace's
uncommitted changes) that shares this checkout's DVC cache, so unchanged stages are restored,
not recomputed, and no two DVC processes ever share a workspace. All trials track into this
checkout's MLflow store (or MLFLOW_TRACKING_URI); the best is proposed as @challenger.
"""

import io
import itertools
import json
import random
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed
from prefect.tasks import exponential_backoff
from pydantic import BaseModel, ConfigDict, Field

from neuroflow.evaluation.direction import lower_is_better
from neuroflow.registry.names import CHALLENGER, set_challenger
from pipelines import dag
from pipelines.dag import ParamValue
from pipelines.flows import RetryPolicy, _is_transient, stage_env

_git_lock = threading.Lock()  # `git worktree add/remove` edit shared .git state


class Trial(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0)
    overrides: dict[str, ParamValue]


def expand(
    grid: dict[str, list[ParamValue]], samples: int | None = None, seed: int = 0
) -> list[Trial]:
    """Every combination of the grid, or `samples` of them drawn without replacement."""
    keys = list(grid)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]
    if samples is not None and samples < len(combos):
        combos = random.Random(seed).sample(combos, samples)
    return [Trial(index=i, overrides=c) for i, c in enumerate(combos)]


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout


def make_workspace(root: Path, dest: Path, cache_dir: str) -> Path:
    """A worktree of HEAD carrying this checkout's uncommitted files and DVC's cache."""
    with _git_lock:
        _git(root, "worktree", "add", "--detach", "--force", str(dest), "HEAD")
    changed = _git(root, "diff", "--name-only", "HEAD").splitlines()
    untracked = _git(root, "ls-files", "--others", "--exclude-standard").splitlines()
    for rel in [*changed, *untracked, "dvc.lock"]:
        src = root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
        elif rel in changed:  # deleted here since HEAD: the trial must not see it either
            (dest / rel).unlink(missing_ok=True)
    dag.stream(
        ["dvc", "config", "--local", "cache.dir", cache_dir],
        dest,
        lambda _: None,
        env=dag.venv_env(),
    )
    return dest


def shared_cache_dir(root: Path) -> str:
    """This checkout's DVC cache directory, which every trial's worktree shares."""
    result = dag.stream(["dvc", "cache", "dir"], root, lambda _: None, env=dag.venv_env())
    if result.returncode != 0 or not result.tail:
        raise dag.StageFailedError(f"`dvc cache dir` failed in {root}: {result.text[-500:]}")
    return result.tail[-1].strip()


def drop_workspace(root: Path, dest: Path) -> None:
    with _git_lock:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(dest)], cwd=root, capture_output=True
        )
        _git(root, "worktree", "prune")
    shutil.rmtree(dest, ignore_errors=True)


@task(task_run_name="trial {trial.index}", cache_policy=NO_CACHE, persist_result=False)
def run_trial(
    root: str,
    trial: Trial,
    cache_dir: str,
    tracking: str,
    force: bool,
    flow_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One `dvc repro` with the trial's overrides, in its own worktree; its metrics back."""
    from neuroflow.config import Paths
    from neuroflow.io import read_json

    logger = get_run_logger()
    main = Path(root)
    base = Path(tempfile.mkdtemp(prefix=f"neuroflow-sweep-{trial.index}-"))
    work = base / "ws"
    try:
        make_workspace(main, work, cache_dir)
        for spec in dag.apply_overrides(work, trial.overrides):
            logger.info("trial %d: set %s", trial.index, spec)
        cmd = ["dvc", "repro", *(["--force"] if force else [])]
        env = dag.venv_env({**(flow_env or {}), "MLFLOW_TRACKING_URI": tracking})
        result = dag.stream(
            cmd, work, lambda line: logger.info("[trial %d] %s", trial.index, line), env=env
        )
        if result.returncode != 0:
            raise dag.stage_error(f"trial {trial.index}", result, work)
        paths = Paths(root=work)
        metrics = read_json(paths.metrics)
        registration = read_json(paths.registration)
        return {
            "trial": trial.index,
            "overrides": trial.overrides,
            "test": metrics.get("test", {}),
            "run_id": registration["run_id"],
            "model_name": registration["model_name"],
            "version": str(registration["version"]),
            "workspace": str(work),
        }
    finally:
        drop_workspace(main, work)
        shutil.rmtree(base, ignore_errors=True)


def ensure_experiment(root: Path) -> None:
    """Create the experiment from this checkout, so artifacts never land in a temp worktree."""
    from neuroflow import tracking
    from neuroflow.config import load_params

    name = load_params(root / "params.yaml").registry.experiment
    client = tracking.client(root)
    with tracking.reachable(tracking.tracking_uri(root)):
        if client.get_experiment_by_name(name) is None:
            client.create_experiment(name, artifact_location=(root / "mlruns").resolve().as_uri())


def best_of(rows: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    scored = [r for r in rows if r["test"].get(metric) is not None]
    if not scored:
        raise dag.StageFailedError(f"no trial reported test metric {metric!r}")
    pick = min if lower_is_better(metric) else max
    return pick(scored, key=lambda r: float(r["test"][metric]))


def table(rows: list[dict[str, Any]], metric: str, best: dict[str, Any]) -> str:
    from rich.console import Console
    from rich.table import Table

    keys = sorted({k for r in rows for k in r["overrides"]})
    view = Table(title=f"sweep: test {metric} (best: trial {best['trial']})")
    for col in ["trial", *keys, metric, "model version", "mlflow run"]:
        view.add_column(col)
    for r in sorted(rows, key=lambda r: r["trial"]):
        value = r["test"].get(metric)
        view.add_row(
            ("* " if r is best else "") + str(r["trial"]),
            *(json.dumps(r["overrides"].get(k)) for k in keys),
            "n/a" if value is None else f"{value:.4f}",
            r["version"],
            r["run_id"][:12],
        )
    out = io.StringIO()
    Console(file=out, width=160).print(view)
    return out.getvalue()


@flow(name="sweep", validate_parameters=True)
def sweep(
    grid: dict[str, list[ParamValue]],
    samples: int | None = None,
    seed: int = 0,
    max_parallel: int = 2,
    metric: str | None = None,
    force: bool = False,
    propose: bool = True,
    retry: RetryPolicy | None = None,
    root: str | None = None,
) -> dict[str, Any]:
    """Run every grid point (or `samples` random ones) in parallel worktrees; propose the best.

    grid: params.yaml keys → values to try (`{"train.lr": [1e-3, 3e-3]}`).
    max_parallel: trials at once (each is a whole `dvc repro`).
    metric: test metric to rank by (default: promotion.metric in params.yaml).
    propose: set @challenger on the best trial's registered model version.
    """
    from neuroflow import tracking as nf_tracking
    from neuroflow.config import load_params

    logger = get_run_logger()
    workspace = Path(root or Path.cwd()).resolve()
    trials = expand(grid, samples, seed)
    for trial in trials:  # every override is checked before any trial starts
        dag.check_overrides(workspace, trial.overrides)
    params = load_params(workspace / "params.yaml")
    rank_by = metric or params.promotion.metric_for(params.task)
    tracking = nf_tracking.tracking_uri(workspace)
    ensure_experiment(workspace)
    cache_dir = shared_cache_dir(workspace)
    policy = retry or RetryPolicy()
    flow_env = stage_env()  # each trial's MLflow run links back to this flow run
    trial_task = run_trial.with_options(
        retries=policy.attempts,
        retry_delay_seconds=exponential_backoff(policy.backoff_s),
        retry_condition_fn=_is_transient,
    )
    logger.info(
        "sweep: %d trial(s), %d at a time, ranked by %s", len(trials), max_parallel, rank_by
    )

    # A sliding window keeps at most `max_parallel` trials running.
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    queue = list(trials)
    running: set[PrefectFuture[dict[str, Any]]] = set()
    while queue or running:
        while queue and len(running) < max(1, max_parallel):
            trial = queue.pop(0)
            running.add(
                trial_task.submit(str(workspace), trial, cache_dir, tracking, force, flow_env)
            )
        done = next(iter(as_completed(list(running))))
        running.discard(done)
        try:
            rows.append(done.result())
        except Exception as exc:  # one bad trial must not sink the others; reported below
            failed.append(str(exc))
            logger.error("trial failed: %s", exc)

    if not rows:
        raise dag.StageFailedError(f"every sweep trial failed: {'; '.join(failed)}")
    best = best_of(rows, rank_by)
    comparison = table(rows, rank_by, best)
    logger.info("\n%s", comparison)
    if propose:
        client = nf_tracking.client(workspace)
        with nf_tracking.reachable(tracking):
            set_challenger(client, best["model_name"], best["version"])
        logger.info(
            "proposed trial %d (%s version %s) as @%s",
            best["trial"],
            best["model_name"],
            best["version"],
            CHALLENGER,
        )
    return {"metric": rank_by, "trials": rows, "failed": failed, "best": best, "table": comparison}
