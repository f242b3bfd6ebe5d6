"""validate: expectation suite, duplicate check and drift on every split; any failure stops here.

Also `validate_batch`: the same gate for a later batch (a file of new rows) against the train
split of the last ingest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from neuroflow.config import SPLITS, Params, Paths
from neuroflow.errors import DataError
from neuroflow.io import read_json, write_json, write_text

if TYPE_CHECKING:
    from neuroflow.validation.drift import DriftConfig, DriftReport
    from neuroflow.validation.runner import ExpectationFailure, ValidationReport

log = logging.getLogger(__name__)

DUPLICATE_RULE = "neuroflow_max_duplicate_fraction"
DUPLICATES_ALWAYS_ALLOWED = 2


class ValidationFailedError(DataError):
    """At least one expectation failed or raised, or a split drifted; the message lists them."""


def drift_config(params: Params) -> DriftConfig:
    return params.validate_.drift


def max_duplicate_fraction(params: Params) -> float:
    return params.validate_.max_duplicate_fraction


def duplicate_failures(
    frames: Mapping[str, pd.DataFrame], max_fraction: float
) -> list[ExpectationFailure]:
    """Fully duplicated rows beyond `max_fraction` of a split (a re-sent batch, a bad join).

    A table-level check here rather than a GE expectation: GE's compound-uniqueness rule fails
    on a single repeat and is slow; a few honest repeats are normal in tabular data.
    """
    from neuroflow.validation.runner import MAX_EXAMPLES, ExpectationFailure, json_safe

    failures = []
    for split, frame in frames.items():
        if frame.empty:
            continue
        dup = duplicated_rows(frame)
        fraction = float(dup.mean())
        # In a 20-row split one repeat is already 5 %: a couple are always tolerated.
        if int(dup.sum()) > max(max_fraction * len(frame), DUPLICATES_ALWAYS_ALLOWED):
            examples = frame[dup].head(MAX_EXAMPLES).to_dict(orient="records")
            failures.append(
                ExpectationFailure(
                    split=split,
                    column=None,
                    expectation=DUPLICATE_RULE,
                    kwargs={"max_fraction": max_fraction},
                    unexpected_count=int(dup.sum()),
                    examples=json_safe(examples),
                    raised=None,
                    observed=round(fraction, 4),
                )
            )
    return failures


def duplicated_rows(frame: pd.DataFrame) -> np.ndarray:
    """``frame.duplicated(keep="first")`` as a bool array, without its memory cost.

    pandas factorises every column into its own int64 codes at once (8 bytes a cell: twice a
    float32 table); here each row is hashed to one uint64 first and only rows whose hash
    repeats are compared exactly. Equal rows hash equal (pandas maps ±0 and every NaN to one
    value), so no duplicate is missed and a hash collision only costs an exact comparison.
    """
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    candidates = np.flatnonzero(pd.Series(hashes).duplicated(keep=False).to_numpy())
    dup = np.zeros(len(frame), dtype=bool)
    if candidates.size:
        dup[candidates] = frame.iloc[candidates].duplicated(keep="first").to_numpy()
    return dup


def _with_type_examples(
    failure: ExpectationFailure, frames: Mapping[str, pd.DataFrame]
) -> ExpectationFailure:
    """A numeric column that arrived as text: name the values that are not numbers.

    GE's type rule reports only the dtype it saw; the person fixing the file needs the rows.
    """
    from dataclasses import replace

    from neuroflow.validation.runner import MAX_EXAMPLES, json_safe

    wanted = [str(t).lower() for t in failure.kwargs.get("type_list") or []]
    if (
        failure.expectation != "expect_column_values_to_be_in_type_list"
        or failure.examples
        or not any(t.startswith(("float", "int", "uint")) for t in wanted)
    ):
        return failure
    frame = frames.get(failure.split)  # only now: `frames` may read the split from disk
    if frame is None or failure.column not in frame.columns:
        return failure
    values = frame[failure.column]
    bad = values[values.notna() & pd.to_numeric(values, errors="coerce").isna()]
    if bad.empty:
        return failure
    examples = json_safe(bad.head(MAX_EXAMPLES).tolist())
    return replace(failure, unexpected_count=len(bad), examples=examples)


def check_frames(
    frames: Mapping[str, pd.DataFrame],
    reference: pd.DataFrame,
    schema: dict[str, Any],
    suite: dict[str, Any],
    params: Params,
    docs_dir: Path | None,
) -> tuple[ValidationReport, DriftReport | None]:
    """Suite + duplicates on `frames`; drift of every frame but train against `reference`."""
    from dataclasses import replace

    from neuroflow.validation.drift import compute_drift
    from neuroflow.validation.runner import run_suite

    report = run_suite(frames, suite, docs_dir)
    report = replace(report, failures=[_with_type_examples(f, frames) for f in report.failures])
    dups = duplicate_failures(frames, max_duplicate_fraction(params))
    if dups:
        splits = {name: dict(info) for name, info in report.splits.items()}
        for failure in dups:
            splits[failure.split]["success"] = False
            splits[failure.split]["failed"] += 1
        report = replace(report, success=False, splits=splits, failures=[*report.failures, *dups])
    cfg = drift_config(params)
    drift = None
    if cfg.enabled:
        target = schema["target"]
        numeric = list(schema["numeric"])
        categorical = list(schema["categorical"])
        if params.is_classification:
            categorical.append(target)
        elif params.task != "anomaly":  # anomaly: train holds the normal class only, by design
            numeric.append(target)
        skip = {"train"}
        if params.task == "anomaly":
            skip.add("test")  # test carries the anomalies train never saw: drift by design
        current = _Only(frames, [name for name in frames if name not in skip])
        drift = compute_drift(
            reference, current, numeric=numeric, categorical=categorical, config=cfg
        )
    return report, drift


class _Only(Mapping[str, pd.DataFrame]):
    """Some of the splits of another mapping, read through it (nothing is loaded here)."""

    def __init__(self, frames: Mapping[str, pd.DataFrame], names: list[str]) -> None:
        self._frames, self._names = frames, names

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._names:
            raise KeyError(name)
        return self._frames[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _SplitFiles(Mapping[str, pd.DataFrame]):
    """The raw splits, read when asked for; train, the drift reference, is read once and kept.

    The checks go over the splits three times (suite, duplicates, drift). Reading val and test
    again each time costs seconds at 10⁷ rows; holding every split at once would cost their
    memory beside train's. Each split is read in the dtypes Great Expectations evaluates
    fastest (`gx_dtypes`), one column at a time, so the narrow copy never sits beside the
    whole wide one; the values, and so every check, are the same.
    """

    def __init__(self, paths: Paths, suite: dict[str, Any]) -> None:
        self._paths, self._suite = paths, suite
        self._train: pd.DataFrame | None = None

    def __getitem__(self, split: str) -> pd.DataFrame:
        from neuroflow.data.sources import read_parquet
        from neuroflow.validation.runner import gx_dtypes

        if split not in SPLITS:
            raise KeyError(split)
        if split == "train" and self._train is not None:
            return self._train
        frame = read_parquet(self._paths.raw_split(split))
        for column, dtype in gx_dtypes(frame, self._suite).items():
            frame[column] = frame[column].astype(dtype)
        if split == "train":
            self._train = frame
        return frame

    def __iter__(self) -> Iterator[str]:
        return iter(SPLITS)

    def __len__(self) -> int:
        return len(SPLITS)


def _summary(report: ValidationReport, drift: DriftReport | None, **extra: Any) -> dict[str, Any]:
    drift_failed = drift is not None and bool(drift.drifted)
    return {
        **report.to_json(),
        "drift": None if drift is None else drift.to_json(),
        "drift_failed": drift_failed,
        **extra,
    }


def fails_on_drift(params: Params) -> bool:
    """Forecast splits are later in time, so a trending level "drifts" by design: report only."""
    return drift_config(params).fail and params.task != "forecast"


def _raise_if_failed(
    report: ValidationReport, drift: DriftReport | None, source: str, fail_on_drift: bool
) -> None:
    lines = [report.describe_failures(source)] if not report.success else []
    if drift is not None and drift.drifted:
        message = drift.describe(source)
        if fail_on_drift:
            lines.append(message)
        else:
            log.warning("%s", message)
    if lines:
        raise ValidationFailedError("\n".join(lines))


def run(params: Params, paths: Paths) -> dict[str, Any]:
    from neuroflow.validation.drift import render_html
    from neuroflow.validation.suite import load_suite

    suite_path = paths.root / params.validate_.suite
    if not suite_path.is_file():
        raise DataError(
            f"{suite_path}: expectation suite not found; propose one with "
            "`neuroflow profile`, review it, and commit it"
        )
    schema = read_json(paths.schema)
    source = str(paths.raw_dir.relative_to(paths.root))
    suite = load_suite(suite_path)
    frames = _SplitFiles(paths, suite)
    report, drift = check_frames(frames, frames["train"], schema, suite, params, paths.data_docs)
    cfg = drift_config(params)
    if drift is not None:
        write_text(paths.data_docs / "drift.html", render_html(drift, source=source, config=cfg))
    summary = _summary(report, drift, suite=params.validate_.suite, data=source)
    # The summary is written even on failure: it is what a person or a scheduler reads next.
    write_json(paths.validation_summary, summary)
    _raise_if_failed(report, drift, source, fails_on_drift(params))
    log.info("validate: every split passed %s (drift report: drift.html)", params.validate_.suite)
    return summary


def batch_summary_path(paths: Paths, batch: Path) -> Path:
    return paths.validation_dir / "batches" / f"{batch.name}.summary.json"


def validate_batch(params: Params, paths: Paths, batch: Path) -> dict[str, Any]:
    """Check a later batch (CSV or Parquet) with the suite, duplicates and drift against train.

    The batch gets the column types ingest gave the training data; the summary is written to
    data/validated/batches/<file>.summary.json, pass or fail.
    """
    from neuroflow.data.sources import normalise_types, read_parquet, read_table
    from neuroflow.validation.suite import load_suite, without_column

    train_path = paths.raw_split("train")
    if not train_path.is_file() or not paths.schema.is_file():
        raise DataError(f"{train_path} not found: run `dvc repro validate` before checking a batch")
    suffix = batch.suffix.lower()
    kind = "parquet" if suffix in (".parquet", ".pq") else "csv"
    frame = read_table(batch, kind, params.data.csv_delimiter)
    schema = read_json(paths.schema)
    frame = frame.drop(columns=[c for c in params.data.drop if c in frame.columns])
    # The batch's own numeric-looking columns stay numeric; schema categoricals stay strings.
    frame, _, _ = normalise_types(
        frame,
        target=schema["target"],
        categorical=[c for c in schema["categorical"] if c in frame.columns],
    )
    suite = load_suite(paths.root / params.validate_.suite)
    if schema["target"] not in frame.columns:  # rows to score: no label yet
        log.info("validate: %s has no %r column; checking the features", batch, schema["target"])
        suite = without_column(suite, schema["target"])
    report, drift = check_frames(
        {batch.name: frame}, read_parquet(train_path), schema, suite, params, None
    )
    summary = _summary(report, drift, suite=params.validate_.suite, data=str(batch))
    write_json(batch_summary_path(paths, batch), summary)
    _raise_if_failed(report, drift, str(batch), fails_on_drift(params))
    log.info("validate: batch %s passed the suite and the drift check", batch)
    return summary
