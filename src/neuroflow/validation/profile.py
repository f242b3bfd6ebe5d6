"""Propose an Expectation Suite from the train split, for a person to review and commit.

What is proposed (columns in DataFrame order):

- table: the exact column set; a generous row-count range (1 to 10× the train rows);
- numeric columns: the dtype family; a range (finite train min/max widened by ``range_margin`` ×
  span, but not below 0 for a column never negative in train; ±inf falls outside it); a null
  policy (no nulls if train has none, else ``mostly`` = observed non-null fraction minus a
  margin; GE counts NaN as null);
- object / string / category / bool columns, and the target when it looks like classification:
  the set of values seen in train, if there are at most ``categorical_max_unique`` of them.

The result is a dict as Great Expectations 1.x ``ExpectationSuite.to_json_dict()`` writes it
(the proposal is round-tripped through GE, so GE can load it back).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from neuroflow.validation.runner import build_gx_suite, import_gx, json_safe

NULL_MARGIN = 0.05
"""Slack below the observed non-null fraction for columns that already have nulls in train."""

ROW_COUNT_FACTOR = 10
"""Upper row-count bound as a multiple of the train rows (splits are smaller than train)."""

# Names GE 1.x's pandas type check understands: numpy dtype names, and for pandas' nullable
# extension dtypes the class name ("Int64Dtype"; the dtype's own name "Int64" matches nothing).
_INT_TYPES = [
    *(f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)),
    *(f"{sign}Int{bits}Dtype" for sign in ("", "U") for bits in (8, 16, 32, 64)),
]
_FLOAT_TYPES = ["float16", "float32", "float64", "Float32Dtype", "Float64Dtype"]
_BOOL_TYPES = ["bool", "BooleanDtype"]


def propose_suite(
    train: pd.DataFrame,
    *,
    name: str,
    target: str,
    categorical_max_unique: int = 20,
    range_margin: float = 0.1,
    smallest_split: int | None = None,
) -> dict[str, Any]:
    """Propose a suite from `train`; deterministic for the same input but for meta's timestamp.

    `smallest_split`: the row count of the smallest split the suite will judge. A null share
    measured on train varies by sampling in a small split (3 missing of 45 rows is 7%, where
    train had 3%), so the null rule's slack grows by three binomial standard deviations at
    that size.
    """
    if target not in train.columns:
        raise ValueError(f"target column {target!r} is not in the train frame")
    if len(train) == 0:
        raise ValueError("cannot propose a suite from an empty train frame")
    if range_margin < 0 or categorical_max_unique < 1:
        raise ValueError("range_margin must be >= 0 and categorical_max_unique >= 1")
    if train.columns.has_duplicates:
        raise ValueError("train has duplicate column names")

    rows = len(train)
    expectations: list[dict[str, Any]] = [
        _exp(
            "expect_table_columns_to_match_set",
            column_set=[str(c) for c in train.columns],
            exact_match=True,
        ),
        _exp(
            "expect_table_row_count_to_be_between",
            min_value=1,
            max_value=ROW_COUNT_FACTOR * rows,
        ),
    ]
    for column in train.columns:
        expectations.extend(
            _column_expectations(
                train[column],
                str(column),
                is_target=column == target,
                categorical_max_unique=categorical_max_unique,
                range_margin=range_margin,
                smallest_split=smallest_split,
            )
        )

    meta = {
        "neuroflow": {
            "proposed_from": "data",
            "proposed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "train_rows": rows,
            "target": str(target),
            "categorical_max_unique": categorical_max_unique,
            "range_margin": range_margin,
            "smallest_split": smallest_split,
            "note": "Proposed from the train split; review every rule before committing it.",
        }
    }
    return _through_gx({"name": name, "expectations": expectations, "meta": meta})


def _column_expectations(
    series: pd.Series,
    column: str,
    *,
    is_target: bool,
    categorical_max_unique: int,
    range_margin: float,
    smallest_split: int | None = None,
) -> list[dict[str, Any]]:
    dtype = series.dtype
    is_bool = pd.api.types.is_bool_dtype(dtype)
    is_int = pd.api.types.is_integer_dtype(dtype) and not is_bool
    is_numeric = is_int or pd.api.types.is_float_dtype(dtype)
    out: list[dict[str, Any]] = []

    if is_numeric:
        family = _INT_TYPES if is_int else _FLOAT_TYPES
        out.append(_exp("expect_column_values_to_be_in_type_list", column=column, type_list=family))
        bounds = _range(series, range_margin)
        if bounds is not None:
            low, high = bounds
            out.append(
                _exp(
                    "expect_column_values_to_be_between",
                    column=column,
                    min_value=low,
                    max_value=high,
                )
            )
    elif is_bool:
        out.append(
            _exp("expect_column_values_to_be_in_type_list", column=column, type_list=_BOOL_TYPES)
        )

    out.extend(_null_policy(series, column, smallest_split))

    is_label_like = (
        is_bool
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )
    wants_set = is_label_like or (is_target and _looks_like_classes(series))
    if wants_set:
        values = _value_set(series)
        if 0 < len(values) <= categorical_max_unique:
            out.append(_exp("expect_column_values_to_be_in_set", column=column, value_set=values))
    return out


def _exp(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs}


def _range(series: pd.Series, margin: float) -> tuple[float | int, float | int] | None:
    """Finite min/max widened by margin × span (a constant column: margin × |value|, or margin)."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo
    pad = margin * span if span > 0 else margin * max(abs(lo), 1.0)
    low, high = lo - pad, hi + pad
    if lo >= 0 > low:
        low = 0.0  # a column that is never negative in train is not proposed to go negative
    if pd.api.types.is_integer_dtype(series.dtype):
        return math.floor(low), math.ceil(high)
    return _round_out(low, lo, down=True), _round_out(high, hi, down=False)


