"""`retrain`: the DVC pipeline as a Prefect flow, one task per dvc.yaml stage.

Each task is `dvc repro --single-item <stage>` in DVC's topological order, so DVC decides what
is stale, caches outputs and writes dvc.lock; Prefect adds scheduling, logs, retries of transient
faults, and the one-run-per-checkout guard.
"""

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import flow_run
from prefect.states import State
from prefect.tasks import Task, exponential_backoff
from pydantic import BaseModel, ConfigDict, Field

from neuroflow.errors import TrackingError
from pipelines import dag
from pipelines.dag import ParamValue

CHALLENGER = "challenger"


class RetryPolicy(BaseModel):
    """Retries for transient faults only (DVC lock held, MLflow unreachable)."""

    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(3, ge=0, le=10)
    backoff_s: float = Field(5.0, ge=0)  # first delay; doubles on each further retry


def _is_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    try:
        state.result()
    except (dag.TransientStageError, TrackingError):
        return True
    except Exception:
        return False
    return False


@task(task_run_name="dvc repro {stage}", cache_policy=NO_CACHE, persist_result=False)
def run_stage(root: str, stage: str, force: bool = False) -> dict[str, Any]:
    """Reproduce one dvc.yaml stage through DVC, streaming its output into the run's logs."""
    logger = get_run_logger()
    cmd = dag.repro_command(stage, force=force)
    logger.info("$ %s", " ".join(cmd))
    result = dag.stream(cmd, Path(root), lambda line: logger.info("[%s] %s", stage, line))
    if result.returncode != 0:
        raise dag.stage_error(stage, result, Path(root))
    return {"stage": stage, "ran": dag.stage_ran(result.text)}


@task(cache_policy=NO_CACHE, persist_result=False, retries=2, retry_condition_fn=_is_transient)
def check_challenger(root: str, since: float) -> dict[str, Any]:
    """The registration the export stage wrote, checked against the registry's alias."""
    from neuroflow import tracking
    from neuroflow.config import Paths
    from neuroflow.io import read_json

    logger = get_run_logger()
    paths = Paths(root=Path(root))
    if not paths.registration.exists():
        raise dag.StageFailedError(f"{paths.registration} missing: export did not register")
    reg: dict[str, Any] = read_json(paths.registration)
    client = tracking.client(paths.root)
    with tracking.reachable(tracking.tracking_uri(paths.root)):
        current = client.get_model_version_by_alias(reg["model_name"], CHALLENGER).version
    if str(current) != str(reg["version"]):
        message = (
            f"@{CHALLENGER} of {reg['model_name']} is version {current}, "
            f"but this workspace registered version {reg['version']}"
        )
        if paths.registration.stat().st_mtime >= since:  # written by this run
            raise dag.StageFailedError(message)
        logger.warning("%s (export was up to date, so another run moved the alias)", message)
    logger.info("challenger: %s version %s (%s)", reg["model_name"], current, reg["model_uri"])
    return {**reg, "challenger_version": str(current)}


@task(task_run_name="neuroflow promote", cache_policy=NO_CACHE, persist_result=False)
def promote_challenger(root: str) -> None:
    """Hand the challenger to the promotion gate (`neuroflow promote`)."""
    logger = get_run_logger()
    result = dag.stream(
        ["neuroflow", "promote"], Path(root), lambda line: logger.info("[promote] %s", line)
    )
    if result.returncode != 0:
        raise dag.StageFailedError(
            f"`neuroflow promote` exited {result.returncode}: {result.tail[-1:] or 'no output'}"
        )


@flow(name="retrain", log_prints=False, validate_parameters=True)
def retrain(
    overrides: dict[str, ParamValue] | None = None,
    force: bool = False,
    promote: bool = False,
    retry: RetryPolicy | None = None,
    lock_wait_s: float = 0.0,
    root: str | None = None,
) -> dict[str, Any]:
    """Run dvc.yaml's stages through DVC and leave a registered @challenger.

    overrides: params.yaml keys to set first (`{"train.lr": 3e-4}`), recorded by DVC.
    force: re-run every stage even when DVC finds it up to date (`dvc repro -f`).
    promote: afterwards, ask the promotion gate to make the challenger champion.
    retry: retries for transient faults (DVC lock held, MLflow unreachable), with backoff.
    lock_wait_s: how long to wait for another run on this checkout before refusing.
    root: the project checkout (default: the working directory).
    """
    logger = get_run_logger()
    started = time.time()
    workspace = Path(root or Path.cwd()).resolve()
    policy = retry or RetryPolicy()
    values = overrides or {}
    dag.check_overrides(workspace, values)  # a bad key fails before anything waits or runs
    owner = f"flow run {flow_run.get_id() or '?'}"
    with dag.workspace_lock(workspace, wait_s=lock_wait_s, owner=owner):
        for spec in dag.apply_overrides(workspace, values):
            logger.info("params.yaml: set %s", spec)
        stage = run_stage.with_options(
            retries=policy.attempts,
            retry_delay_seconds=exponential_backoff(policy.backoff_s),
            retry_condition_fn=_is_transient,
        )
        order = dag.stage_order(workspace)
        logger.info("stages (dvc.yaml): %s", " → ".join(order))
        done = [stage(str(workspace), name, force) for name in order]
        ran = [d["stage"] for d in done if d["ran"]]
        logger.info("ran: %s", ", ".join(ran) or "nothing (DVC found every stage up to date)")
        registration = check_challenger(str(workspace), since=started)
        if promote:
            promote_challenger(str(workspace))
    return {"stages": order, "ran": ran, "overrides": values, "registration": registration}
