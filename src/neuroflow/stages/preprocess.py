"""preprocess: fit the feature pipeline on train, apply it to every split, save tensors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuroflow.config import SPLITS, Params, Paths
from neuroflow.errors import DataError
from neuroflow.features.transform import PreprocessOptions, fit_preprocessor
from neuroflow.io import read_json, write_json, write_with

log = logging.getLogger(__name__)


def encode_target(values: pd.Series, classes: list[Any], split: str) -> np.ndarray:
    """Class labels → indices into `classes` (from train); an unknown label is a data error."""
    mapped = pd.Index(classes).get_indexer(values)  # vectorised lookup, -1 where unknown
    unknown = values[mapped < 0]
    if len(unknown):
        raise DataError(
            f"split {split!r}: label(s) {sorted(map(str, unknown.unique()))[:5]} "
            f"not seen in train (classes {classes})"
        )
    return mapped.astype(np.int64)


def run(params: Params, paths: Paths) -> dict[str, Any]:
    from safetensors.numpy import save_file

    from neuroflow.data.sources import read_parquet

    schema = read_json(paths.schema)
    target = schema["target"]
    cfg = params.preprocess
    options = PreprocessOptions(
        impute_numeric=cfg.impute_numeric,
        scale=cfg.scale,
        select=cfg.select,
        k=cfg.k,
        variance_threshold=cfg.variance_threshold,
        pca=cfg.pca,
        max_categories=cfg.max_categories,
        seed=params.seed,
    )
    # One split in memory at a time: train to fit and transform, then val, then test.
    train = read_parquet(paths.raw_split("train"))
    modality = schema.get("modality", "tabular")
    if modality == "image":
        from neuroflow.features.image import fit_image_preprocessor

        pre = fit_image_preprocessor(
            train.drop(columns=[target]), train[target], schema["numeric"], options, cfg.image_scale
        )
    elif modality == "sequence":
        from neuroflow.features.sequence import fit_sequence_preprocessor

        pre = fit_sequence_preprocessor(
            train.drop(columns=[target]), train[target], schema["numeric"], options
        )
    else:
        pre = fit_preprocessor(
            train.drop(columns=[target]),
            train[target],
            numeric=schema["numeric"],
            categorical=schema["categorical"],
            options=options,
            classification=params.is_classification,
        )
    loaded = {"train": train}  # transformed first, then let go
    del train
    for split in SPLITS:
        frame = loaded.pop(split, None)
        if frame is None:
            frame = read_parquet(paths.raw_split(split))
        x = pre.transform(frame)
        if params.is_classification:
            y = encode_target(frame[target], schema["classes"], split)
        elif params.task == "anomaly":  # 1 = anomaly (not the normal label)
            normal = str(schema["normal_class"])
            y = (frame[target].astype(str) != normal).to_numpy(dtype=np.float32)
        else:
            y = frame[target].to_numpy(dtype=np.float32)
        tensors = {"x": np.ascontiguousarray(x), "y": np.ascontiguousarray(y)}
        if modality == "image" and split == "train" and cfg.augment_copies > 0:
            from neuroflow.features.image import augment_shifts

            ax, ay = augment_shifts(
                x, y, schema["image_shape"], cfg.augment_copies, cfg.augment_shift, params.seed
            )
            tensors = {"x": np.ascontiguousarray(ax), "y": np.ascontiguousarray(ay)}
        if modality == "sequence":  # the seasonal-naive baseline, for evaluation
            from neuroflow.features.sequence import seasonal_naive

            naive = seasonal_naive(frame, int(schema["season"])).astype(np.float32)
            tensors["naive"] = np.ascontiguousarray(naive)

        def write(tmp: Path, t: dict[str, np.ndarray] = tensors) -> None:
            save_file(t, str(tmp))

        write_with(paths.processed_split(split), write)
        del frame, x, y, tensors, write  # before the next split is read
    write_json(paths.preprocessor, pre.to_json())
    log.info(
        "preprocess: %d raw columns → %d features (%s)",
        len(pre.input_columns),
        pre.output_dim,
        ", ".join(pre.feature_names[:5]) + ("…" if pre.output_dim > 5 else ""),
    )
    return {"features": pre.feature_names}
