"""A user's own CSV, start to finish, with `species` as the target (multiclass): see own_csv.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.e2e.own_csv import start_to_finish

pytestmark = pytest.mark.slow


def test_own_csv_start_to_finish(tmp_path: Path) -> None:
    start_to_finish(tmp_path, "species")
