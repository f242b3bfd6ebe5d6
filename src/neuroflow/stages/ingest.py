"""ingest: configured source → seeded train/val/test Parquet splits + schema.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from neuroflow.config import SPLITS, Params, Paths
from neuroflow.data.sources import (
    RowLocator,
    SourceError,
    check_structure,
    load_bundled,
    name_rows,
    normalise_types,
    quote_cells,
    read_table,
    text_cells,
    text_in_numeric_columns,
)
from neuroflow.data.split import split_indices
from neuroflow.errors import DataError
from neuroflow.io import write_json, write_with

log = logging.getLogger(__name__)


def _input_file(root: Path, name: str | None) -> Path:
    """An input file's path, flagged if dvc.yaml's ingest stage does not depend on it.

    DVC hashes only a stage's deps: a file elsewhere can change under an "up to date" pipeline,
    and the model would silently keep training on the old data.
    """
    path = Path(name or "")
    path = path if path.is_absolute() else root / path
    deps, resolved = _ingest_deps(root), path.resolve()
    if deps is not None and not any(d == resolved or d in resolved.parents for d in deps):
        log.warning(
            "ingest: %s is not under any of the ingest stage's deps in dvc.yaml: `dvc repro` "
            "will not notice when it changes; keep inputs in data/external/ or list the file there",
            path,
        )
    return path


def _ingest_deps(root: Path) -> tuple[Path, ...] | None:
    """The ingest stage's deps in root/dvc.yaml, resolved; None when DVC does not run it."""
    dvc_yaml = root / "dvc.yaml"
    if not dvc_yaml.is_file():
        return None
    stage = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}).get("ingest") or {}
    return tuple((root / str(dep)).resolve() for dep in stage.get("deps", []))


def load_source(params: Params, root: Path) -> tuple[pd.DataFrame, str]:
    cfg = params.data
    if cfg.source == "sklearn":
        return load_bundled(cfg.name, cfg.target), f"sklearn:{cfg.name}"
    if cfg.source == "idx":
        from neuroflow.data.idx import load_idx

        path = _input_file(root, cfg.path)
        return load_idx(path, _input_file(root, cfg.labels_path), cfg.target)[0], str(path)
    if cfg.source == "series":
        from neuroflow.data.series import load_series, make_windows

        file = _input_file(root, cfg.path) if cfg.path else None
        series = load_series(cfg.name, file, cfg.value_column, cfg.csv_delimiter)
        windows = make_windows(series, cfg.window, cfg.target)
        # The time stamp labels plots; it is not a feature (see run()).
        return windows, str(file) if file else f"series:{cfg.name}"
    path = _input_file(root, cfg.path)
    return read_table(path, cfg.source, cfg.csv_delimiter), str(path)


def _normal_only(
    positions: dict[str, np.ndarray], target: pd.Series, normal: Any, origin: str
) -> dict[str, np.ndarray]:
    """Anomaly detection learns "normal" only: train and val keep the normal rows, test all."""
    labels = target.astype(str).to_numpy()
    if not (labels[positions["train"]] == str(normal)).any():
        seen = sorted({str(v) for v in target.iloc[positions["train"]].unique()})
        raise SourceError(
            f"{origin}: data.normal_class={normal!r} is not a label of {target.name!r} ({seen})"
        )
    keep = {
        name: rows[labels[rows] == str(normal)]
        for name, rows in positions.items()
        if name != "test"
    }
    return {**keep, "test": positions["test"]}


def _write_splits(frame: pd.DataFrame, positions: dict[str, np.ndarray], paths: Paths) -> None:
    """One split at a time: only the source and the split being written are ever in memory."""
    for name in SPLITS:
        part = frame.take(positions[name]).reset_index(drop=True)

        def write(tmp: Path, part: pd.DataFrame = part) -> None:
            part.to_parquet(tmp, index=False)

        write_with(paths.raw_split(name), write)
        del part, write  # the closure holds the split too


def _modality(params: Params, frame: pd.DataFrame, numeric: list[str]) -> dict[str, Any]:
    """What later stages need to read the features as images or sequences."""
    cfg = params.data
    if cfg.modality == "image":
        from neuroflow.features.image import infer_image_shape

        shape = infer_image_shape(numeric)
        if shape is None:
            raise SourceError(
                "data.modality=image needs pixel columns named pixel_<row>_<col> "
                f"(or pixel_<ch>_<row>_<col>) in order; got {numeric[:5]}…"
            )
        return {"modality": "image", "image_shape": shape}
    if cfg.modality == "sequence":
        from neuroflow.data.series import lag_columns

        if numeric != lag_columns(cfg.window):
            raise SourceError(
                f"data.modality=sequence needs lag columns {lag_columns(cfg.window)[:3]}…; "
                "use data.source=series"
            )
        return {"modality": "sequence", "window": cfg.window, "season": cfg.season}
    extra: dict[str, Any] = {"modality": "tabular"}
    if params.task == "anomaly":
        extra["normal_class"] = cfg.normal_class
    return extra