def _round_out(bound: float, observed: float, *, down: bool) -> float:
    """Round a widened bound to 6 significant digits for readability, never past the data."""
    if bound == 0 or not math.isfinite(bound):
        return bound
    rounded = float(f"{bound:.6g}")
    covers = rounded <= observed if down else rounded >= observed
    return rounded if covers else bound


def _null_policy(
    series: pd.Series, column: str, smallest_split: int | None = None
) -> list[dict[str, Any]]:
    non_null = float(series.notna().mean())
    if non_null >= 1.0:
        return [_exp("expect_column_values_to_not_be_null", column=column)]
    sampling = 3 * math.sqrt(non_null * (1 - non_null) / smallest_split) if smallest_split else 0.0
    mostly = math.floor((non_null - NULL_MARGIN - sampling) * 1000) / 1000
    if mostly <= 0:
        return []  # mostly-null in train: no useful null rule to propose
    return [_exp("expect_column_values_to_not_be_null", column=column, mostly=mostly)]


def _looks_like_classes(series: pd.Series) -> bool:
    """A target is a class label unless it is float with non-integral values (regression)."""
    dtype = series.dtype
    if not pd.api.types.is_float_dtype(dtype):
        return True
    values = series.dropna().to_numpy(dtype="float64")
    finite = values[np.isfinite(values)]
    return bool(finite.size) and bool(np.all(finite == np.round(finite)))


def _value_set(series: pd.Series) -> list[Any]:
    """Sorted distinct non-null values, as plain JSON scalars."""
    values = {json_safe(v) for v in pd.unique(series.dropna())}
    return sorted(values, key=lambda v: (type(v).__name__, v))


def _through_gx(suite: dict[str, Any]) -> dict[str, Any]:
    """Build the suite with GE and dump it back: GE's own JSON shape, and proof GE accepts it.

    GE's dump leaves out kwargs equal to their defaults (``exact_match=True``); those are put
    back so the reviewed file states every rule explicitly.
    """
    import_gx()
    out: dict[str, Any] = build_gx_suite(suite).to_json_dict()
    for dumped, proposed in zip(out["expectations"], suite["expectations"], strict=True):
        for key, value in proposed["kwargs"].items():
            dumped["kwargs"].setdefault(key, value)
    return out
