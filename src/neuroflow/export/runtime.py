"""Running an exported graph with onnxruntime: raw rows → typed feeds → outputs.

The one implementation of "DataFrame (or JSON columns) → ONNX feeds" and of running them. Export's
parity check (`onnx_graph.run_onnx`) and `OnnxScorer` (a registered graph with its task, classes
and training vocabularies, which the HTTP server, `neuroflow predict` and the promotion gate
score through) all feed the graph here, so the parity check tests the code that serves. numpy,
pandas and onnxruntime only: no torch, no mlflow.

The graph (export/onnx_graph.py) has one input per raw column: numeric columns are
``tensor(double)`` (NaN = missing), categorical ones ``tensor(string)`` (missing = ``""``). Both
feed builders read exactly the model's columns and ignore any other; what to do about those
(the label, unknown columns) is the caller's policy (serving/scorer.py). A missing column or a
value that does not fit raises `InputError`, whose message names the column and an offending
value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from neuroflow.errors import DataError
from neuroflow.features.transform import MISSING_CATEGORY, categorical_values

if TYPE_CHECKING:
    import onnxruntime


# Output names of the exported graphs (export/onnx_graph.py writes them).
LABEL = "label"
PROBABILITIES = "probabilities"
PREDICTION = "prediction"
SCORE = "score"  # anomaly detection: reconstruction error per row


class InputError(DataError):
    """Rows do not fit the model's inputs; the message names the column and value."""


@dataclass(frozen=True)
class ModelInput:
    name: str
    kind: Literal["numeric", "string"]
    rank: int  # 1: shape [N]; 2: [N, 1] (single-input graphs, as mlflow feeds them)
    dtype: Any  # numpy dtype of the feed: float64/float32, or object for strings


ORT_TYPES: dict[str, tuple[Literal["numeric", "string"], Any]] = {
    "tensor(double)": ("numeric", np.float64),
    "tensor(float)": ("numeric", np.float32),
    "tensor(string)": ("string", object),
}
# JSON value types accepted per input kind (bool is deliberately not a number here).
_NUMBER_TYPES: frozenset[type] = frozenset({int, float, type(None)})
_CATEGORY_TYPES: frozenset[type] = frozenset({str, int, type(None)})
_STRING_TYPES: frozenset[type] = frozenset({str})


def model_input(name: str, ort_type: str, rank: int) -> ModelInput:
    """One graph input from its onnxruntime type string (``tensor(double)`` ...)."""
    known = ORT_TYPES.get(ort_type)
    if known is None:
        raise InputError(f"model input {name!r} has unsupported type {ort_type}")
    return ModelInput(name, known[0], rank, known[1])


def model_inputs(session: onnxruntime.InferenceSession) -> list[ModelInput]:
    return [model_input(node.name, node.type, len(node.shape)) for node in session.get_inputs()]


def _shaped(spec: ModelInput, values: np.ndarray) -> np.ndarray:
    return values.reshape(-1, 1) if spec.rank == 2 else values


def _require(inputs: Sequence[ModelInput], present: Any) -> None:
    missing = [i.name for i in inputs if i.name not in present]
    if missing:
        needed = [i.name for i in inputs]
        raise InputError(f"input is missing column(s) {missing}; the model needs {needed}")


