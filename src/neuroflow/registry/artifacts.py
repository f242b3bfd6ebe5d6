"""Registered versions as the gate and the server use them: the ONNX file and the frozen test rows.

The frozen evaluation set is the challenger's own raw test split, found reproducibly:
1. the run artifact `eval/test.parquet` of the version's run, if export logged it;
2. else `data/raw/test.parquet` in the project,
and in both cases its SHA-256 must equal the version tag `data.test_sha256` written at export, so
the gate never scores a model on rows other than those it was tested on.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from neuroflow.errors import DataError
from neuroflow.registry.names import TEST_SHA_TAG, RegistryError, model_uri
from neuroflow.registry.register import sha256_file as sha256

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from neuroflow.export.runtime import OnnxScorer
    from neuroflow.registry.gate import Check

log = logging.getLogger(__name__)

EVAL_ARTIFACT = "eval/test.parquet"


class EvaluationSetError(DataError):
    """The frozen evaluation rows are missing or differ from those the version was tested on."""


@dataclass(frozen=True)
class Registered:
    """One downloaded model version."""

    name: str
    version: str
    run_id: str
    tags: dict[str, str]
    local_dir: Path  # the MLflow model directory (MLmodel + model.onnx)
    onnx_path: Path

    @property
    def uri(self) -> str:
        return model_uri(self.name, self.version)


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"{name} version {version} not found: {exc.message}") from None


def download(client: MlflowClient, name: str, version: str, dst: Path) -> Registered:
    """Download `models:/name/version` into `dst`; find its ONNX file via the MLmodel file."""
    # No per-file progress bars on the terminal (set before mlflow reads it).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow.artifacts

    mv = get_version(client, name, version)
    # URIs come from neuroflow.tracking.client(), which set them process-wide.
    uri = model_uri(name, version)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8")) or {}
    onnx_flavor = (mlmodel.get("flavors") or {}).get("onnx")
    if not onnx_flavor:
        raise RegistryError(f"{uri} is not an ONNX model (no onnx flavor)")
    return Registered(
        name=name,
        version=str(version),
        run_id=str(mv.run_id or ""),
        tags={str(k): str(v) for k, v in (mv.tags or {}).items()},
        local_dir=local,
        onnx_path=local / str(onnx_flavor.get("data", "model.onnx")),
    )


def frozen_test_rows(
    client: MlflowClient, mv: Registered, root: Path, scratch: Path
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The challenger's raw test rows (see module docstring) and where they came from."""
    expected = mv.tags.get(TEST_SHA_TAG)
    candidates: list[tuple[str, Path]] = []
    if mv.run_id and _has_artifact(client, mv.run_id, EVAL_ARTIFACT):
        local = client.download_artifacts(mv.run_id, EVAL_ARTIFACT, str(scratch))
        candidates.append((f"runs:/{mv.run_id}/{EVAL_ARTIFACT}", Path(local)))
    local_split = root / "data" / "raw" / "test.parquet"
    if local_split.is_file():
        candidates.append((str(local_split), local_split))
    if not candidates:
        raise EvaluationSetError(
            f"{mv.uri}: no frozen test rows: its run {mv.run_id} has no {EVAL_ARTIFACT} artifact "
            f"and {local_split} does not exist (`dvc pull` / `dvc repro ingest`)"
        )
    mismatches: list[str] = []
    for source, path in candidates:
        digest = sha256(path)
        if expected is None and not source.startswith("runs:/"):
            mismatches.append(f"{source}: version has no {TEST_SHA_TAG} tag to check it against")
            continue
        if expected is not None and digest != expected:
            mismatches.append(f"{source}: sha256 {digest[:12]}… != {TEST_SHA_TAG} {expected[:12]}…")
            continue
        frame = pd.read_parquet(path)
        return frame, {"source": source, "sha256": digest, "rows": len(frame)}
    raise EvaluationSetError(
        f"{mv.uri}: the test rows it was registered with are not available ("
        + "; ".join(mismatches)
        + "); restore them (`git checkout dvc.lock && dvc checkout data/raw`) or re-run export"
    )


def _has_artifact(client: MlflowClient, run_id: str, path: str) -> bool:
    folder = path.rsplit("/", 1)[0]
    try:
        return any(a.path == path for a in client.list_artifacts(run_id, folder))
    except OSError:
        return False


def smoke_test(mv: Registered, scorer: OnnxScorer, frame: pd.DataFrame) -> Check:
    """Load the artifact the way MLflow consumers do and predict a few raw rows.

    The pyfunc result must match onnxruntime on the same file and be finite. Any exception is a
    failed check (the gate records it), not a crash: a broken artifact must not be promoted.
    """
    from neuroflow.registry.gate import Check

    try:
        import mlflow.pyfunc

        sample = frame[scorer.columns].head(5).reset_index(drop=True)
        got = mlflow.pyfunc.load_model(str(mv.local_dir)).predict(sample)
        want = scorer.predict_frame(sample)
        if not isinstance(got, dict) or set(got) != set(want):
            raise ValueError(f"pyfunc returned {type(got).__name__} {sorted(got)[:5]}")
        for key, value in want.items():
            if value.dtype.kind == "f":
                if not np.isfinite(value).all():
                    raise ValueError(f"non-finite {key}")
                if not np.allclose(np.asarray(got[key]), value, atol=1e-6):
                    raise ValueError(f"pyfunc and onnxruntime disagree on {key}")
            elif not np.array_equal(np.asarray(got[key]), value):
                raise ValueError(f"pyfunc and onnxruntime disagree on {key}")
    except Exception as exc:  # recorded as the failed check; see docstring
        log.warning("smoke test of %s failed: %s", mv.uri, exc)
        return Check(
            "smoke", False, f"{mv.uri} load-and-predict failed: {type(exc).__name__}: {exc}"
        )
    return Check(
        "smoke", True, f"{mv.uri} loads with mlflow.pyfunc and predicts {len(sample)} rows"
    )


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="neuroflow-registry-")
