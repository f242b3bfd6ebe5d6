"""`neuroflow predict`: raw rows from a CSV/Parquet file → the same rows plus predictions."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from neuroflow.data.sources import read_table
from neuroflow.errors import DataError
from neuroflow.io import write_with

log = logging.getLogger(__name__)

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _format(path: Path) -> str:
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    return kind


def predict_file(root: Path, name: str, alias: str, source: Path, target: Path) -> pd.DataFrame:
    from neuroflow.serving.app import load_served_model

    in_kind, out_kind = _format(source), _format(target)
    frame = read_table(source, in_kind)
    served = load_served_model(root, name, alias)
    scores = served.scorer.output_frame(served.scorer.predict_frame(frame))
    clash = [c for c in scores.columns if c in frame.columns]
    if clash:
        raise DataError(f"{source}: already has column(s) {clash} that predictions would overwrite")
    result = pd.concat([frame.reset_index(drop=True), scores], axis=1)

    def write(tmp: Path) -> None:
        if out_kind == "csv":
            result.to_csv(tmp, index=False)
        else:
            result.to_parquet(tmp, index=False)

    write_with(target, write)
    log.info("predict: %d rows scored by %s → %s", len(result), served.uri, target)
    return result
