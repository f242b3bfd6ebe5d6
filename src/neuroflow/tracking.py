"""MLflow tracking for the pipeline: one run spans train → evaluate → export.

`train` does not talk to MLflow: it writes the run's record (params, tags, lineage, datasets,
per-epoch metrics, artifact files) to `artifacts/run.json`, a DVC out, and `export`, which
opens the store anyway to register the model, logs that record as the run in one batch
(`log_record`), then evaluate's results and the model. MLflow is imported once per pipeline
run, not twice (~3 s of a train stage that itself trains in ~2 s). The record carries a
`run_key`, tagged on the MLflow run as `neuroflow.run_key`; a failed train logs its record at
once as a FAILED run. Every run carries its lineage: git revision, the data hashes from
dvc.lock, all resolved params, and the device / CUDA / torch versions; and what the MLflow UI
shows: a run named after its DVC experiment, MLflow's standard source/user tags, the splits as
dataset inputs, and the Prefect flow run that started it.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from neuroflow import store_seed
from neuroflow.config import Paths, tracking_uri
from neuroflow.errors import TrackingError
from neuroflow.io import read_json

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from neuroflow.config import Params

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

# Set by DVC for each stage command of `dvc exp run` (dvc.env.DVC_EXP_NAME).
DVC_EXP_NAME = "DVC_EXP_NAME"
# The Prefect flow sets these for the stage processes it starts, so the MLflow run links to the
# flow run that produced it (MLflow tag -> environment variable).
PREFECT_RUN_ENV = {
    "prefect.flow_run_id": "NEUROFLOW_PREFECT_FLOW_RUN_ID",
    "prefect.flow_run_name": "NEUROFLOW_PREFECT_FLOW_RUN_NAME",
    "prefect.flow_run_url": "NEUROFLOW_PREFECT_FLOW_RUN_URL",
}
# Prefect's own variable in a flow-run process (deployments): the id at least, even unset above.
_PREFECT_OWN_RUN_ID = "PREFECT__FLOW_RUN_ID"

# The embedded SQLite store takes one writer at a time; a writer that waits longer than
# SQLite's busy timeout (MLflow sets 20 s) gets "database is locked" and its transaction is
# rolled back, so the write can simply be tried again. Bounded: no new attempt starts after
# NEUROFLOW_STORE_RETRY_S seconds (default 60) since the first; then the error stands.
STORE_RETRY_ENV = "NEUROFLOW_STORE_RETRY_S"
_LOCKED_BUDGET_S = 60.0
_LOCKED_FIRST_DELAY = 0.05
_LOCKED_MAX_DELAY = 2.0

T = TypeVar("T")


def _is_locked(exc: BaseException) -> bool:
    return "database is locked" in str(exc).lower()


def store_retry_budget() -> float:
    """Seconds `retry_locked` keeps retrying a locked store (NEUROFLOW_STORE_RETRY_S)."""
    raw = os.environ.get(STORE_RETRY_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else _LOCKED_BUDGET_S
    except ValueError:
        raise TrackingError(f"{STORE_RETRY_ENV}={raw!r} is not a number of seconds") from None


def retry_locked(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `func`, retrying with jittered exponential backoff while SQLite reports a lock."""
    delay = _LOCKED_FIRST_DELAY
    deadline = time.monotonic() + store_retry_budget()
    attempt = 0
    while True:
        attempt += 1
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if not _is_locked(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "tracking store busy (database is locked), retry %d in %.2f s", attempt, delay
            )
            time.sleep(delay * (1.0 + random.random()))
            delay = min(delay * 2, _LOCKED_MAX_DELAY)


def _lost_insert_race(exc: BaseException) -> bool:
    """SQLite's "UNIQUE constraint failed" / PostgreSQL's "violates unique constraint"."""
    return "unique constraint" in str(exc).lower()


def upsert(func: Callable[..., Any], *args: Any) -> None:
    """Write with one of MlflowClient's methods that read, then insert what is absent: tags and
    aliases (`set_*`), and a run's dataset inputs (`log_inputs`: datasets are kept once per
    experiment, name and digest). Of two processes writing the same new row at once (two sweep
    trials exporting: both set @challenger, both log the same training split), the second
    insert breaks the table's unique key, and MLflow rolls its transaction back. Written again,
    the row exists and is updated or reused; a second race on one key is not retried."""
    try:
        retry_locked(func, *args)
    except Exception as exc:
        if not _lost_insert_race(exc):
            raise
        log.info("written by another process meanwhile (%s); writing it again", exc)
        retry_locked(func, *args)


