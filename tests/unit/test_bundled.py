"""The bundled tables read without scikit-learn equal scikit-learn's own loaders, bit for bit."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from neuroflow.data import bundled
from neuroflow.data.sources import BUNDLED


@pytest.mark.parametrize("name", BUNDLED)
def test_table_equals_scikit_learns_loader(name: str) -> None:
    from sklearn import datasets

    expected = getattr(datasets, f"load_{name}")(as_frame=True).frame
    pd.testing.assert_frame_equal(bundled.load(name), expected, check_exact=True)


def test_reading_a_bundled_table_does_not_import_scikit_learn() -> None:
    probe = (
        "import sys; from neuroflow.data.sources import load_bundled; "
        "frame = load_bundled('breast_cancer', 'diagnosis'); "
        "print(frame.shape, 'sklearn' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "(569, 31) False"
