"""Run a Great Expectations 1.x suite on every split; summarise failures; build Data Docs.

One ephemeral Data Context per call (in-memory stores, nothing written to disk) and one suite
object shared by all splits. Each split is a dataframe asset of one pandas data source with a
whole-dataframe batch definition, validated by a ``ValidationDefinition``; its result lands in the
in-memory validation-results store, from which Data Docs are rendered when ``docs_dir`` is given.

Great Expectations is imported lazily (it takes seconds) and only after
``GX_ANALYTICS_ENABLED=False`` is set; the context config also turns analytics and progress bars
off, so nothing tries to reach the network.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from neuroflow.validation import gx_tuning
from neuroflow.validation.suite import SuiteFormatError, check_suite_shape

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5
"""How many offending values a failure keeps (GE's partial_unexpected_list, truncated)."""

_DATASOURCE = "neuroflow"
_DOCS_SITE = "neuroflow"
# BASIC already carries unexpected_count and partial_unexpected_list (the examples); SUMMARY
# adds value counts and row indices for every column-map expectation and costs ~30 % more time.
_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "BASIC",
    "partial_unexpected_count": MAX_EXAMPLES,
}
_RENDER_LIST_LIMIT = 8  # list items shown per list in describe_failures
_TYPE_RULES = {
    "expect_column_values_to_be_in_type_list": "type_list",
    "expect_column_values_to_be_of_type": "type_",
}


