"""Load and save an Expectation Suite as reviewable JSON.

The file holds what Great Expectations 1.x ``ExpectationSuite.to_json_dict()`` produces::

    {"name": "...", "expectations": [{"type": "expect_...", "kwargs": {...}, ...}], "meta": {...}}

Only the shape is checked here (cheap, no Great Expectations import); whether each expectation
exists and its kwargs are valid is checked by the runner when it builds the suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neuroflow.io import write_json


class SuiteFormatError(ValueError):
    """The suite JSON is not shaped like a Great Expectations 1.x suite."""


def check_suite_shape(suite: Any, source: str = "suite") -> dict[str, Any]:
    """Return `suite` if it is shaped like a GE 1.x suite dict; raise SuiteFormatError if not."""
    if not isinstance(suite, dict):
        raise SuiteFormatError(f"{source}: expected a JSON object, got {type(suite).__name__}")
    name = suite.get("name")
    if not isinstance(name, str) or not name:
        hint = (
            " (a Great Expectations 0.x suite? rename 'expectation_suite_name' to 'name')"
            if "expectation_suite_name" in suite
            else ""
        )
        raise SuiteFormatError(f"{source}: 'name' must be a non-empty string{hint}")
    expectations = suite.get("expectations")
    if not isinstance(expectations, list):
        raise SuiteFormatError(f"{source}: 'expectations' must be a list")
    for i, exp in enumerate(expectations):
        if not isinstance(exp, dict):
            raise SuiteFormatError(f"{source}: expectations[{i}] must be an object")
        if not isinstance(exp.get("type"), str) or not exp["type"]:
            hint = (
                " (0.x key 'expectation_type' is now 'type')" if "expectation_type" in exp else ""
            )
            raise SuiteFormatError(f"{source}: expectations[{i}] needs a string 'type'{hint}")
        if not isinstance(exp.get("kwargs"), dict):
            raise SuiteFormatError(f"{source}: expectations[{i}] ({exp['type']}) needs 'kwargs'")
    meta = suite.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise SuiteFormatError(f"{source}: 'meta' must be an object")
    return suite


def without_column(suite: dict[str, Any], column: str) -> dict[str, Any]:
    """The suite minus every expectation on `column`, and `column` out of column-set rules.

    Rows to be scored carry no label yet: `validate --batch` checks them with the features' rules.
    """
    expectations = []
    for exp in suite["expectations"]:
        kwargs = exp["kwargs"]
        if kwargs.get("column") == column:
            continue
        if isinstance(kwargs.get("column_set"), list):
            kwargs = {**kwargs, "column_set": [c for c in kwargs["column_set"] if c != column]}
        if isinstance(kwargs.get("column_list"), list):
            kwargs = {**kwargs, "column_list": [c for c in kwargs["column_list"] if c != column]}
        expectations.append({**exp, "kwargs": kwargs})
    return {**suite, "expectations": expectations}


def load_suite(path: str | Path) -> dict[str, Any]:
    """Read a suite JSON file and check its shape."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SuiteFormatError(f"{path}: not valid JSON: {exc}") from exc
    return check_suite_shape(data, str(path))


def save_suite(suite: dict[str, Any], path: str | Path) -> None:
    """Write `suite` atomically: sorted keys, indent 2, trailing newline, no NaN.

    A temporary file is written beside `path` and moved over it with ``os.replace``, so a reader
    (or a crash) never sees half a file.
    """
    check_suite_shape(suite, str(path))
    try:
        write_json(path, suite)
    except (TypeError, ValueError) as exc:  # NaN/inf or numpy scalars: not plain JSON
        raise SuiteFormatError(f"{path}: suite is not JSON-serialisable: {exc}") from exc
