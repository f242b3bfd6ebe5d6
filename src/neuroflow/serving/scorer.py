"""Score raw rows with a registered ONNX model: one InferenceSession plus the input policy.

The promotion gate, `neuroflow predict` and the HTTP server all score through `OnnxScorer`, whose
feeds and run are export/runtime.py's (the code export's parity check runs), so all of them
agree by construction. This module imports numpy, pandas and onnxruntime only (no torch, no
mlflow), so a server process starts fast and stays small.

What a batch may carry besides the model's inputs, the same for `predict` and `serve`
(`screen`):
- the label (target) column: accepted and ignored, with a note;
- unknown columns: ignored with a note (`predict` keeps them in its output), refused with
  `strict`;
- categories the model never saw in training (one-hot all zeros): scored, counted and warned
  about, refused with `strict`. A missing value is not an unseen category.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from neuroflow.export import runtime
from neuroflow.export.runtime import InputError, ModelInput
from neuroflow.features.transform import MISSING_CATEGORY

log = logging.getLogger(__name__)

# Output names written by export/onnx_graph.py (not imported: that module imports torch).
LABEL = "label"
PROBABILITIES = "probabilities"
PREDICTION = "prediction"

__all__ = ["InputError", "ModelInput", "OnnxScorer", "Screen", "UnseenCategoryError"]


@dataclass(frozen=True)
class Unseen:
    column: str
    value: str
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "value": self.value, "rows": self.rows}


class UnseenCategoryError(InputError):
    """`strict` scoring refused categories the model never saw in training."""

    def __init__(self, unseen: list[Unseen]) -> None:
        self.unseen = unseen
        shown = "; ".join(
            f"column {u.column!r} value {u.value!r} ({u.rows} row(s))" for u in unseen
        )
        super().__init__(
            f"unseen categor{'y' if len(unseen) == 1 else 'ies'} (not in the training data): "
            f"{shown}; without --strict, unseen categories score as an all-zeros one-hot"
        )


@dataclass(frozen=True)
class Screen:
    """What a batch carried besides the model's inputs (see the module docstring)."""

    label: list[str] = field(default_factory=list)  # the target column, when present
    unknown: list[str] = field(default_factory=list)
    unseen: list[Unseen] = field(default_factory=list)

    @property
    def ignored(self) -> list[str]:
        return [*self.label, *self.unknown]

    @property
    def unseen_count(self) -> int:
        """Cells holding an unseen category (one row with two unseen columns counts 2)."""
        return sum(u.rows for u in self.unseen)

    def log(self, logger: logging.Logger, where: str, *, notes: bool = True) -> None:
        """Unseen categories as warnings; with `notes`, the ignored columns as info lines."""
        if notes and self.label:
            logger.info("%s: label column %s ignored (not a model input)", where, self.label)
        if notes and self.unknown:
            logger.info("%s: unknown column(s) %s ignored (not model inputs)", where, self.unknown)
        for u in self.unseen:
            logger.warning(
                "%s: column %r has category %r in %d row(s), unseen in training: scored as an "
                "all-zeros one-hot (--strict refuses it)",
                where,
                u.column,
                u.value,
                u.rows,
            )


class OnnxScorer:
    """An onnxruntime session over a raw-rows graph plus its task, classes and vocabularies."""

    def __init__(self, model_bytes: bytes, *, intra_op_threads: int = 0) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = intra_op_threads  # 0 = onnxruntime's default
        self.session = onnxruntime.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )
        self.inputs: list[ModelInput] = runtime.model_inputs(self.session)
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
        return runtime.frame_feeds(self.inputs, frame)

    def feeds_from_columns(self, columns: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        return runtime.column_feeds(self.inputs, columns)

    def screen(
        self,
        names: Sequence[str],
        feeds: Mapping[str, np.ndarray],
        *,
        target: str | None = None,
        strict: bool = False,
    ) -> Screen:
        """Sort the batch's other columns into label / unknown and count unseen categories.

        `target` names the label column when the graph does not record it. With `strict`,
        unknown columns raise `InputError` and unseen categories `UnseenCategoryError`.
        """
        label_name = self.target or target
        inputs = set(self.columns)
        label = [n for n in names if n == label_name and n not in inputs]
        unknown = [n for n in names if n not in inputs and n != label_name]
        if strict and unknown:
            raise InputError(
                f"unknown column(s) {unknown}; the model takes {self.columns}"
                + (f" (and the label {label_name!r} is ignored)" if label_name else "")
                + "; without --strict, unknown columns are ignored"
            )
        unseen = self.unseen(feeds)
        if strict and unseen:
            raise UnseenCategoryError(unseen)
        return Screen(label, unknown, unseen)

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
        return runtime.run(self.session, feeds)

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


def predictions_json(outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """MLflow's scoring-server response shape for a multi-output model."""
    return {"predictions": {name: value.tolist() for name, value in outputs.items()}}
