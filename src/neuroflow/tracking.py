"""MLflow tracking for the pipeline: one run spans train → evaluate → export.

`train` opens the run and writes its id to `artifacts/run.json` (a DVC out); `export` logs
evaluate's results and the model into the same run (evaluate itself writes files only). Every
run carries its lineage: git revision, the data hashes from dvc.lock, all resolved params, and
the device / CUDA / torch versions.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from neuroflow.config import tracking_uri
from neuroflow.errors import TrackingError
from neuroflow.io import read_json, write_json

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

# Bounded waits: an unreachable tracking server fails the stage in seconds, not minutes.
# No telemetry: the pipeline talks to its own tracking store and nothing else.
_ENV_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
_DATA_STAGES = ("ingest", "validate", "preprocess")

# The embedded SQLite store takes one writer at a time; a writer that waits longer than
# SQLite's busy timeout gets "database is locked" and its transaction is rolled back, so the
# write can simply be tried again. Bounded: about 10 s of backoff in all, then the error stands.
_LOCKED_ATTEMPTS = 8
_LOCKED_FIRST_DELAY = 0.05
_LOCKED_MAX_DELAY = 2.0

T = TypeVar("T")


def _is_locked(exc: BaseException) -> bool:
    return "database is locked" in str(exc).lower()


def retry_locked(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `func`, retrying with jittered exponential backoff while SQLite reports a lock."""
    delay = _LOCKED_FIRST_DELAY
    for attempt in range(1, _LOCKED_ATTEMPTS + 1):
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if attempt == _LOCKED_ATTEMPTS or not _is_locked(exc):
                raise
            log.warning(
                "tracking store busy (database is locked), retry %d/%d in %.2f s",
                attempt,
                _LOCKED_ATTEMPTS - 1,
                delay,
            )
            time.sleep(delay * (1.0 + random.random()))
            delay = min(delay * 2, _LOCKED_MAX_DELAY)
    raise AssertionError("unreachable")  # the loop returns or raises


def client(root: Path) -> MlflowClient:
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextmanager
def reachable(uri_hint: str) -> Iterator[None]:
    """Turn connection failures into one readable error naming the tracking URI."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException | ConnectionError | OSError):
            raise TrackingError(f"MLflow at {uri_hint} failed: {exc}") from exc
        raise


def git_revision(root: Path) -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip()

    rev = git("rev-parse", "HEAD") or "unknown"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"git.revision": rev, "git.dirty": str(dirty).lower()}


def dvc_data_hashes(root: Path) -> dict[str, str]:
    """md5 of every output of the data stages, as recorded in dvc.lock."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    tags: dict[str, str] = {}
    for name in _DATA_STAGES:
        for out in stages.get(name, {}).get("outs", []):
            if "md5" in out:
                tags[f"dvc.{name}.{out['path']}"] = str(out["md5"])
    return tags


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def start_run(
    root: Path,
    *,
    experiment: str,
    run_name: str,
    params: dict[str, str],
    tags: dict[str, str],
) -> str:
    from mlflow.entities import Param

    mlc = client(root)
    with reachable(tracking_uri(root)):
        exp_id = experiment_id(mlc, experiment)
        all_tags = {**git_revision(root), **dvc_data_hashes(root), **tags}
        run = retry_locked(mlc.create_run, exp_id, run_name=run_name, tags=all_tags)
        run_id = run.info.run_id
        param_list = [Param(k, v[:6000]) for k, v in sorted(params.items())]
        for chunk in _chunks(param_list, 100):
            retry_locked(mlc.log_batch, run_id, params=chunk)
        lock = root / "dvc.lock"
        if lock.exists():
            mlc.log_artifact(run_id, str(lock), "lineage")
    return run_id


def experiment_id(mlc: MlflowClient, name: str) -> str:
    """The experiment's id, creating it if needed; safe when several runs start at once."""
    from mlflow.exceptions import MlflowException

    exp = retry_locked(mlc.get_experiment_by_name, name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(retry_locked(mlc.create_experiment, name))
    except MlflowException:
        # Another process created it between the lookup and the create.
        exp = retry_locked(mlc.get_experiment_by_name, name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def log_metrics(root: Path, run_id: str, rows: list[tuple[str, float, int]]) -> None:
    """(key, value, step) rows in batches of 1000: one call, not one per value."""
    import math

    from mlflow.entities import Metric

    mlc = client(root)
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, s) for k, v, s in rows if math.isfinite(float(v))]
    with reachable(tracking_uri(root)):
        for chunk in _chunks(metrics, 1000):
            retry_locked(mlc.log_batch, run_id, metrics=chunk)


def log_artifacts(root: Path, run_id: str, files: list[Path], artifact_path: str) -> None:
    mlc = client(root)
    with reachable(tracking_uri(root)):
        for file in files:
            mlc.log_artifact(run_id, str(file), artifact_path)


def record_evaluation(root: Path, run_id: str, metrics_file: Path, report_dir: Path) -> None:
    """Log what the evaluate stage wrote into the training run: test and per-class metrics,
    the report's PNGs (under `plots/`) and metrics.json itself (under `metrics/`)."""
    result = read_json(metrics_file)
    rows = [(f"test_{k}", v, 0) for k, v in result["test"].items() if v is not None]
    for cls, values in result.get("per_class", {}).items():
        rows += [(f"test_{k}_class_{cls}", v, 0) for k, v in values.items() if k != "support"]
    log_metrics(root, run_id, rows)
    log_artifacts(root, run_id, sorted(report_dir.glob("*.png")), "plots")
    log_artifacts(root, run_id, [metrics_file], "metrics")


def set_tags(root: Path, run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag

    mlc = client(root)
    with reachable(tracking_uri(root)):
        retry_locked(mlc.log_batch, run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def finish_run(root: Path, run_id: str, status: str = "FINISHED") -> None:
    mlc = client(root)
    with reachable(tracking_uri(root)):
        retry_locked(mlc.set_terminated, run_id, status=status)


def close_interrupted(root: Path, run_id: str) -> bool:
    """Mark a run that a killed process left RUNNING as KILLED; True if it was one."""
    from mlflow.exceptions import MlflowException

    mlc = client(root)
    with reachable(tracking_uri(root)):
        try:
            status = retry_locked(mlc.get_run, run_id).info.status
        except MlflowException:  # deleted, or another store: nothing to close
            return False
        if status != "RUNNING":
            return False
        retry_locked(mlc.set_terminated, run_id, status="KILLED")
    log.warning("run %s was interrupted (left RUNNING): marked KILLED", run_id)
    return True


def save_run_info(path: Path, run_id: str, experiment: str) -> None:
    write_json(path, {"run_id": run_id, "experiment": experiment})


def load_run_id(path: Path) -> str:
    return str(read_json(path)["run_id"])
