"""Loading the served model and parsing scoring requests (MLflow's protocol); no web framework.

    GET  /ping, /health      200 when the model is loaded
    GET  /metadata           the served model: name, version, run id, inputs, outputs
    POST /invocations        JSON {"dataframe_split": {"columns": [...], "data": [[...]]}}
                             or   {"dataframe_records": [{column: value}, ...]}, or text/csv
                             → {"predictions": {"label": [...], "probabilities": [[...]]}}
                               (regression: {"predictions": {"prediction": [...]}})

Like `mlflow models serve`, errors are `{"error_code": ..., "message": ...}`: every problem a
client can cause (empty or non-JSON body, unknown payload key, a missing column, a value of the
wrong type, ragged rows; with --strict an unknown column or an unseen category) is a 4xx whose
message names it; a 500 means a bug here. The label column and unknown columns are ignored and
named in the response header `X-Neuroflow-Ignored-Columns`; unseen categories are counted in
`X-Neuroflow-Unseen-Categories` (scorer.py, `screen`: the same policy as `neuroflow predict`).
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

from neuroflow.export.runtime import InputError, OnnxScorer
from neuroflow.serving.scorer import Screen, UnseenCategoryError, screen

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
    def __init__(
        self,
        status: int,
        message: str,
        code: str = "BAD_REQUEST",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.details = status, code, details or {}

    def body(self) -> dict[str, Any]:
        return {"error_code": self.code, "message": str(self), **self.details}


@dataclass(frozen=True)
class ServedModel:
    scorer: OnnxScorer
    name: str
    version: str
    run_id: str
    target: str | None = None  # the label column, for graphs that do not record it

    @property
    def uri(self) -> str:
        from neuroflow.registry.names import model_uri

        return model_uri(self.name, self.version)

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


def all_aliases(root: Path, name: str) -> dict[str, str]:
    """alias → version for the registered model `name`."""
    from neuroflow import tracking
    from neuroflow.registry.names import aliases

    client = tracking.client(root)
    with tracking.reachable(tracking_uri_of(root)):
        return aliases(client, name)


def resolve_alias(root: Path, name: str, alias: str) -> str | None:
    """The version `models:/name@alias` points to now (None if the alias is not set)."""
    return all_aliases(root, name).get(alias)


def load_version(root: Path, name: str, version: str, target: str | None = None) -> ServedModel:
    """Download `models:/name/version` and load its ONNX file into onnxruntime."""
    from neuroflow import tracking
    from neuroflow.registry.artifacts import download, scratch_dir

    client = tracking.client(root)
    with tracking.reachable(tracking_uri_of(root)), scratch_dir() as tmp:
        registered = download(client, name, version, Path(tmp))
        model_bytes = registered.onnx_path.read_bytes()
    scorer = OnnxScorer(model_bytes)
    return ServedModel(scorer, name, version, registered.run_id, scorer.target or target)


def load_served_model(
    root: Path,
    name: str,
    alias: str = "champion",
    *,
    target: str | None = None,
    command: str = "neuroflow serve",
) -> ServedModel:
    """Resolve `models:/name@alias` and load its ONNX file into onnxruntime.

    `command` is the one the user ran: an unset alias is answered with that command spelled
    out for the alias that is set (no champion yet: `... --alias challenger`).
    """
    from neuroflow.registry.names import RegistryError

    known = all_aliases(root, name)
    version = known.get(alias)
    if version is None:
        raise RegistryError(_no_alias(name, alias, known, command))
    return load_version(root, name, version, target)


def _no_alias(name: str, alias: str, known: dict[str, str], command: str) -> str:
    from neuroflow.registry.names import CHALLENGER, CHAMPION

    if alias == CHAMPION and CHALLENGER in known:
        return (
            f"{name} has no @{CHAMPION} yet (nothing has been promoted); its @{CHALLENGER} is "
            f"version {known[CHALLENGER]}. Score with the {CHALLENGER}: "
            f"`{command} --alias {CHALLENGER}`, or promote it first: `neuroflow promote`"
        )
    if known:
        listed = ", ".join(f"@{a} (v{v})" for a, v in sorted(known.items()))
        return f"{name} has no @{alias}; it has {listed}: pass one with `{command} --alias NAME`"
    return f"{name} has no @{alias} and no other alias: run the pipeline (`dvc repro`) first"


def moved_model(root: Path, name: str, alias: str, current: ServedModel) -> ServedModel | None:
    """The model `@alias` points to now, loaded, if it moved away from `current`; else None.

    A removed alias is not a move: the server keeps answering with what it has.
    """
    version = resolve_alias(root, name, alias)
    if version is None or version == current.version:
        return None
    return load_version(root, name, version, current.target)


def tracking_uri_of(root: Path) -> str:
    from neuroflow.config import tracking_uri

    return tracking_uri(root)


# --------------------------------------------------------------------------- request parsing


@dataclass(frozen=True)
class Batch:
    feeds: dict[str, Any]
    screen: Screen

    @property
    def rows(self) -> int:
        return len(next(iter(self.feeds.values()))) if self.feeds else 0


def parse_request(
    body: bytes, content_type: str | None, model: ServedModel, *, strict: bool = False
) -> Batch:
    """Request body → feeds plus what it carried besides the inputs, or RequestError."""
    names, feeds = _parse_columns(body, content_type, model.scorer)
    try:
        notes = screen(model.scorer, names, feeds, target=model.target, strict=strict)
    except UnseenCategoryError as exc:
        details = {"unseen": [u.to_json() for u in exc.unseen]}
        raise RequestError(400, str(exc), "UNSEEN_CATEGORY", details) from None
    except InputError as exc:
        raise RequestError(400, str(exc)) from None
    return Batch(feeds, notes)


def _parse_columns(
    body: bytes, content_type: str | None, scorer: OnnxScorer
) -> tuple[list[str], dict[str, Any]]:
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
        return list(columns), scorer.feeds_from_columns(columns)
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


def _csv_feeds(body: bytes, scorer: OnnxScorer) -> tuple[list[str], dict[str, Any]]:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"request body is not valid CSV: {exc}") from None
    try:
        return [str(c) for c in frame.columns], scorer.feeds_from_frame(frame)
    except InputError as exc:
        raise RequestError(400, str(exc)) from None