def frame_feeds(inputs: Sequence[ModelInput], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A DataFrame of raw columns → feeds: numeric as float with NaN for missing, categorical as
    the strings `FittedPreprocessor` sees (missing spelled ``""``). Other columns are ignored."""
    _require(inputs, frame.columns)
    feeds: dict[str, np.ndarray] = {}
    for spec in inputs:
        series = frame[spec.name]
        if spec.kind == "string":
            feeds[spec.name] = _shaped(spec, categorical_values(series))
            continue
        coerced = pd.to_numeric(series, errors="coerce")
        bad = series.notna() & coerced.isna()
        if bad.any():
            example = series[bad].iloc[0]
            raise InputError(
                f"column {spec.name!r} must be numeric; row {int(bad.to_numpy().argmax())} "
                f"has {example!r}"
            )
        feeds[spec.name] = _shaped(spec, coerced.to_numpy(dtype=spec.dtype, na_value=np.nan))
    return feeds


def column_feeds(
    inputs: Sequence[ModelInput], columns: Mapping[str, Sequence[Any]]
) -> dict[str, np.ndarray]:
    """JSON columns (all of equal length) → feeds, strictly typed: numbers (or null) for numeric
    inputs, strings/integers (or null) for categorical ones. Other columns are ignored."""
    _require(inputs, columns)
    feeds: dict[str, np.ndarray] = {}
    for spec in inputs:
        values = columns[spec.name]
        # set(map(type, ...)) runs in C: one pass to accept a whole column, and only a bad
        # column pays for the row-by-row search that names the offending value.
        types = set(map(type, values))
        if spec.kind == "numeric":
            if not types <= _NUMBER_TYPES:
                raise _bad(spec.name, values, _NUMBER_TYPES, "a number or null")
            try:
                array = np.asarray(values, dtype=spec.dtype)  # None → NaN
            except (OverflowError, ValueError) as exc:
                raise InputError(f"column {spec.name!r}: {exc}") from None
        elif not types <= _CATEGORY_TYPES:
            raise _bad(spec.name, values, _CATEGORY_TYPES, "a string or null")
        elif types <= _STRING_TYPES:
            array = np.asarray(values, dtype=object)
        else:
            array = np.asarray(
                [MISSING_CATEGORY if v is None else str(v) for v in values], dtype=object
            )
        feeds[spec.name] = _shaped(spec, array)
    return feeds


def run(
    session: onnxruntime.InferenceSession, feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run the graph; output name → array."""
    names = [out.name for out in session.get_outputs()]
    results = session.run(names, dict(feeds))
    return {name: np.asarray(value) for name, value in zip(names, results, strict=True)}


@dataclass(frozen=True)
class Unseen:
    column: str
    value: str
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "value": self.value, "rows": self.rows}


class OnnxScorer:
    """An onnxruntime session over a raw-rows graph plus its task, classes and vocabularies."""

    def __init__(self, model_bytes: bytes, *, intra_op_threads: int = 0) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = intra_op_threads  # 0 = onnxruntime's default
        self.session = onnxruntime.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )
        self.inputs: list[ModelInput] = model_inputs(self.session)
        self.output_names = [out.name for out in self.session.get_outputs()]
        meta = self.session.get_modelmeta().custom_metadata_map
        self.task: str = meta.get("neuroflow.task", "regression")
        self.classes: list[Any] = json.loads(meta.get("neuroflow.classes", "[]"))
        # Graphs exported before these were recorded have neither: no label / unseen checks.
        self.target: str | None = meta.get("neuroflow.target")
        self.categories: dict[str, list[str]] | None = (
            json.loads(meta["neuroflow.categories"]) if "neuroflow.categories" in meta else None
        )

    @property
    def columns(self) -> list[str]:
        return [i.name for i in self.inputs]

    # ------------------------------------------------------------------ feeds
    def feeds_from_frame(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return frame_feeds(self.inputs, frame)

    def feeds_from_columns(self, columns: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        return column_feeds(self.inputs, columns)

    def unseen(self, feeds: Mapping[str, np.ndarray]) -> list[Unseen]:
        """Categorical values outside the training vocabulary, per column and value."""
        found: list[Unseen] = []
        for name, vocab in (self.categories or {}).items():
            if name not in feeds:
                continue
            values, counts = np.unique(feeds[name].ravel().astype(str), return_counts=True)
            known = {*vocab, MISSING_CATEGORY}
            found.extend(
                Unseen(name, str(v), int(c))
                for v, c in zip(values, counts, strict=True)
                if v not in known
            )
        return found

    # ------------------------------------------------------------------ scoring
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run(self.session, feeds)

    def predict_frame(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return self.run(self.feeds_from_frame(frame))

    def output_frame(self, outputs: dict[str, np.ndarray]) -> pd.DataFrame:
        """Outputs as columns: label + proba_<class> per class, or prediction (score)."""
        if PROBABILITIES not in outputs:  # regression "prediction", anomaly "score"
            return pd.DataFrame({name: value for name, value in outputs.items() if value.ndim == 1})
        frame = pd.DataFrame({LABEL: outputs[LABEL]})
        proba = outputs[PROBABILITIES]
        for index, label in enumerate(self.classes):
            frame[f"proba_{label}"] = proba[:, index]
        return frame


def _bad(name: str, values: Sequence[Any], allowed: frozenset[type], what: str) -> InputError:
    row = next(i for i, v in enumerate(values) if type(v) not in allowed)
    return InputError(f"column {name!r} expects {what}; row {row} has {show(values[row])}")


def show(value: Any) -> str:
    """A value as a message quotes it: JSON-like, at most 60 characters."""
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
