"""Score raw rows with a registered ONNX model: one InferenceSession, typed per-column feeds.

The promotion gate, `neuroflow predict` and the HTTP server all score through `OnnxScorer`, so
the three agree by construction. The graph (export/onnx_graph.py) has one input per raw column:
numeric columns are ``tensor(double)`` (NaN = missing), categorical ones ``tensor(string)``
(missing = ""). This module imports numpy, pandas and onnxruntime only (no torch, no mlflow), so
a server process starts fast and stays small.

Two ways in:
- `feeds_from_frame`: a DataFrame from a file; extra columns are ignored (they pass through).
- `feeds_from_columns`: JSON values from a request, checked strictly: exactly the model's
  columns, numbers (or null) for numeric inputs, strings/integers (or null) for categorical ones.
Both raise `InputError`, whose message names the column and an offending value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from neuroflow.errors import DataError
from neuroflow.features.transform import MISSING_CATEGORY, categorical_values

# Output names written by export/onnx_graph.py (not imported: that module imports torch).
LABEL = "label"
PROBABILITIES = "probabilities"
PREDICTION = "prediction"


class InputError(DataError):
    """Rows do not fit the model's inputs; the message names the column and value."""


@dataclass(frozen=True)
class ModelInput:
    name: str
    kind: Literal["numeric", "string"]
    rank: int  # 1: shape [N]; 2: [N, 1] (single-input graphs, as mlflow feeds them)


_ORT_KINDS: dict[str, Literal["numeric", "string"]] = {
    "tensor(double)": "numeric",
    "tensor(float)": "numeric",
    "tensor(string)": "string",
}
_NUMPY = {"tensor(double)": np.float64, "tensor(float)": np.float32}
# JSON value types accepted per input kind (bool is deliberately not a number here).
_NUMBER_TYPES: frozenset[type] = frozenset({int, float, type(None)})
_CATEGORY_TYPES: frozenset[type] = frozenset({str, int, type(None)})
_STRING_TYPES: frozenset[type] = frozenset({str})


class OnnxScorer:
    """An onnxruntime session over a raw-rows graph plus its task and class labels."""

    def __init__(self, model_bytes: bytes, *, intra_op_threads: int = 0) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = intra_op_threads  # 0 = onnxruntime's default
        self.session = onnxruntime.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )
        self.inputs: list[ModelInput] = []
        self._dtypes: dict[str, Any] = {}
        for node in self.session.get_inputs():
            kind = _ORT_KINDS.get(node.type)
            if kind is None:
                raise InputError(f"model input {node.name!r} has unsupported type {node.type}")
            self.inputs.append(ModelInput(node.name, kind, len(node.shape)))
            self._dtypes[node.name] = _NUMPY.get(node.type, object)
        self.output_names = [out.name for out in self.session.get_outputs()]
        meta = self.session.get_modelmeta().custom_metadata_map
        self.task: str = meta.get("neuroflow.task", "regression")
        self.classes: list[Any] = json.loads(meta.get("neuroflow.classes", "[]"))

    @property
    def columns(self) -> list[str]:
        return [i.name for i in self.inputs]

    # ------------------------------------------------------------------ feeds
    def feeds_from_frame(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise InputError(
                f"input is missing column(s) {missing}; the model needs {self.columns}"
            )
        feeds: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            series = frame[spec.name]
            if spec.kind == "string":
                values = categorical_values(series)
            else:
                coerced = pd.to_numeric(series, errors="coerce")
                bad = series.notna() & coerced.isna()
                if bad.any():
                    example = series[bad].iloc[0]
                    raise InputError(
                        f"column {spec.name!r} must be numeric; row {int(bad.to_numpy().argmax())} "
                        f"has {example!r}"
                    )
                values = coerced.to_numpy(dtype=self._dtypes[spec.name], na_value=np.nan)
            feeds[spec.name] = values.reshape(-1, 1) if spec.rank == 2 else values
        return feeds

    def feeds_from_columns(self, columns: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """Strictly typed JSON columns (all of equal length) → feeds."""
        names = list(columns)
        missing = [c for c in self.columns if c not in columns]
        extra = [c for c in names if c not in self._dtypes]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing column(s) {missing}")
            if extra:
                parts.append(f"unexpected column(s) {extra}")
            raise InputError(f"{'; '.join(parts)}; the model takes exactly {self.columns}")
        feeds: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            values = columns[spec.name]
            # set(map(type, ...)) runs in C: one pass to accept a whole column, and only a bad
            # column pays for the row-by-row search that names the offending value.
            types = set(map(type, values))
            if spec.kind == "numeric":
                if not types <= _NUMBER_TYPES:
                    raise self._bad(spec.name, values, _NUMBER_TYPES, "a number or null")
                try:
                    array = np.asarray(values, dtype=self._dtypes[spec.name])  # None → NaN
                except (OverflowError, ValueError) as exc:
                    raise InputError(f"column {spec.name!r}: {exc}") from None
            else:
                if not types <= _CATEGORY_TYPES:
                    raise self._bad(spec.name, values, _CATEGORY_TYPES, "a string or null")
                if types <= _STRING_TYPES:
                    array = np.asarray(values, dtype=object)
                else:
                    array = np.asarray(
                        [MISSING_CATEGORY if v is None else str(v) for v in values], dtype=object
                    )
            feeds[spec.name] = array.reshape(-1, 1) if spec.rank == 2 else array
        return feeds

    @staticmethod
    def _bad(name: str, values: Sequence[Any], allowed: frozenset[type], what: str) -> InputError:
        row = next(i for i, v in enumerate(values) if type(v) not in allowed)
        return InputError(f"column {name!r} expects {what}; row {row} has {_show(values[row])}")

    # ------------------------------------------------------------------ scoring
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.session.run(self.output_names, feeds)
        return {n: np.asarray(r) for n, r in zip(self.output_names, results, strict=True)}

    def predict_frame(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return self.run(self.feeds_from_frame(frame))

    def output_frame(self, outputs: dict[str, np.ndarray]) -> pd.DataFrame:
        """Outputs as columns: label + proba_<class> per class, or prediction."""
        if PROBABILITIES not in outputs:
            return pd.DataFrame({PREDICTION: outputs[PREDICTION]})
        frame = pd.DataFrame({LABEL: outputs[LABEL]})
        proba = outputs[PROBABILITIES]
        for index, label in enumerate(self.classes):
            frame[f"proba_{label}"] = proba[:, index]
        return frame


def predictions_json(outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """MLflow's scoring-server response shape for a multi-output model."""
    return {"predictions": {name: value.tolist() for name, value in outputs.items()}}


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
