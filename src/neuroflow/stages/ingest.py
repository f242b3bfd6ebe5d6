"""ingest: configured source → seeded train/val/test Parquet splits + schema.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from neuroflow.config import SPLITS, Params, Paths
from neuroflow.data.sources import (
    SourceError,
    check_structure,
    load_bundled,
    normalise_types,
    read_table,
)
from neuroflow.data.split import split_frame
from neuroflow.io import write_json, write_with

log = logging.getLogger(__name__)


def load_source(params: Params, root: Path) -> tuple[pd.DataFrame, str]:
    cfg = params.data
    if cfg.source == "sklearn":
        return load_bundled(cfg.name, cfg.target), f"sklearn:{cfg.name}"
    path = Path(cfg.path or "")
    path = path if path.is_absolute() else root / path
    return read_table(path, cfg.source, cfg.csv_delimiter), str(path)


def _python(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def run(params: Params, paths: Paths) -> dict[str, Any]:
    cfg = params.data
    frame, origin = load_source(params, paths.root)
    check_structure(frame, origin=origin, target=cfg.target, max_rows=cfg.max_rows)
    unknown = [c for c in [*cfg.drop, *cfg.categorical] if c not in frame.columns]
    if unknown:
        raise SourceError(f"{origin}: data.drop/data.categorical name unknown column(s) {unknown}")
    frame = frame.drop(columns=cfg.drop)
    frame, numeric, categorical = normalise_types(
        frame, target=cfg.target, categorical=cfg.categorical
    )
    if params.task == "regression":
        frame[cfg.target] = pd.to_numeric(frame[cfg.target], errors="coerce").astype("float64")
    elif frame[cfg.target].isna().any():
        rows = frame.index[frame[cfg.target].isna()].tolist()[:5]
        raise SourceError(f"{origin}: target column {cfg.target!r} has missing labels, rows {rows}")

    splits = split_frame(
        frame,
        target=cfg.target,
        stratify=params.is_classification,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=params.seed,
    )
    for name in SPLITS:
        part = splits[name]

        def write(tmp: Path, part: pd.DataFrame = part) -> None:
            part.to_parquet(tmp, index=False)

        write_with(paths.raw_split(name), write)

    classes: list[Any] = []
    if params.is_classification:
        classes = sorted(_python(v) for v in splits["train"][cfg.target].unique())
    schema = {
        "source": origin,
        "task": params.task,
        "target": cfg.target,
        "numeric": numeric,
        "categorical": categorical,
        "columns": {c: str(t) for c, t in frame.dtypes.items()},
        "classes": classes,
        "rows": {name: len(splits[name]) for name in SPLITS},
    }
    write_json(paths.schema, schema)
    log.info("ingest: %s → %s rows %s", origin, paths.raw_dir, schema["rows"])
    return schema
