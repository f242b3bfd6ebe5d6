"""The input policy `neuroflow predict` and `neuroflow serve` share, over `OnnxScorer`.

The promotion gate, `predict` and the HTTP server all score through export/runtime.py's
`OnnxScorer` (the feeds and run export's parity check runs), so all of them agree by
construction. numpy and onnxruntime only (no torch, no mlflow): a server starts fast.

What a batch may carry besides the model's inputs, the same for `predict` and `serve`
(`screen`):
- the label (target) column: accepted and ignored, with a note;
- unknown columns: ignored with a note (`predict` keeps them in its output), refused with
  `strict`;
- categories the model never saw in training (one-hot all zeros): scored, counted and warned
  about, refused with `strict`. A missing value is not an unseen category.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuroflow.export.runtime import InputError, OnnxScorer, Unseen

log = logging.getLogger(__name__)


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


def screen(
    scorer: OnnxScorer,
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
    label_name = scorer.target or target
    inputs = set(scorer.columns)
    label = [n for n in names if n == label_name and n not in inputs]
    unknown = [n for n in names if n not in inputs and n != label_name]
    if strict and unknown:
        raise InputError(
            f"unknown column(s) {unknown}; the model takes {scorer.columns}"
            + (f" (and the label {label_name!r} is ignored)" if label_name else "")
            + "; without --strict, unknown columns are ignored"
        )
    unseen = scorer.unseen(feeds)
    if strict and unseen:
        raise UnseenCategoryError(unseen)
    return Screen(label, unknown, unseen)


def predictions_json(outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """MLflow's scoring-server response shape for a multi-output model."""
    return {"predictions": {name: value.tolist() for name, value in outputs.items()}}
