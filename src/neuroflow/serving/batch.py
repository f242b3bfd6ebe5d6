"""`neuroflow predict`: raw rows from a CSV/Parquet file → the same rows plus predictions.

The rows go through the same screen as `neuroflow serve` (scorer.py): the label column and
unknown columns are ignored with a log line (and kept in the output), unseen categories are
scored with a warning naming column, value and count, and `strict` refuses both. When the rows
carry the label, `metrics` scores the predictions against it with evaluate's metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuroflow.data.sources import read_table
from neuroflow.errors import DataError
from neuroflow.export.runtime import InputError, OnnxScorer
from neuroflow.io import write_with
from neuroflow.serving.scorer import Screen, screen

log = logging.getLogger(__name__)

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Scored:
    frame: pd.DataFrame  # the input rows, then the prediction columns
    screen: Screen
    uri: str
    metrics: dict[str, Any] | None = None  # with `metrics`: {"rows": n, metric: value, ...}


def _format(path: Path) -> str:
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    return kind


def predict_file(
    root: Path,
    name: str,
    alias: str,
    source: Path,
    target: Path,
    *,
    label: str | None = None,
    strict: bool = False,
    metrics: bool = False,
) -> Scored:
    """Score `source` with `models:/name@alias` and write input + predictions to `target`.

    `label` names the label column when the model's graph does not record it.
    """
    from neuroflow.serving.app import load_served_model

    in_kind, out_kind = _format(source), _format(target)
    frame = read_table(source, in_kind).reset_index(drop=True)
    command = f"neuroflow predict -i {source} -o {target}"
    served = load_served_model(root, name, alias, target=label, command=command)
    scorer = served.scorer
    try:
        feeds = scorer.feeds_from_frame(frame)
        names = [str(c) for c in frame.columns]
        notes = screen(scorer, names, feeds, target=served.target, strict=strict)
    except InputError as exc:  # the file, then what is wrong with it
        raise InputError(f"{source}: {exc}") from None
    notes.log(log, f"predict {source}")
    outputs = scorer.run(feeds)
    scores = scorer.output_frame(outputs)
    result = pd.concat([_renamed_clashes(frame, scores, source), scores], axis=1)
    summary = None
    if metrics:
        summary = _metrics(scorer, frame, served.target, source)

    def write(tmp: Path) -> None:
        if out_kind == "csv":
            result.to_csv(tmp, index=False)
        else:
            result.to_parquet(tmp, index=False)

    write_with(target, write)
    log.info("predict: %d rows scored by %s → %s", len(result), served.uri, target)
    return Scored(result, notes, served.uri, summary)


def _renamed_clashes(frame: pd.DataFrame, scores: pd.DataFrame, source: Path) -> pd.DataFrame:
    """Input columns named like a prediction column (a label column called "label") are kept
    as `input_<name>`, so no input value is lost or mistaken for a prediction."""
    clash = {c: f"input_{c}" for c in frame.columns if c in scores.columns}
    if clash:
        log.info(
            "predict %s: input column(s) %s kept as %s", source, list(clash), [*clash.values()]
        )
    return frame.rename(columns=clash)


def _metrics(
    scorer: OnnxScorer, frame: pd.DataFrame, label: str | None, source: Path
) -> dict[str, Any]:
    """Evaluate's metrics (evaluation/metrics.py) of the model on the labelled rows."""
    from neuroflow.evaluation.metrics import (
        classification_metrics,
        json_safe,
        regression_metrics,
    )
    from neuroflow.registry.promotion import predictions

    if label is None or label not in frame.columns:
        raise DataError(
            f"{source}: --metrics needs the label column {label!r} in the rows"
            if label
            else f"{source}: --metrics needs the label column, and the model does not name it"
        )
    if scorer.task not in ("binary", "multiclass", "regression", "forecast"):
        raise DataError(f"--metrics supports classification and regression, not {scorer.task}")
    labelled = frame[frame[label].notna()].reset_index(drop=True)
    if len(labelled) < len(frame):
        log.info(
            "predict --metrics: %d row(s) without a label left out", len(frame) - len(labelled)
        )
    if labelled.empty:
        raise DataError(f"{source}: no row has a value in the label column {label!r}")
    # The promotion gate's mapping of labels to the model's classes (one implementation).
    preds = predictions(scorer, labelled, label, scorer.classes)
    if preds.proba is not None:
        overall, _ = classification_metrics(preds.y, preds.proba, scorer.classes)
    else:
        assert preds.value is not None
        overall = regression_metrics(preds.y, np.asarray(preds.value))
    return {"rows": len(labelled), **json_safe(overall)}
