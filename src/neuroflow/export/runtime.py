"""Running an exported graph with onnxruntime: raw rows → typed feeds → outputs.

The one implementation of "DataFrame (or JSON columns) → ONNX feeds" and of running them. Export's
parity check (`onnx_graph.run_onnx`), the serving scorer (`serving/scorer.py`: the HTTP server and
`neuroflow predict`) and the promotion gate all feed the graph through here, so the parity check
tests the code that serves. numpy, pandas and onnxruntime only: no torch, no mlflow.

The graph (export/onnx_graph.py) has one input per raw column: numeric columns are
``tensor(double)`` (NaN = missing), categorical ones ``tensor(string)`` (missing = ``""``). Both
feed builders read exactly the model's columns and ignore any other; what to do about those
(the label, unknown columns) is the caller's policy. A missing column or a value that does not fit
raises `InputError`, whose message names the column and an offending value.
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


def _bad(name: str, values: Sequence[Any], allowed: frozenset[type], what: str) -> InputError:
    row = next(i for i, v in enumerate(values) if type(v) not in allowed)
    return InputError(f"column {name!r} expects {what}; row {row} has {show(values[row])}")


def show(value: Any) -> str:
    """A value as a message quotes it: JSON-like, at most 60 characters."""
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
