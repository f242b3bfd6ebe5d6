"""One feeds path for every caller, and one input policy for `predict` and `serve`.

Export's parity check, the serving scorer and the promotion gate feed the graph through
`export.runtime.frame_feeds`; the HTTP app (in-process, the real FastAPI app) and the batch
scorer screen extra columns and unseen categories with the same `serving.scorer.screen`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.unit.test_onnx_graph import CASES, fit_case, raw_frame

from neuroflow.export import runtime
from neuroflow.export.onnx_graph import build_onnx_model, parity_max_abs_diff
from neuroflow.export.runtime import InputError, OnnxScorer
from neuroflow.registry.promotion import predictions
from neuroflow.serving.app import ServedModel
from neuroflow.serving.scorer import UnseenCategoryError, screen
from neuroflow.serving.server import IGNORED_HEADER, UNSEEN_HEADER, create_app

CASE = CASES["binary-str"]  # four numeric columns and the categorical "color", NaN in both


@pytest.fixture(scope="module")
def built() -> tuple[bytes, Any, Any]:
    pre, head, spec = fit_case(CASE)
    model = build_onnx_model(pre, head, spec, target="diagnosis")
    return model.SerializeToString(), pre, head


@pytest.fixture
def frame() -> pd.DataFrame:
    rows = raw_frame(40, seed=5, case=CASE)
    assert rows["color"].isna().any() and rows["mean radius"].isna().any()
    return rows


@pytest.fixture
def feeds_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, np.ndarray]]]:
    """Every result of `runtime.frame_feeds`, whoever calls it (the real function runs)."""
    calls: list[dict[str, np.ndarray]] = []
    real = runtime.frame_feeds

    def recording(inputs: Any, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        feeds = real(inputs, frame)
        calls.append(feeds)
        return feeds

    monkeypatch.setattr(runtime, "frame_feeds", recording)
    yield calls


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        if a[name].dtype == object:
            assert a[name].tolist() == b[name].tolist(), name
        else:
            np.testing.assert_array_equal(a[name], b[name])  # NaN == NaN here


def test_parity_runs_through_the_serving_feeds(
    built: tuple[bytes, Any, Any], frame: pd.DataFrame, feeds_calls: list[Any]
) -> None:
    model_bytes, pre, head = built
    diff = parity_max_abs_diff(model_bytes, pre, head, frame)
    assert diff <= 1e-5
    assert len(feeds_calls) == 1  # export's parity check fed the graph through frame_feeds
    parity_feeds = feeds_calls[0]
    served = OnnxScorer(model_bytes).feeds_from_frame(frame)
    assert len(feeds_calls) == 2  # ... and so did the serving scorer
    _same(parity_feeds, served)
    missing = frame["color"].isna().to_numpy()
    assert parity_feeds["color"][missing].tolist() == [""] * int(missing.sum())
    assert np.isnan(parity_feeds["mean radius"][frame["mean radius"].isna().to_numpy()]).all()


def test_the_gate_scores_through_the_same_feeds(
    built: tuple[bytes, Any, Any], frame: pd.DataFrame, feeds_calls: list[Any]
) -> None:
    scorer = OnnxScorer(built[0])
    labelled = frame.assign(diagnosis=np.where(np.arange(len(frame)) % 2, "benign", "malignant"))
    preds = predictions(scorer, labelled, "diagnosis", scorer.classes)
    assert len(feeds_calls) == 1 and preds.proba is not None
    np.testing.assert_allclose(preds.proba, scorer.run(feeds_calls[0])["probabilities"])


def test_json_columns_and_a_frame_feed_the_same_values(
    built: tuple[bytes, Any, Any], frame: pd.DataFrame
) -> None:
    """`serve` (JSON, null for missing) and `predict` (a file, NaN) give identical feeds."""
    scorer = OnnxScorer(built[0])
    records = frame.astype(object).where(frame.notna(), None)
    columns = {name: records[name].tolist() for name in frame.columns}
    _same(scorer.feeds_from_columns(columns), scorer.feeds_from_frame(frame))


def test_screen_sorts_label_unknown_and_unseen(
    built: tuple[bytes, Any, Any], frame: pd.DataFrame
) -> None:
    scorer = OnnxScorer(built[0])
    assert scorer.target == "diagnosis" and set(scorer.categories or {}) == {"color"}
    rows = frame.assign(diagnosis="benign", row_id=range(len(frame)))
    rows.loc[[0, 3], "color"] = "mauve"  # never seen in training
    names = list(rows.columns)
    feeds = scorer.feeds_from_frame(rows)  # extra columns are read by nobody
    notes = screen(scorer, names, feeds)
    assert notes.label == ["diagnosis"] and notes.unknown == ["row_id"]
    assert [(u.column, u.value, u.rows) for u in notes.unseen] == [("color", "mauve", 2)]
    assert notes.unseen_count == 2
    # Missing values are not unseen categories.
    clean = scorer.feeds_from_frame(frame)
    assert screen(scorer, list(frame.columns), clean).unseen == []

    with pytest.raises(InputError, match=r"unknown column\(s\) \['row_id'\]"):
        screen(scorer, names, feeds, strict=True)
    with pytest.raises(UnseenCategoryError, match="column 'color' value 'mauve' \\(2 row"):
        screen(scorer, [n for n in names if n != "row_id"], feeds, strict=True)


def test_http_app_reports_and_refuses_like_predict(
    built: tuple[bytes, Any, Any], frame: pd.DataFrame
) -> None:
    """The real FastAPI app in-process: headers for ignored columns and unseen categories, and
    a 400 naming column and value under strict."""
    served = ServedModel(OnnxScorer(built[0]), "m", "1", "run")
    rows = frame.head(3).astype(object)
    rows = rows.where(rows.notna(), None).assign(diagnosis="benign", note="x")
    rows.loc[1, "color"] = "Mars"
    payload = {"dataframe_records": rows.to_dict(orient="records")}

    lenient = TestClient(create_app(served)).post("/invocations", json=payload)
    assert lenient.status_code == 200, lenient.text
    assert lenient.headers[IGNORED_HEADER] == "diagnosis,note"
    assert lenient.headers[UNSEEN_HEADER] == "1"
    assert len(lenient.json()["predictions"]["label"]) == 3

    strict = TestClient(create_app(served, strict=True))
    refused = strict.post("/invocations", json={"dataframe_records": payload["dataframe_records"]})
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "BAD_REQUEST"  # the unknown column comes first
    assert "unknown column(s) ['note']" in refused.json()["message"]
    without_note = rows.drop(columns=["note"])
    split = {"columns": list(without_note.columns), "data": without_note.values.tolist()}
    unseen = strict.post("/invocations", json={"dataframe_split": split})
    assert unseen.status_code == 400, unseen.text
    body = unseen.json()
    assert body["error_code"] == "UNSEEN_CATEGORY"
    assert body["unseen"] == [{"column": "color", "value": "Mars", "rows": 1}]
    assert "'color'" in body["message"] and "'Mars'" in body["message"]


@pytest.mark.parametrize(
    ("known", "alias", "says"),
    [
        (
            {"challenger": "3"},
            "champion",
            "m has no @champion yet (nothing has been promoted); its @challenger is version 3. "
            "Score with the challenger: `neuroflow predict -i a.csv -o b.csv --alias challenger`",
        ),
        ({"champion": "2"}, "staging", "it has @champion (v2): pass one with"),
        ({}, "champion", "no other alias: run the pipeline (`dvc repro`) first"),
    ],
)
def test_an_unset_alias_names_the_command_that_works(
    known: dict[str, str], alias: str, says: str
) -> None:
    from neuroflow.serving.app import _no_alias

    assert says in _no_alias("m", alias, known, "neuroflow predict -i a.csv -o b.csv")
