"""Pipeline → promote → `neuroflow serve` over real HTTP, against the offline scoring paths.

Uses a copy of the shared shrunken pipeline run (`pipeline_done`), promotes its challenger (first
champion, by thresholds), starts the server on a free loopback port and stops it by PID.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from tests.conftest import clean_env, neuroflow_server, run, set_params

pytestmark = pytest.mark.slow
MODEL = "neuroflow-breast-cancer"


@dataclass(frozen=True)
class Server:
    root: Path
    url: str
    rows: pd.DataFrame  # raw test rows without the target


@pytest.fixture(scope="module")
def server(pipeline_done: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serve") / "project"
    shutil.copytree(pipeline_done, root, symlinks=True)
    # The shrunken run trains 12 epochs: relax the first-champion thresholds, not the gate.
    set_params(root, {"promotion": {"thresholds": {"binary": {"accuracy": 0.8}}}})
    promoted = run(root, "neuroflow", "promote", "--json")
    assert json.loads(promoted.stdout)["decision"] == "promoted", promoted.stdout

    with neuroflow_server(root, "--refresh", "0.5") as url:
        rows = pd.read_parquet(root / "data" / "raw" / "test.parquet").drop(columns=["target"])
        yield Server(root, url, rows)


def _tail(root: Path) -> str:
    return (root / "serve.log").read_text()[-3000:]


def _split(frame: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}


def test_ping_version_and_loopback_bind(server: Server) -> None:
    assert httpx.get(f"{server.url}/ping").status_code == 200
    info = httpx.get(f"{server.url}/metadata").json()
    assert info["model"] == MODEL and info["version"] == "1"
    assert [i["name"] for i in info["inputs"]] == list(server.rows.columns)
    # Bound to loopback only: another local address of this host is refused.
    port = int(server.url.rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        assert sock.connect_ex(("127.0.0.2", port)) != 0


def test_http_predictions_match_the_offline_paths(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = server.rows
    split = httpx.post(f"{server.url}/invocations", json=_split(rows))
    assert split.status_code == 200, split.text
    assert split.headers["x-model-version"] == "1"
    predictions = split.json()["predictions"]
    records = httpx.post(
        f"{server.url}/invocations", json={"dataframe_records": rows.to_dict(orient="records")}
    ).json()["predictions"]
    assert records == predictions
    labels = np.asarray(predictions["label"])
    proba = np.asarray(predictions["probabilities"])
    assert proba.shape == (len(rows), 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)

    # Offline 1: batch `neuroflow predict` on a CSV file.
    source, target = server.root / "rows.csv", server.root / "scored.parquet"
    rows.to_csv(source, index=False)
    run(server.root, "neuroflow", "predict", "--input", str(source), "--output", str(target))
    scored = pd.read_parquet(target)
    assert list(scored.columns[: rows.shape[1]]) == list(rows.columns)
    assert np.array_equal(scored["label"].to_numpy(), labels)
    assert np.allclose(scored[["proba_0", "proba_1"]].to_numpy(), proba, atol=1e-6)

    # Offline 2: MLflow's own pyfunc loader on models:/NAME@champion.
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{server.root / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{server.root / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{server.root / 'mlflow.db'}")
    offline = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(rows)
    assert np.array_equal(np.asarray(offline["label"]), labels)
    assert np.allclose(np.asarray(offline["probabilities"]), proba, atol=1e-6)


def test_csv_and_empty_batches(server: Server) -> None:
    rows = server.rows.head(3)
    csv = httpx.post(
        f"{server.url}/invocations",
        content=rows.to_csv(index=False),
        headers={"Content-Type": "text/csv"},
    )
    assert csv.status_code == 200, csv.text
    assert len(csv.json()["predictions"]["label"]) == 3
    empty = httpx.post(f"{server.url}/invocations", json={"dataframe_records": []})
    assert empty.status_code == 200
    assert empty.json() == {"predictions": {"label": [], "probabilities": []}}


def _row(server: Server) -> dict[str, Any]:
    return {k: float(v) for k, v in server.rows.iloc[0].items()}


MALFORMED: dict[str, tuple[Any, int, str]] = {
    # name: (body or callable(row) -> json payload, status, fragment of the message)
    "empty body": (b"", 400, "empty request body"),
    "not json": (b"{nope", 400, "not valid JSON"),
    "json array": (b"[1, 2]", 400, "JSON object"),
    "unknown key": ({"instances": [[1.0]]}, 400, "dataframe_split"),
    "missing column": ("drop:mean radius", 400, "missing column(s) ['mean radius']"),
    "string in numeric": ("set:mean radius=big", 400, "column 'mean radius' expects a number"),
    "bool in numeric": ("set:mean radius=True", 400, "row 0 has true"),
    "nested value": ("set:mean radius=[1]", 400, "expects a number"),
    "ragged split row": ("ragged", 400, "row 0 must be a list of"),
    "records differ": ("records-differ", 400, "dataframe_records[1]"),
    "split without data": ({"dataframe_split": {"columns": ["a"]}}, 400, "list of rows"),
}


def _payload(spec: Any, server: Server) -> tuple[bytes, dict[str, str]]:
    headers = {"Content-Type": "application/json"}
    if isinstance(spec, bytes):
        return spec, headers
    if isinstance(spec, dict):
        return json.dumps(spec).encode(), headers
    row = _row(server)
    if spec.startswith("drop:"):
        row.pop(spec[5:])
    elif spec.startswith("add:"):
        row[spec[4:]] = 1.0
    elif spec.startswith("set:"):
        key, raw = spec[4:].split("=", 1)
        row[key] = {"True": True, "[1]": [1]}.get(raw, raw)
    elif spec == "ragged":
        body = {"dataframe_split": {"columns": list(row), "data": [list(row.values())[:-1]]}}
        return json.dumps(body).encode(), headers
    elif spec == "records-differ":
        other = dict(row)
        other.pop("mean radius")
        return json.dumps({"dataframe_records": [row, other]}).encode(), headers
    return json.dumps({"dataframe_records": [row]}).encode(), headers


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_requests_get_a_readable_4xx(server: Server, case: str) -> None:
    spec, status, fragment = MALFORMED[case]
    body, headers = _payload(spec, server)
    response = httpx.post(f"{server.url}/invocations", content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["error_code"] == "BAD_REQUEST"
    assert fragment in error["message"], error["message"]


def test_label_and_unknown_columns_are_ignored_and_named(server: Server) -> None:
    """Like `neuroflow predict`: the label and unknown columns are scored around, not refused."""
    row = _row(server)
    plain = httpx.post(f"{server.url}/invocations", json={"dataframe_records": [row]})
    extra = httpx.post(
        f"{server.url}/invocations",
        json={"dataframe_records": [{**row, "target": 1, "shoe size": 44}]},
    )
    assert extra.status_code == 200, extra.text
    assert extra.json() == plain.json()
    assert extra.headers["x-neuroflow-ignored-columns"] == "target,shoe size"
    assert "x-neuroflow-ignored-columns" not in plain.headers
    assert plain.headers["x-neuroflow-unseen-categories"] == "0"


def test_wrong_content_type_is_415_and_the_server_survives(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/invocations", content=b"a=1", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415 and "application/json" in response.json()["message"]
    assert httpx.get(f"{server.url}/ping").status_code == 200
    assert "Traceback" not in _tail(server.root)


def test_a_promotion_is_served_without_a_restart(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last in this module (it moves @champion of the shared server): a new version appears."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = clean_env(server.root)["MLFLOW_TRACKING_URI"]
    # The registry resolves a version's source through the process-wide tracking store.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlc = MlflowClient(tracking_uri=uri, registry_uri=uri)
    v1 = mlc.get_model_version(MODEL, "1")
    v2 = mlc.create_model_version(MODEL, v1.source, run_id=v1.run_id, tags=v1.tags)
    new = str(v2.version)
    mlc.set_registered_model_alias(MODEL, "champion", new)
    deadline = time.monotonic() + 60
    while httpx.get(f"{server.url}/metadata").json()["version"] != new:
        assert time.monotonic() < deadline, f"still serving v1: {_tail(server.root)}"
        time.sleep(0.2)
    scored = httpx.post(f"{server.url}/invocations", json=_split(server.rows.head(3)))
    assert scored.status_code == 200 and scored.headers["x-model-version"] == new