def _checked_target(
    params: Params, frame: pd.DataFrame, origin: str, locator: RowLocator
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The frame with a target every task can learn from, and the rows kept (None: all).

    Numbers for regression and forecasting, a value in every row (or the row dropped, with
    data.drop_missing_target), and at least two classes (or values, for regression) to tell
    apart.
    """
    cfg, task = params.data, params.task
    target = frame[cfg.target]
    if task in ("regression", "forecast"):
        bad = text_cells(target)[0] if not pd.api.types.is_numeric_dtype(target) else None
        if bad is not None and len(bad):
            positions = frame.index.get_indexer(bad.index).tolist()
            cells = quote_cells(locator, positions, bad.tolist())
            raise SourceError(
                f"{origin}, column {cfg.target!r}: task={task} needs a numeric target, but "
                f"{len(bad)} cell(s) are not numbers: {cells}. Fix these cells, or set task to "
                "binary or multiclass if these are labels"
            )
        target = pd.to_numeric(target, errors="coerce").astype("float64")  # blank text → NaN
        infinite = np.isinf(target.to_numpy())
        if infinite.any():
            positions = np.flatnonzero(infinite).tolist()
            raise SourceError(
                f"{origin}, column {cfg.target!r}: {len(positions)} target value(s) are infinite: "
                f"{quote_cells(locator, positions, target.iloc[positions].tolist())}"
            )
        frame[cfg.target] = target
    missing = target.isna().to_numpy()
    if not pd.api.types.is_numeric_dtype(target):  # a blank label is no label
        missing = missing | (target.astype(str).str.strip() == "").to_numpy()
    kept: np.ndarray | None = None
    if missing.any():
        positions = np.flatnonzero(missing).tolist()
        count = f"{len(positions)} of {len(frame)} rows ({name_rows(locator, positions)})"
        if not cfg.drop_missing_target:
            raise SourceError(
                f"{origin}: target column {cfg.target!r} is missing in {count}; fill or remove "
                "those rows, or set data.drop_missing_target: true to drop them at ingest"
            )
        log.warning(
            "ingest: dropped %s whose target %r is missing (data.drop_missing_target)",
            count,
            cfg.target,
        )
        kept = ~missing
        frame = frame[kept].reset_index(drop=True)
        if frame.empty:
            raise SourceError(f"{origin}: target column {cfg.target!r} is missing in every row")
    dropped = " after dropping the rows without one" if kept is not None else ""
    if task == "regression" and frame[cfg.target].nunique() < 2:
        raise SourceError(
            f"{origin}: target column {cfg.target!r} holds one value "
            f"({_python(frame[cfg.target].iloc[0])!r} in all {len(frame)} rows{dropped}); "
            "a regression needs a target that varies"
        )
    if params.is_classification:
        classes = frame[cfg.target].unique()
        if len(classes) < 2:
            only = _python(classes[0])
            raise SourceError(
                f"{origin}: target column {cfg.target!r} has a single class ({only!r} in all "
                f"{len(frame)} rows{dropped}); task={task} needs at least two"
            )
        if task == "binary" and len(classes) > 2:
            shown = sorted(str(c) for c in classes)[:10]
            raise SourceError(
                f"{origin}: task=binary needs two classes, but target column {cfg.target!r} has "
                f"{len(classes)} ({shown}); set task: multiclass"
            )
    return frame, kept


def _python(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def run(params: Params, paths: Paths) -> dict[str, Any]:
    cfg = params.data
    frame, origin = load_source(params, paths.root)
    check_structure(frame, origin=origin, target=cfg.target, max_rows=cfg.max_rows)
    unknown = [c for c in [*cfg.drop, *cfg.categorical] if c not in frame.columns]
    if unknown:
        raise SourceError(f"{origin}: data.drop/data.categorical name unknown column(s) {unknown}")
    # CSV rows are named by their line in the file; nothing else has lines.
    locator = RowLocator(Path(origin), cfg.csv_delimiter) if cfg.source == "csv" else RowLocator()
    if cfg.source in ("csv", "parquet"):
        skip = [cfg.target, *cfg.categorical, *cfg.drop]
        text_in_numeric_columns(frame, origin=origin, locator=locator, skip=skip)
    frame = frame.drop(columns=cfg.drop)
    times = frame.pop("time").astype(str).tolist() if cfg.source == "series" else []
    frame, numeric, categorical = normalise_types(
        frame, target=cfg.target, categorical=cfg.categorical
    )
    frame, kept = _checked_target(params, frame, origin, locator)
    if kept is not None and times:
        times = [t for t, keep in zip(times, kept, strict=True) if keep]

    if params.task == "forecast":
        from neuroflow.data.series import chronological_indices

        positions = chronological_indices(
            len(frame), val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction
        )
    else:
        try:
            positions = split_indices(
                frame[cfg.target],
                stratify=params.is_classification or params.task == "anomaly",
                val_fraction=cfg.val_fraction,
                test_fraction=cfg.test_fraction,
                seed=params.seed,
                bins=cfg.regression_bins if params.task == "regression" else 0,
            )
        except DataError as exc:
            raise SourceError(f"{origin}: {exc}") from exc
    if params.task == "anomaly":
        positions = _normal_only(positions, frame[cfg.target], cfg.normal_class, origin)
    _write_splits(frame, positions, paths)

    classes: list[Any] = []
    if params.is_classification:
        train_labels = frame[cfg.target].iloc[positions["train"]]
        classes = sorted(_python(v) for v in train_labels.unique())
    elif params.task == "anomaly":
        classes = sorted(_python(v) for v in frame[cfg.target].unique())
    schema = {
        "source": origin,
        "task": params.task,
        "target": cfg.target,
        "numeric": numeric,
        "categorical": categorical,
        "columns": {c: str(t) for c, t in frame.dtypes.items()},
        "classes": classes,
        "rows": {name: len(positions[name]) for name in SPLITS},
        **_modality(params, frame, numeric),
    }
    if params.task == "forecast":
        schema["time"] = {name: [times[i] for i in positions[name]] for name in SPLITS}
    write_json(paths.schema, schema)
    log.info("ingest: %s → %s rows %s", origin, paths.raw_dir, schema["rows"])
    return schema