def client(root: Path) -> MlflowClient:
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(root)
    store_seed.seed(uri)  # a new SQLite store: a copy of a migrated one, not 2 s of migrations
    # MLflow copies the URIs it is given into MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI; left
    # there, they would read as the user's choice, and a later client(other_root) in this process
    # (or a stage it starts for another project) would open this project's store.
    with _environ_kept("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    # MLflow opens (and checks the schema of) a database store here: a locked one is retried.
    with reachable(uri):
        return retry_locked(MlflowClient, tracking_uri=uri, registry_uri=uri)


@contextmanager
def _environ_kept(*names: str) -> Iterator[None]:
    """Leave the named environment variables as they were before the block."""
    before = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def reachable(uri_hint: str) -> Iterator[None]:
    """Turn connection failures into one readable error naming the tracking URI."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if _is_locked(exc):
            raise TrackingError(
                f"MLflow store {uri_hint} is busy: 'database is locked' persisted past the "
                f"{store_retry_budget():.0f} s retry budget ({STORE_RETRY_ENV}); another process "
                "holds a write lock on it. Nothing further was written; re-run when it is free"
            ) from exc
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


def file_md5(path: Path) -> str:
    """The file's hash as DVC records it in dvc.lock (md5 of the bytes), read in blocks."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def run_name(root: Path, base: str) -> str:
    """The DVC experiment's name inside `dvc exp run`, else `<base>-<short git revision>`."""
    experiment = os.environ.get(DVC_EXP_NAME)
    if experiment:
        return experiment
    rev = git_revision(root)["git.revision"]
    return base if rev == "unknown" else f"{base}-{rev[:7]}"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


def prefect_tags() -> dict[str, str]:
    """The Prefect flow run behind this process, if any (see PREFECT_RUN_ENV)."""
    tags = {tag: os.environ[var] for tag, var in PREFECT_RUN_ENV.items() if os.environ.get(var)}
    if "prefect.flow_run_id" not in tags and os.environ.get(_PREFECT_OWN_RUN_ID):
        tags["prefect.flow_run_id"] = os.environ[_PREFECT_OWN_RUN_ID]
    return tags


def _run_note(note: str, flow_run: dict[str, str]) -> str:
    """The run's description (markdown in the MLflow UI): what it is and what started it."""
    lines = [note] if note else []
    if os.environ.get(DVC_EXP_NAME):
        lines.append(f"DVC experiment `{os.environ[DVC_EXP_NAME]}`.")
    if flow_run:
        label = flow_run.get("prefect.flow_run_name") or flow_run.get("prefect.flow_run_id", "")
        url = flow_run.get("prefect.flow_run_url")
        lines.append(
            f"Prefect flow run [{label}]({url})." if url else f"Prefect flow run `{label}`."
        )
    return "\n\n".join(lines)


# MLflow's standard tag names (mlflow.utils.mlflow_tags), spelled here so that building a run
# record does not import MLflow; tests/unit/test_tracking_limits.py checks they still agree.
MLFLOW_SOURCE_NAME = "mlflow.source.name"
MLFLOW_SOURCE_TYPE = "mlflow.source.type"
MLFLOW_USER = "mlflow.user"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
MLFLOW_RUN_NOTE = "mlflow.note.content"
RUN_KEY_TAG = "neuroflow.run_key"
# Set last when a record is logged: a run found by its key without it was cut off mid-way.
_RECORD_LOGGED_TAG = "neuroflow.record_logged"


def new_record(
    root: Path,
    *,
    experiment: str,
    run_name: str,
    params: dict[str, str],
    tags: dict[str, str],
    source: str = "neuroflow",
    note: str = "",
) -> dict[str, Any]:
    """A run's record, built without MLflow: its lineage and MLflow's standard tags (the UI's
    Source, Version and User columns); `source` is what ran it (e.g. `dvc.yaml:train`). The
    run's description is `note` plus the DVC experiment and Prefect flow run behind it.
    `log_record` turns it into the MLflow run."""
    import uuid

    revision = git_revision(root)
    standard = {MLFLOW_SOURCE_NAME: source, MLFLOW_SOURCE_TYPE: "LOCAL", MLFLOW_USER: _os_user()}
    if revision["git.revision"] != "unknown":
        standard[MLFLOW_GIT_COMMIT] = revision["git.revision"]
    flow_run = prefect_tags()
    standard[MLFLOW_RUN_NOTE] = _run_note(note, flow_run)
    run_key = uuid.uuid4().hex
    return {
        "run_key": run_key,
        "experiment": experiment,
        "run_name": run_name,
        "start_time": now_ms(),
        "params": {k: v[:6000] for k, v in sorted(params.items())},
        "tags": {
            **revision,
            **dvc_data_hashes(root),
            **standard,
            **flow_run,
            **tags,
            RUN_KEY_TAG: run_key,
        },
        "datasets": [],  # [context, file relative to root, md5]
        "metrics": [],  # [key, value, step]
        "artifacts": [],  # [file relative to root, artifact folder]
    }


def log_record(root: Path, record: dict[str, Any], status: str | None = None) -> str:
    """The MLflow run of a record written by `new_record`: created with the record's start
    time, params, tags, datasets, metrics and artifacts, in batches; its run id. A run already
    logged from this record (an export run again) is reused, not duplicated. `status` (e.g.
    FAILED) also ends the run."""
    mlc = client(root)
    with reachable(tracking_uri(root)):
        exp_id = experiment_id(mlc, record["experiment"])
        found = retry_locked(
            mlc.search_runs,
            [exp_id],
            filter_string=f"tags.`{RUN_KEY_TAG}` = '{record['run_key']}'",
            max_results=1,
        )
        run = found[0] if found else None
        if run is None:
            run = retry_locked(
                mlc.create_run,
                exp_id,
                start_time=record["start_time"],
                run_name=record["run_name"],
                tags=record["tags"],
            )
        run_id = str(run.info.run_id)
        if run.data.tags.get(_RECORD_LOGGED_TAG) != "true":
            _log_contents(mlc, root, run_id, record)
        if status is not None:
            retry_locked(mlc.set_terminated, run_id, status=status)
    return run_id


def _log_contents(mlc: MlflowClient, root: Path, run_id: str, record: dict[str, Any]) -> None:
    """Params, lineage, datasets, metrics and artifacts; the tag saying so goes last."""
    from mlflow.entities import Param, RunTag

    params = [Param(k, v) for k, v in record["params"].items()]
    for chunk in _chunks(params, 100):
        retry_locked(mlc.log_batch, run_id, params=chunk)
    lock = root / "dvc.lock"
    if lock.exists():
        retry_locked(mlc.log_artifact, run_id, str(lock), "lineage")
    _log_inputs(mlc, root, run_id, record["datasets"])
    _log_rows(mlc, run_id, record["metrics"], int(record.get("end_time") or now_ms()))
    for path, folder in record["artifacts"]:
        retry_locked(mlc.log_artifact, run_id, str(root / path), folder)
    retry_locked(mlc.log_batch, run_id, tags=[RunTag(_RECORD_LOGGED_TAG, "true")])


def _log_inputs(mlc: MlflowClient, root: Path, run_id: str, splits: list[list[str]]) -> None:
    """Log data splits as the run's dataset inputs: [context, file, md5] each.

    The digest is the file's DVC hash (the md5 in dvc.lock), the profile its shape read from
    the safetensors header: no table is loaded or profiled.
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
    from safetensors import safe_open

    inputs = []
    for context, relative, md5 in splits:
        with safe_open(str(root / relative), framework="numpy") as f:
            shape = f.get_slice("x").get_shape()
        dataset = Dataset(
            name=Path(relative).stem,
            digest=md5,
            source_type="local",
            source=json.dumps({"uri": relative}),
            profile=json.dumps(
                {"num_rows": int(shape[0]), "row_shape": list(shape[1:]), "dvc_md5": md5}
            ),
        )
        inputs.append(DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    if inputs:
        upsert(mlc.log_inputs, run_id, inputs)  # two runs logging one new split at once


def dataset_entry(root: Path, context: str, path: Path, md5: str) -> list[str]:
    """A record's dataset input; the path is kept as given, not resolved (a DVC cache link,
    cache.type symlink, points outside the repo)."""
    relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    return [context, relative, md5]


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


def _log_rows(mlc: MlflowClient, run_id: str, rows: Iterable[Sequence[Any]], when_ms: int) -> None:
    """(key, value, step) rows in batches of 1000: one call, not one per value."""
    import math

    from mlflow.entities import Metric

    metrics = [Metric(k, float(v), when_ms, s) for k, v, s in rows if math.isfinite(float(v))]
    for chunk in _chunks(metrics, 1000):
        retry_locked(mlc.log_batch, run_id, metrics=chunk)


def log_metrics(root: Path, run_id: str, rows: list[tuple[str, float, int]]) -> None:
    """(key, value, step) rows into the run, in batches."""
    mlc = client(root)
    with reachable(tracking_uri(root)):
        _log_rows(mlc, run_id, rows, now_ms())


def log_artifacts(root: Path, run_id: str, files: list[Path], artifact_path: str) -> None:
    mlc = client(root)
    with reachable(tracking_uri(root)):
        for file in files:
            retry_locked(mlc.log_artifact, run_id, str(file), artifact_path)


def record_evaluation(root: Path, run_id: str, metrics_file: Path, report_dir: Path) -> None:
    """Log what the evaluate stage wrote into the training run: test and per-class metrics,
    the report's PNGs (under `plots/`) and metrics.json itself (under `metrics/`), and the
    test split as the run's "testing" dataset input."""
    result = read_json(metrics_file)
    rows = [(f"test_{k}", v, 0) for k, v in result["test"].items() if v is not None]
    for cls, values in result.get("per_class", {}).items():
        rows += [(f"test_{k}_class_{cls}", v, 0) for k, v in values.items() if k != "support"]
    log_metrics(root, run_id, rows)
    log_artifacts(root, run_id, sorted(report_dir.glob("*.png")), "plots")
    log_artifacts(root, run_id, [metrics_file], "metrics")
    test = Paths(root).processed_split("test")
    if test.is_file():
        mlc = client(root)
        with reachable(tracking_uri(root)):
            _log_inputs(mlc, root, run_id, [dataset_entry(root, "testing", test, file_md5(test))])


