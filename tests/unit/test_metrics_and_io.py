import json
import math
from pathlib import Path

import numpy as np
import pytest

from neuroflow.evaluation.metrics import (
    CLASSIFICATION_KEYS,
    classification_metrics,
    json_safe,
    regression_metrics,
)
from neuroflow.io import atomic_path, read_json, write_json


def test_classification_metrics_have_the_contract_keys() -> None:
    y = np.array([0, 1, 1, 0, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.6, 0.4], [0.7, 0.3]])
    overall, per_class = classification_metrics(y, proba, [0, 1])
    assert set(overall) == set(CLASSIFICATION_KEYS)
    assert overall["accuracy"] == pytest.approx(0.8)
    assert overall["roc_auc"] == pytest.approx(5 / 6)
    assert per_class["1"]["support"] == 3


def test_multiclass_roc_auc_is_one_vs_rest_macro() -> None:
    y = np.array([0, 1, 2, 2])
    proba = np.eye(3)[[0, 1, 2, 2]] * 0.9 + 0.1 / 3
    overall, _ = classification_metrics(y, proba, ["a", "b", "c"])
    assert overall["roc_auc"] == pytest.approx(1.0) and overall["accuracy"] == 1.0


def test_regression_metrics() -> None:
    out = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert out["mae"] == pytest.approx(1 / 3) and out["rmse"] == pytest.approx(math.sqrt(1 / 3))


def test_json_safe_turns_nan_into_null() -> None:
    assert json.dumps(json_safe({"a": float("nan"), "b": {"c": 1.0}})) == (
        '{"a": null, "b": {"c": 1.0}}'
    )


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind


def test_write_json_refuses_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_json(tmp_path / "y.json", {"v": float("nan")})
    assert not (tmp_path / "y.json").exists()


def test_atomic_writes_get_the_mode_a_plain_open_would(tmp_path: Path) -> None:
    """Not the 0600 of the temp file: other users (a server, a CI reader) can read outputs."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_json(tmp_path / "atomic.json", {"rows": list(range(3))})
    assert (tmp_path / "atomic.json").stat().st_mode == plain.stat().st_mode
    assert read_json(tmp_path / "atomic.json") == {"rows": [0, 1, 2]}