@dataclass(frozen=True)
class ExpectationFailure:
    """One expectation that failed (or raised) on one split."""

    split: str
    column: str | None  # None for table-level expectations
    expectation: str
    kwargs: dict[str, Any]  # the expectation's kwargs minus column (and GE's batch_id)
    unexpected_count: int | None
    examples: list[Any]  # up to MAX_EXAMPLES offending values, JSON-safe
    raised: str | None  # exception message if the expectation raised instead of evaluating
    observed: Any = None  # for aggregate expectations: GE's observed value (JSON-safe)

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "column": self.column,
            "expectation": self.expectation,
            "kwargs": json_safe(self.kwargs),
            "unexpected_count": self.unexpected_count,
            "examples": json_safe(self.examples),
            "raised": self.raised,
            "observed": json_safe(self.observed),
        }

    def describe(self, source: str) -> str:
        where = f"column {self.column!r}" if self.column is not None else "table"
        args = ", ".join(f"{key}={_render(value)}" for key, value in self.kwargs.items())
        return (
            f"validate failed for {source}: split {self.split!r}, {where}: "
            f"{self.expectation}({args}) — {self._detail()}"
        )

    def _detail(self) -> str:
        parts: list[str] = []
        if self.raised is not None:
            parts.append("raised: " + " ".join(self.raised.split()))  # keep it to one line
        if self.unexpected_count is not None:
            text = f"{self.unexpected_count} unexpected"
            if self.examples:
                text += f", e.g. {_render(self.examples)}"
            parts.append(text)
        elif isinstance(self.observed, dict) and {"missing", "unexpected"} & self.observed.keys():
            for key in ("missing", "unexpected"):
                if self.observed.get(key):
                    parts.append(f"{key} columns {_render(self.observed[key])}")
        elif self.observed is not None:
            parts.append(f"observed {_render(self.observed)}")
        return "; ".join(parts) or "failed"


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of one run_suite call over all splits."""

    success: bool
    splits: dict[str, dict[str, Any]]  # split -> {"success", "evaluated", "failed", "rows"}
    failures: list[ExpectationFailure]

    def to_json(self) -> dict[str, Any]:
        """Machine-readable summary: plain JSON (no numpy types, no NaN)."""
        return {
            "success": bool(self.success),
            "splits": json_safe(self.splits),
            "failures": [failure.to_json() for failure in self.failures],
        }

    def describe_failures(self, source: str) -> str:
        """One human-readable line per failure naming `source`; empty string if none failed.

        Knock-on failures are counted, not listed: every rule on a column the column-set rule
        found missing, and rules that raised on a column whose type rule failed (GE cannot
        compare a string column with numeric bounds). The summary JSON keeps every failure.
        """
        shown = primary_failures(self.failures)
        lines = [failure.describe(source) for failure in shown]
        if len(shown) < len(self.failures):
            lines.append(
                f"validate: {len(self.failures) - len(shown)} more failure(s) on those missing or "
                "mistyped columns follow from the ones above (all are in the summary JSON)"
            )
        return "\n".join(lines)


def primary_failures(failures: list[ExpectationFailure]) -> list[ExpectationFailure]:
    """The failures minus those that only follow from another on the same split."""
    missing: set[tuple[str, str]] = set()
    mistyped: set[tuple[str, str]] = set()
    for failure in failures:
        if isinstance(failure.observed, dict):
            missing |= {(failure.split, c) for c in failure.observed.get("missing") or []}
        if failure.expectation in _TYPE_RULES and failure.raised is None and failure.column:
            mistyped.add((failure.split, failure.column))

    def knock_on(failure: ExpectationFailure) -> bool:
        key = (failure.split, failure.column or "")
        return key in missing or (failure.raised is not None and key in mistyped)

    return [failure for failure in failures if failure.column is None or not knock_on(failure)]


def run_suite(
    frames: Mapping[str, pd.DataFrame],
    suite: dict[str, Any],
    docs_dir: Path | None,
) -> ValidationReport:
    """Validate every split against the suite; if docs_dir is given, build GE Data Docs HTML there.

    ``docs_dir`` ends up holding only this run's site (``index.html`` linking the suite and one
    validation-result page per split): the site is built beside it and swapped in. An existing
    ``docs_dir`` is replaced only if it is empty or looks like a Data Docs site (has index.html).
    """
    check_suite_shape(suite)
    if not frames:
        raise ValueError("run_suite needs at least one split")
    for split, frame in frames.items():
        if not isinstance(split, str) or not split:
            raise ValueError(f"split names must be non-empty strings, got {split!r}")
        if not hasattr(frame, "columns") or not hasattr(frame, "iloc"):
            raise TypeError(f"split {split!r}: expected a pandas DataFrame, got {type(frame)}")
    if docs_dir is not None:
        docs_dir = Path(docs_dir)
        _check_replaceable(docs_dir)

    started = time.perf_counter()
    gx = import_gx()
    from great_expectations.core.run_identifier import RunIdentifier

    staging = _make_staging_dir(docs_dir) if docs_dir is not None else None
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(gx_tuning.tuned())
        context = _make_context(gx, staging)
        gx_suite = context.suites.add(build_gx_suite(suite))
        # GE reports expectations that raised first; report failures in suite order instead.
        order = {exp.id: index for index, exp in enumerate(gx_suite.expectations)}
        if None in order or len(order) != len(suite["expectations"]):
            log.warning("validate: GE did not give each expectation an id; using GE's kwargs")
            order = {}
        datasource = context.data_sources.add_pandas(name=_DATASOURCE)
        run_time = datetime.now(UTC)
        splits: dict[str, dict[str, Any]] = {}
        failures: list[ExpectationFailure] = []
        for split, frame in frames.items():
            split_started = time.perf_counter()
            asset = datasource.add_dataframe_asset(name=split)
            batch_definition = asset.add_batch_definition_whole_dataframe(split)
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=split, data=batch_definition, suite=gx_suite)
            )
            result = definition.run(
                batch_parameters={"dataframe": widen_for_gx(frame, suite)},
                result_format=_RESULT_FORMAT,
                # The run name shows in Data Docs' index: name each run after its split.
                run_id=RunIdentifier(run_name=split, run_time=run_time),
            )
            _release_batches(datasource)
            split_failures = []
            for item in sorted(result.results, key=lambda r: order.get(r.expectation_config.id, 0)):
                if _is_failure(item):
                    index = order.get(item.expectation_config.id)
                    written = None if index is None else suite["expectations"][index]["kwargs"]
                    split_failures.append(_failure(split, item, written))
            failures.extend(split_failures)
            evaluated = int(result.statistics.get("evaluated_expectations", len(result.results)))
            splits[split] = {
                "success": bool(result.success) and not split_failures,
                "evaluated": evaluated,
                "failed": len(split_failures),
                "rows": len(frame),
            }
            log.info(
                "validate: split %r: %d rows, %d expectations, %d failed (%.2f s)",
                split,
                len(frame),
                evaluated,
                len(split_failures),
                time.perf_counter() - split_started,
            )
        if staging is not None and docs_dir is not None:
            docs_started = time.perf_counter()
            context.build_data_docs(site_names=[_DOCS_SITE])
            _install_docs(staging, docs_dir)
            log.info(
                "validate: Data Docs at %s (%.2f s)",
                docs_dir / "index.html",
                time.perf_counter() - docs_started,
            )
    finally:
        stack.close()
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)

    report = ValidationReport(
        success=all(info["success"] for info in splits.values()),
        splits=splits,
        failures=failures,
    )
    log.info(
        "validate: %s on %d split(s), %d failure(s) (%.2f s)",
        "passed" if report.success else "FAILED",
        len(splits),
        len(failures),
        time.perf_counter() - started,
    )
    return report


# --- Great Expectations plumbing -----------------------------------------------------------


def import_gx() -> ModuleType:
    """Import great_expectations with analytics off (the env var must be set before import)."""
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    import great_expectations as gx

    return gx


def _release_batches(datasource: Any) -> None:
    """Let go of the split just validated: its frame and every metric GE computed on it.

    The data source's execution engine caches each batch and each resolved metric (a boolean
    per row for every column rule) for the engine's lifetime, that is for every split of the
    run: at 10⁷ rows that held all splits' frames and masks at once.
    """
    engine = datasource.get_execution_engine()
    engine.batch_manager.batch_data_cache.clear()
    engine.batch_manager.reset_batch_cache()
    cache = getattr(engine, "_metric_cache", None)
    if isinstance(cache, dict):
        cache.clear()


def widen_for_gx(frame: pd.DataFrame, suite: dict[str, Any]) -> pd.DataFrame:
    """`frame` with the columns `gx_dtypes` names widened (only those are copied)."""
    wide = gx_dtypes(frame, suite)
    return frame.astype(wide) if wide else frame


def gx_dtypes(frame: pd.DataFrame, suite: dict[str, Any]) -> dict[Any, np.dtype]:
    """Narrow numpy numeric columns of `frame` → the int64/float64 dtype GE should see them in.

    GE checks value ranges with vectorised pandas only for int64/float64 columns and calls a
    Python function per row for any other dtype (float32: ~100× slower). Widening is exact, so
    every value rule gives the same verdict; a column keeps its dtype when a type rule on it
    does not accept both the narrow and the wide dtype by name (its verdict or its message
    could change).
    """
    allowed: dict[Any, list[Any]] = {}
    for exp in suite["expectations"]:
        key = _TYPE_RULES.get(exp["type"])
        if key is not None:
            value = exp["kwargs"].get(key)
            names = None if value is None else [value] if isinstance(value, str) else value
            allowed.setdefault(exp["kwargs"].get("column"), []).append(names)
    wide: dict[Any, np.dtype] = {}
    for column, dtype in frame.dtypes.items():
        if not isinstance(dtype, np.dtype) or dtype.kind not in "iuf" or dtype.itemsize >= 8:
            continue
        target = np.dtype(np.float64 if dtype.kind == "f" else np.int64)
        if all(
            names is None or (dtype.name in names and target.name in names)
            for names in allowed.get(column, [])
        ):
            wide[column] = target
    return wide


def _make_context(gx: ModuleType, docs_base: Path | None) -> Any:
    """An ephemeral context: in-memory stores, plus a filesystem Data Docs site if asked."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites: dict[str, Any] = {}
    if docs_base is not None:
        sites[_DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_base),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def build_gx_suite(suite: dict[str, Any]) -> Any:
    """A GE ExpectationSuite from the JSON dict, refusing (not skipping) invalid expectations.

    ``ExpectationSuite(expectations=[...dicts])`` logs and *drops* an expectation it cannot
    build (unknown type, bad kwargs), which would silently weaken the gate; so each one is
    built here first and any error is raised.
    """
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    name = suite["name"]
    expectations = []
    for index, raw in enumerate(suite["expectations"]):
        # Ids belong to a stored suite; GE refuses expectations that already carry one.
        fields = {
            k: copy.deepcopy(v) for k, v in raw.items() if k not in ("id", "rendered_content")
        }
        try:
            expectations.append(ExpectationConfiguration(**fields).to_domain_obj())
        except Exception as exc:
            raise SuiteFormatError(
                f"suite {name!r}: expectations[{index}] ({raw.get('type')}) is not valid: {exc}"
            ) from exc
    return ExpectationSuite(
        name=name,
        expectations=expectations,
        suite_parameters=copy.deepcopy(suite.get("suite_parameters")),
        meta=copy.deepcopy(suite.get("meta")),
        notes=suite.get("notes"),
    )


