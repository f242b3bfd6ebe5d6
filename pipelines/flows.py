"""`retrain`: the DVC pipeline as a Prefect flow, one task per dvc.yaml stage.

Each task is `dvc repro --single-item <stage>` in DVC's topological order, so DVC decides what
is stale, caches outputs and writes dvc.lock; Prefect adds scheduling, logs, retries of transient
faults, and the one-run-per-checkout guard. Stages `dvc status` finds up to date (and not
downstream of a change) are reported as such without starting DVC again.

Every run publishes Prefect artifacts: the test metrics beside the champion's (table), links to
the MLflow run and the registered version, and the promotion gate's decision when `promote` is
set. The stage processes get the flow run's id, name and UI link in the environment
(`neuroflow.tracking.PREFECT_RUN_ENV`), so the MLflow run they record carries them as tags.
"""

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import flow_run
from prefect.states import State
from prefect.tasks import Task, exponential_backoff
from pydantic import BaseModel, ConfigDict, Field

from neuroflow.errors import TrackingError
from neuroflow.registry.names import CHALLENGER
from pipelines import dag, results
from pipelines.dag import ParamValue

# Artifact keys: the Artifacts page keeps each key's history across runs.
METRICS_KEY = "retrain-test-metrics"
RUN_LINK_KEY = "retrain-mlflow-run"
VERSION_LINK_KEY = "retrain-model-version"
PROMOTION_KEY = "retrain-promotion"


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
def run_stage(
    root: str,
    stage: str,
    force: bool = False,
    stale: bool = True,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Reproduce one dvc.yaml stage through DVC, streaming its output into the run's logs."""
    logger = get_run_logger()
    if not stale:
        logger.info("[%s] up to date (dvc status): DVC not started", stage)
        return {"stage": stage, "ran": False}
    cmd = dag.repro_command(stage, force=force)
    logger.info("$ %s", " ".join(cmd))
    result = dag.stream(
        cmd,
        Path(root),
        lambda line: logger.info("[%s] %s", stage, line),
        env=dag.venv_env(env),
    )
    if result.returncode != 0:
        raise dag.stage_error(stage, result, Path(root))
    return {"stage": stage, "ran": dag.stage_ran(result.text)}


@task(cache_policy=NO_CACHE, persist_result=False, retries=2, retry_condition_fn=_is_transient)
def check_challenger(root: str, since: float, fresh: bool) -> dict[str, Any]:
    """The registration the export stage wrote, checked against the registry's alias, with the
    champion's test metrics (re-read when `fresh` or the store changed since the last run)."""
    from neuroflow.config import Paths

    logger = get_run_logger()
    paths = Paths(root=Path(root))
    if not paths.registration.exists():
        raise dag.StageFailedError(f"{paths.registration} missing: export did not register")
    reg, registry, cached = results.registry_view(
        paths.root, dag.lock_path(paths.root).parent, fresh=fresh
    )
    current = registry["challenger_version"]
    if str(current) != str(reg["version"]):
        message = (
            f"@{CHALLENGER} of {reg['model_name']} is version {current}, "
            f"but this workspace registered version {reg['version']}"
        )
        if paths.registration.stat().st_mtime >= since:  # written by this run
            raise dag.StageFailedError(message)
        logger.warning("%s (export was up to date, so another run moved the alias)", message)
    logger.info(
        "challenger: %s version %s (%s)%s",
        reg["model_name"],
        current,
        reg["model_uri"],
        " (registry unchanged since the last run)" if cached else "",
    )
    return {**reg, **registry, "challenger_version": str(current)}


@task(task_run_name="neuroflow promote", cache_policy=NO_CACHE, persist_result=False)
def promote_challenger(root: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Hand the challenger to the promotion gate (`neuroflow promote`); its decision back.

    A rejection is a decision, not a failure: the run completes and the decision is published.
    """
    from neuroflow.registry.cli import REJECTED_EXIT

    logger = get_run_logger()
    proc = subprocess.run(
        ["neuroflow", "promote", "--json"],
        cwd=root,
        env=dag.venv_env(env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    for line in proc.stderr.splitlines():
        logger.info("[promote] %s", line)
    if proc.returncode not in (0, REJECTED_EXIT):
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise dag.StageFailedError(f"`neuroflow promote` exited {proc.returncode}: {last}")
    outcome: dict[str, Any] = json.loads(proc.stdout)
    log = logger.warning if outcome.get("decision") == "rejected" else logger.info
    log("promotion: %s (%s)", outcome.get("decision"), outcome.get("message"))
    return outcome


def stage_env() -> dict[str, str]:
    """This flow run's id, name and UI link for the stage processes (MLflow run tags)."""
    from prefect.utilities.urls import url_for

    from neuroflow.tracking import PREFECT_RUN_ENV

    run_id = flow_run.get_id()
    if run_id is None:
        return {}
    values = {
        "prefect.flow_run_id": run_id,
        "prefect.flow_run_name": flow_run.get_name() or "",
        "prefect.flow_run_url": url_for("flow-run", obj_id=run_id) or "",
    }
    return {PREFECT_RUN_ENV[tag]: value for tag, value in values.items() if value}


def publish(
    root: Path,
    registration: dict[str, Any],
    test: dict[str, float],
    ran: list[str],
    promotion: dict[str, Any] | None,
) -> dict[str, str]:
    """The run's Prefect artifacts: metrics beside the champion's, links, the decision."""
    from neuroflow.config import tracking_uri

    name, version = registration["model_name"], str(registration["version"])
    champion = registration.get("champion_version")
    base = results.mlflow_ui_base(tracking_uri(root))
    links = {
        "mlflow_run": results.run_url(base, registration["experiment_id"], registration["run_id"]),
        "model_version": results.version_url(base, name, version),
    }
    rows = results.metrics_rows(test, registration.get("champion_test", {}), (version, champion))
    against = f"@champion v{champion}" if champion else "no @champion yet"
    create_table_artifact(
        rows,
        key=METRICS_KEY,
        description=(
            f"**{name} v{version}** (@{CHALLENGER}) test metrics against {against}. "
            f"Stages run: {', '.join(ran) or 'none (DVC found every stage up to date)'}."
        ),
    )
    create_link_artifact(
        links["mlflow_run"],
        link_text=f"MLflow run {registration['run_id']}",
        key=RUN_LINK_KEY,
        description=f"The MLflow run that trained, evaluated and registered {name} v{version}.",
    )
    create_link_artifact(
        links["model_version"],
        link_text=f"{name} v{version} (@{CHALLENGER})",
        key=VERSION_LINK_KEY,
        description="The registered model version this run left as the challenger.",
    )
    if promotion is not None:
        create_markdown_artifact(
            results.promotion_markdown(promotion),
            key=PROMOTION_KEY,
            description=f"Promotion gate: {promotion.get('decision')}",
        )
    return links


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
    from neuroflow.config import Paths
    from neuroflow.io import read_json

    logger = get_run_logger()
    started = time.time()
    workspace = Path(root or Path.cwd()).resolve()
    policy = retry or RetryPolicy()
    values = overrides or {}
    dag.check_overrides(workspace, values)  # a bad key fails before anything waits or runs
    owner = f"flow run {flow_run.get_id() or '?'}"
    env = stage_env()
    with dag.workspace_lock(workspace, wait_s=lock_wait_s, owner=owner):
        for spec in dag.apply_overrides(workspace, values):
            logger.info("params.yaml: set %s", spec)
        stage = run_stage.with_options(
            retries=policy.attempts,
            retry_delay_seconds=exponential_backoff(policy.backoff_s),
            retry_condition_fn=_is_transient,
        )
        plan = dag.plan(workspace, force=force)
        logger.info("stages (dvc.yaml): %s", " → ".join(plan.order))
        done = [stage(str(workspace), name, force, name in plan.stale, env) for name in plan.order]
        ran = [d["stage"] for d in done if d["ran"]]
        logger.info("ran: %s", ", ".join(ran) or "nothing (DVC found every stage up to date)")
        registration = check_challenger(str(workspace), since=started, fresh=bool(ran))
        outcome = promote_challenger(str(workspace), env) if promote else None
        test = read_json(Paths(root=workspace).metrics).get("test", {})
    links = publish(workspace, registration, test, ran, outcome)
    return {
        "stages": plan.order,
        "ran": ran,
        "overrides": values,
        "registration": registration,
        "links": links,
        "promotion": outcome,
    }
