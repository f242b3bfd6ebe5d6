"""Loading the served model and parsing scoring requests (MLflow's protocol); no web framework.

    GET  /ping, /health      200 when the model is loaded
    GET  /metadata           the served model: name, version, run id, inputs, outputs
    POST /invocations        JSON {"dataframe_split": {"columns": [...], "data": [[...]]}}
                             or   {"dataframe_records": [{column: value}, ...]}, or text/csv
                             → {"predictions": {"label": [...], "probabilities": [[...]]}}
                               (regression: {"predictions": {"prediction": [...]}})

Like `mlflow models serve`, errors are `{"error_code": ..., "message": ...}`: every problem a
client can cause (empty or non-JSON body, unknown payload key, a missing or extra column, a
value of the wrong type, ragged rows) is a 4xx whose message names it; a 500 means a bug here.
The model is loaded once at start-up (onnxruntime, no torch, no mlflow at request time). The
FastAPI app lives in server.py.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuroflow.serving.scorer import InputError, OnnxScorer

log = logging.getLogger(__name__)

JSON_KEYS = ("dataframe_split", "dataframe_records")


def loads(body: bytes) -> Any:
    """Parse JSON with orjson when installed (5-10x faster on large batches), else json.

    orjson refuses what Python's json accepts (NaN literals, integers over 64 bits), so a body
    orjson rejects is parsed again by json before it is called invalid.
    """
    try:
        import orjson
    except ImportError:
        return json.loads(body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def dumps(obj: Any) -> bytes:
    try:
        import orjson
    except ImportError:
        return json.dumps(obj).encode()
    return orjson.dumps(obj)


class RequestError(Exception):
    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class ServedModel:
    scorer: OnnxScorer
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "task": self.scorer.task,
            "classes": self.scorer.classes,
            "inputs": [{"name": i.name, "type": i.kind} for i in self.scorer.inputs],
            "outputs": self.scorer.output_names,
        }


def resolve_alias(root: Path, name: str, alias: str) -> str | None:
    """The version `models:/name@alias` points to now (None if the alias is not set)."""
    from neuroflow import tracking
    from neuroflow.registry.artifacts import aliases

    client = tracking.client(root)
    with tracking.reachable(tracking_uri_of(root)):
        return aliases(client, name).get(alias)


def load_version(root: Path, name: str, version: str) -> ServedModel:
    """Download `models:/name/version` and load its ONNX file into onnxruntime."""
    from neuroflow import tracking
    from neuroflow.registry.artifacts import download, scratch_dir

    client = tracking.client(root)
    with tracking.reachable(tracking_uri_of(root)), scratch_dir() as tmp:
        registered = download(client, name, version, Path(tmp))
        model_bytes = registered.onnx_path.read_bytes()
    return ServedModel(OnnxScorer(model_bytes), name, version, registered.run_id)


def load_served_model(root: Path, name: str, alias: str = "champion") -> ServedModel:
    """Resolve `models:/name@alias` and load its ONNX file into onnxruntime."""
    from neuroflow.registry.artifacts import RegistryError

    version = resolve_alias(root, name, alias)
    if version is None:
        raise RegistryError(
            f"{name} has no @{alias}: promote a challenger first (`neuroflow promote`)"
        )
    return load_version(root, name, version)


def moved_model(root: Path, name: str, alias: str, current: ServedModel) -> ServedModel | None:
    """The model `@alias` points to now, loaded, if it moved away from `current`; else None.

    A removed alias is not a move: the server keeps answering with what it has.
    """
    version = resolve_alias(root, name, alias)
    if version is None or version == current.version:
        return None
    return load_version(root, name, version)


def tracking_uri_of(root: Path) -> str:
    from neuroflow.config import tracking_uri

    return tracking_uri(root)


# --------------------------------------------------------------------------- request parsing


def parse_columns(body: bytes, content_type: str | None, scorer: OnnxScorer) -> dict[str, Any]:
    """Request body → feeds, or RequestError naming what is wrong."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if not body.strip():
        raise RequestError(400, f"empty request body: send JSON with one of {list(JSON_KEYS)}")
    if mime == "text/csv":
        return _csv_feeds(body, scorer)
    if mime != "application/json":
        raise RequestError(
            415,
            f"unsupported content type {content_type!r}: use application/json (or text/csv)",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    try:
        payload = loads(body)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise RequestError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError(400, f"expected a JSON object with one of {list(JSON_KEYS)}")
    keys = [k for k in payload if k != "params"]
    if len(keys) != 1 or keys[0] not in JSON_KEYS:
        raise RequestError(
            400, f"expected exactly one of {list(JSON_KEYS)} in the request, got {keys}"
        )
    value = payload[keys[0]]
    if value == []:  # an empty batch: zero rows of every column
        columns: dict[str, list[Any]] = {name: [] for name in scorer.columns}
    else:
        columns = _split(value) if keys[0] == "dataframe_split" else _records(value)
    try:
        return scorer.feeds_from_columns(columns)
    except InputError as exc:
        raise RequestError(400, str(exc)) from None


def _split(split: Any) -> dict[str, list[Any]]:
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list):
        raise RequestError(400, 'dataframe_split must be {"columns": [...], "data": [[...], ...]}')
    columns, data = split["columns"], split.get("data")
    if not all(isinstance(c, str) for c in columns):
        raise RequestError(400, "dataframe_split.columns must be a list of column names")
    if len(set(columns)) != len(columns):
        raise RequestError(400, f"dataframe_split.columns repeats a name: {columns}")
    if not isinstance(data, list):
        raise RequestError(400, "dataframe_split.data must be a list of rows")
    for row_number, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise RequestError(
                400,
                f"dataframe_split.data row {row_number} must be a list of {len(columns)} values "
                f"(one per column), got {json.dumps(row)[:80]}",
            )
    return {name: [row[i] for row in data] for i, name in enumerate(columns)}


def _records(records: Any) -> dict[str, list[Any]]:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise RequestError(400, "dataframe_records must be a list of {column: value} objects")
    names = list(records[0])
    for row_number, record in enumerate(records):
        if set(record) != set(names):
            diff = sorted(set(record) ^ set(names))
            raise RequestError(
                400,
                f"dataframe_records[{row_number}] has different columns than record 0 ({diff}); "
                "every record needs every column (null for a missing value)",
            )
    return {name: [r[name] for r in records] for name in names}


def _csv_feeds(body: bytes, scorer: OnnxScorer) -> dict[str, Any]:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"request body is not valid CSV: {exc}") from None
    extra = [c for c in frame.columns if c not in scorer.columns]
    if extra:
        raise RequestError(400, f"unexpected column(s) {extra}; the model takes {scorer.columns}")
    try:
        return scorer.feeds_from_frame(frame)
    except InputError as exc:
        raise RequestError(400, str(exc)) from None