def _is_failure(item: Any) -> bool:
    return not item.success or _raised_message(item.exception_info) is not None


def _failure(split: str, item: Any, written: dict[str, Any] | None) -> ExpectationFailure:
    """An ExpectationFailure from one GE ExpectationValidationResult.

    `written` is the expectation's kwargs as the suite file has them: GE's own copy drops kwargs
    equal to their defaults (e.g. ``exact_match=True``), so the file's are reported when known,
    in GE's order (min_value before max_value; the file's keys are sorted).
    """
    config = item.expectation_config
    raw_kwargs = dict(config.kwargs)
    if written is not None:
        raw_kwargs = {key: written.get(key, value) for key, value in raw_kwargs.items()}
        raw_kwargs.update({key: value for key, value in written.items() if key not in raw_kwargs})
    column = raw_kwargs.get("column")
    kwargs = {k: v for k, v in raw_kwargs.items() if k not in ("column", "batch_id")}
    result: dict[str, Any] = dict(item.result or {})
    count = result.get("unexpected_count")
    examples = list(result.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]
    details = result.get("details")
    mismatched = details.get("mismatched") if isinstance(details, dict) else None
    observed = mismatched if isinstance(mismatched, dict) else result.get("observed_value")
    return ExpectationFailure(
        split=split,
        column=None if column is None else str(column),
        expectation=str(config.type),
        kwargs=json_safe(kwargs),
        unexpected_count=None if count is None else int(count),
        examples=json_safe(examples),
        raised=_raised_message(item.exception_info),
        observed=json_safe(observed),
    )


