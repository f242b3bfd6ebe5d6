"""Great Expectations judges a float32 split exactly as it judges the same values in float64."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuroflow.validation.runner import run_suite

FLOATS = ["float16", "float32", "float64", "Float32Dtype", "Float64Dtype"]


@pytest.mark.slow
def test_float32_split_gets_the_float64_verdicts_and_keeps_a_float32_only_rule() -> None:
    values = np.linspace(0.0, 1.0, 200, dtype=np.float32)
    values[[3, 50]] = [1.5, -0.25]  # two rows outside the range
    suite = {
        "name": "f32",
        "expectations": [
            {
                "type": "expect_column_values_to_be_in_type_list",
                "kwargs": {"column": "x", "type_list": FLOATS},
            },
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "x", "min_value": 0.0, "max_value": 1.0},
            },
            {
                "type": "expect_column_values_to_be_in_type_list",
                "kwargs": {"column": "exact", "type_list": ["float32"]},
            },
        ],
    }
    narrow = pd.DataFrame({"x": values, "exact": values})
    wide = narrow.astype({"x": np.float64})
    report = run_suite({"narrow": narrow, "wide": wide}, suite, None)
    failures = {(f.split, f.column, f.expectation): f for f in report.failures}
    between = "expect_column_values_to_be_between"
    assert set(failures) == {("narrow", "x", between), ("wide", "x", between)}
    assert failures["narrow", "x", between].unexpected_count == 2
    assert failures["narrow", "x", between].examples == failures["wide", "x", between].examples
    assert str(narrow["x"].dtype) == "float32"  # the caller's frame is not touched