def _card_summary(card: str) -> str:
    """The model card without its per-version detail: the head, intended use and limits."""
    sections = card.split("\n## ")
    keep = [sections[0]] + [s for s in sections[1:] if s.startswith(("Intended use", "Limits"))]
    return "\n## ".join(keep).strip() + "\n"


# MLflow's SQL stores hold descriptions and experiment tag values in 5000-character columns
# (PostgreSQL refuses longer ones; SQLite does not check): clip, and say where the rest is.
DESCRIPTION_LIMIT = 5000
_CLIPPED = "\n\n… (clipped: the whole card is model_card/MODEL_CARD.md in the run's artifacts)\n"


def _fit(text: str) -> str:
    if len(text) <= DESCRIPTION_LIMIT:
        return text
    return text[: DESCRIPTION_LIMIT - len(_CLIPPED)].rstrip() + _CLIPPED


def describe_model(root: Path, params: Params, version: str, card: str, data_source: str) -> None:
    """What the MLflow UI shows beside the runs: the experiment's and the registered model's
    description (from the model card; the version gets the whole card) and tags."""
    metric = params.promotion.metric_for(params.task)
    tags = {"task": params.task, "metric": metric, "data_source": data_source}
    summary, card = _fit(_card_summary(card)), _fit(card)
    model_name = params.registry.model_name
    mlc = client(root)
    with reachable(tracking_uri(root)):
        exp_id = experiment_id(mlc, params.registry.experiment)
        for key, value in {MLFLOW_RUN_NOTE: summary, **tags}.items():
            upsert(mlc.set_experiment_tag, exp_id, key, value)
        retry_locked(mlc.update_registered_model, model_name, description=summary)
        for key, value in tags.items():
            upsert(mlc.set_registered_model_tag, model_name, key, value)
        retry_locked(mlc.update_model_version, model_name, version, description=card)


def finish_run(root: Path, run_id: str, status: str = "FINISHED") -> None:
    mlc = client(root)
    with reachable(tracking_uri(root)):
        retry_locked(mlc.set_terminated, run_id, status=status)


def now_ms() -> int:
    return int(time.time() * 1000)


def load_run_key(path: Path) -> str:
    return str(read_json(path)["run_key"])