def _raised_message(info: Any) -> str | None:
    """The exception message(s) of an expectation that raised, else None.

    GE 1.x puts either one ``{"raised_exception": ..., "exception_message": ...}`` dict in
    ``exception_info`` or a dict of those keyed by metric id (when a metric failed to resolve).
    """
    if not isinstance(info, dict) or not info:
        return None
    entries = [info] if "raised_exception" in info else list(info.values())
    messages: list[str] = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "exception")
            if message not in messages:
                messages.append(message)
            log.debug("expectation raised: %s", entry.get("exception_traceback"))
    return "; ".join(messages) if messages else None


# --- Data Docs folder -----------------------------------------------------------------------


def _check_replaceable(docs_dir: Path) -> None:
    if not docs_dir.exists():
        return
    if not docs_dir.is_dir():
        raise FileExistsError(f"Data Docs target {docs_dir} exists and is not a directory")
    if any(docs_dir.iterdir()) and not (docs_dir / "index.html").is_file():
        raise FileExistsError(
            f"Data Docs target {docs_dir} is not empty and holds no index.html; "
            "refusing to replace it"
        )


def _make_staging_dir(docs_dir: Path) -> Path:
    docs_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{docs_dir.name}.", suffix=".tmp", dir=docs_dir.parent))


def _install_docs(staging: Path, docs_dir: Path) -> None:
    """Swap the freshly built site in for docs_dir, so stale pages from older runs go away."""
    staging.chmod(0o755)  # mkdtemp makes it 0700
    _check_replaceable(docs_dir)
    if not docs_dir.exists():
        staging.replace(docs_dir)
        return
    old = staging.with_name(staging.name + ".old")
    docs_dir.replace(old)
    try:
        staging.replace(docs_dir)
    except OSError:
        old.replace(docs_dir)  # put the previous site back
        raise
    shutil.rmtree(old, ignore_errors=True)


# --- JSON-safe values and rendering ---------------------------------------------------------

_NONFINITE = ("nan", "inf", "-inf")


def json_safe(value: Any) -> Any:
    """`value` as plain JSON data: numpy scalars unwrapped, NaN/±inf as "nan"/"inf"/"-inf"."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((json_safe(item) for item in value), key=repr)
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, datetime | date):
        try:
            return value.isoformat()
        except ValueError:  # pd.NaT
            return str(value)
    return str(value)  # pd.NA -> "<NA>", Decimal, Enum, ...


def _render(value: Any) -> str:
    """Compact repr for messages: bare nan/inf, long lists cut to a few items."""
    if isinstance(value, str):
        return value if value in _NONFINITE else repr(value)
    if isinstance(value, list):
        shown = ", ".join(_render(item) for item in value[:_RENDER_LIST_LIMIT])
        more = len(value) - _RENDER_LIST_LIMIT
        return f"[{shown}, … +{more} more]" if more > 0 else f"[{shown}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key!r}: {_render(item)}" for key, item in value.items()) + "}"
    return repr(value)
