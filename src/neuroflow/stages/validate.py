"""validate: run the expectation suite on every split; any failure stops the pipeline."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from neuroflow.config import SPLITS, Params, Paths
from neuroflow.errors import DataError
from neuroflow.io import write_json

log = logging.getLogger(__name__)


class ValidationFailedError(DataError):
    """At least one expectation failed or raised; the message lists them."""


def run(params: Params, paths: Paths) -> dict[str, Any]:
    from neuroflow.validation.runner import run_suite
    from neuroflow.validation.suite import load_suite

    suite_path = paths.root / params.validate_.suite
    if not suite_path.is_file():
        raise DataError(
            f"{suite_path}: expectation suite not found; propose one with "
            "`neuroflow profile`, review it, and commit it"
        )
    frames = {split: pd.read_parquet(paths.raw_split(split)) for split in SPLITS}
    report = run_suite(frames, load_suite(suite_path), paths.data_docs)
    summary = {
        **report.to_json(),
        "suite": params.validate_.suite,
        "data": str(paths.raw_dir.relative_to(paths.root)),
    }
    # The summary is written even on failure: it is what a person or a scheduler reads next.
    write_json(paths.validation_summary, summary)
    if not report.success:
        raise ValidationFailedError(
            report.describe_failures(str(paths.raw_dir.relative_to(paths.root)))
        )
    log.info("validate: every split passed %s", params.validate_.suite)
    return summary
