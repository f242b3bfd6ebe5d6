"""Register an exported model once per content, and point `@challenger` at it.

The content hash (`content.sha256` version tag) fingerprints what a version *is*: the ONNX graph
bytes (raw columns in, predictions out, weights embedded) and the fitted preprocessing. Exporting
identical content again (`dvc repro -f export`, a Prefect retry, a deterministic retrain)
re-points `@challenger` at the version that already holds it and registers nothing; the run
still records its evaluation and is tagged with the version it resolved to.

Every write is retried while a SQLite store reports "database is locked" (`tracking.retry_locked`,
bounded by NEUROFLOW_STORE_RETRY_S). A version is created in ONE call that carries all its tags,
so it never exists half-tagged; if a later write (the alias) still fails, the version is complete
and the next export finds it by its hash and re-points the alias.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuroflow.registry.names import CHALLENGER, CONTENT_TAG, model_uri, set_challenger

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

# Run tags: which version an export resolved to, and whether it was already registered.
RUN_VERSION_TAG = "neuroflow.registered_version"
RUN_REUSED_TAG = "neuroflow.registered_version_reused"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(onnx_bytes: bytes, preprocessing: Mapping[str, Any]) -> str:
    """SHA-256 of the serialised ONNX graph and the canonical JSON of the preprocessing."""
    digest = hashlib.sha256()
    digest.update(b"neuroflow.onnx\0")
    digest.update(onnx_bytes)
    digest.update(b"\0neuroflow.preprocessing\0")
    canonical = json.dumps(preprocessing, sort_keys=True, separators=(",", ":"), default=str)
    digest.update(canonical.encode("utf-8"))
    return digest.hexdigest()


def find_by_content(client: MlflowClient, name: str, digest: str) -> ModelVersion | None:
    """The oldest version of `name` tagged with this content hash, or None."""
    from mlflow.exceptions import MlflowException

    from neuroflow.tracking import retry_locked

    query = f"name = '{name}' and tags.`{CONTENT_TAG}` = '{digest}'"
    try:
        found = retry_locked(client.search_model_versions, query)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return min(found, key=lambda mv: int(mv.version)) if found else None


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    run_id: str
    content_sha256: str
    reused: bool  # True: identical content was already registered; nothing new was created

    @property
    def model_uri(self) -> str:
        return model_uri(self.name, self.version)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_name": self.name,
            "version": self.version,
            "alias": CHALLENGER,
            "model_uri": self.model_uri,
            "run_id": self.run_id,
            "content_sha256": self.content_sha256,
            "reused_existing_version": self.reused,
        }


def register_challenger(
    client: MlflowClient,
    *,
    name: str,
    run_id: str,
    digest: str,
    tags: Mapping[str, str],
    log_model: Callable[[], ModelInfo],
) -> Registration:
    """Find or create the version holding `digest`, then point `@challenger` at it.

    `log_model` logs the MLflow model into the run (no registration) and returns its ModelInfo;
    it runs only when no version holds this content yet.
    """
    from neuroflow.tracking import retry_locked

    existing = find_by_content(client, name, digest)
    reused = existing is not None
    if existing is not None:
        version = str(existing.version)
        log.info("export: content %s… is already %s version %s", digest[:12], name, version)
    else:
        info = retry_locked(log_model)
        version = _create_version(client, name, info, run_id, {**tags, CONTENT_TAG: digest})
    set_challenger(client, name, version)
    retry_locked(client.set_tag, run_id, RUN_VERSION_TAG, version)
    retry_locked(client.set_tag, run_id, RUN_REUSED_TAG, str(reused).lower())
    return Registration(name, version, run_id, digest, reused)


def _create_version(
    client: MlflowClient, name: str, info: ModelInfo, run_id: str, tags: dict[str, str]
) -> str:
    """One atomic create (version + all its tags); a retry first looks for a committed one."""
    from mlflow.exceptions import MlflowException

    from neuroflow.tracking import retry_locked

    try:
        retry_locked(client.create_registered_model, name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise

    def create() -> str:
        done = find_by_content(client, name, tags[CONTENT_TAG])
        if done is not None:  # an earlier attempt committed before its error reached us
            return str(done.version)
        mv = client.create_model_version(
            name, info.model_uri, run_id, tags, await_creation_for=0, model_id=info.model_id
        )
        return str(mv.version)

    return retry_locked(create)
