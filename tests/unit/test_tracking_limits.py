"""Descriptions fit MLflow's SQL columns: a PostgreSQL-backed server refuses longer ones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from neuroflow import tracking
from neuroflow.tracking import DESCRIPTION_LIMIT, _fit


def test_a_long_model_card_is_clipped_to_the_store_limit_and_says_so() -> None:
    card = "# Model card\n" + "\n".join(f"- feature_{i}: 0.123" for i in range(600))
    assert len(card) > DESCRIPTION_LIMIT
    fitted = _fit(card)
    assert len(fitted) <= DESCRIPTION_LIMIT
    assert fitted.startswith("# Model card\n- feature_0")
    assert "model_card/MODEL_CARD.md" in fitted


def test_a_short_description_is_kept_whole() -> None:
    assert _fit("# Model card\nshort\n") == "# Model card\nshort\n"


def test_a_tag_insert_lost_to_another_writer_is_written_again(tmp_path: Path) -> None:
    """Two exports writing the same new registered-model tag at once: MLflow reads, then inserts,
    so the second insert breaks the unique key (IntegrityError). The tag is written again."""
    import sqlite3

    import mlflow
    import sqlalchemy
    from mlflow.exceptions import MlflowException

    from neuroflow.tracking import upsert

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, uri)
    client.create_registered_model("m")
    # The error the losing writer gets, raised by SQLite itself.
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (name TEXT, key TEXT, UNIQUE (name, key))")
    db.execute("INSERT INTO t VALUES ('m', 'task')")
    try:
        db.execute("INSERT INTO t VALUES ('m', 'task')")
    except sqlite3.IntegrityError as exc:
        lost = sqlalchemy.exc.IntegrityError("INSERT INTO registered_model_tags", {}, exc)
    calls: list[tuple[str, ...]] = []

    def racing_writer(*args: str) -> None:
        calls.append(args)
        if len(calls) == 1:  # meanwhile the other writer inserted the tag
            client.set_registered_model_tag(*args[:2], "theirs")
            raise lost
        client.set_registered_model_tag(*args)

    upsert(racing_writer, "m", "task", "binary")
    assert len(calls) == 2
    assert client.get_registered_model("m").tags == {"task": "binary"}
    # Any other failure stands, tried once.
    with pytest.raises(MlflowException, match="not found"):
        upsert(client.set_registered_model_tag, "absent", "task", "binary")


def test_an_alias_insert_lost_to_another_export_is_written_again(tmp_path: Path) -> None:
    """Two sweep trials exporting at once both point @challenger: the second insert into the
    alias table breaks its unique key (seen in a sweep); the export sets the alias again."""
    import mlflow
    import sqlalchemy

    from neuroflow.registry.names import CHALLENGER, set_challenger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, uri)
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", (tmp_path / "model").as_uri())
    lost = sqlalchemy.exc.IntegrityError(
        "INSERT INTO registered_model_aliases",
        {},
        Exception("UNIQUE constraint failed: registered_model_aliases.name"),
    )
    calls: list[tuple[str, ...]] = []
    real = client.set_registered_model_alias

    def racing(name: str, alias: str, version: str) -> None:
        calls.append((name, alias, version))
        if len(calls) == 1:  # meanwhile the other trial pointed the alias at its version
            real(name, alias, "1")
            raise lost
        real(name, alias, version)

    client.set_registered_model_alias = racing  # type: ignore[method-assign]
    set_challenger(client, "m", "2")
    assert [c[2] for c in calls] == ["2", "2"]
    assert str(client.get_model_version_by_alias("m", CHALLENGER).version) == "2"


def test_a_client_leaves_the_tracking_uri_in_the_environment_to_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow copies the URI it is given into MLFLOW_TRACKING_URI, where the next client() would
    read it as the user's choice: one process opening two projects would write the second one's
    runs into the first one's store."""
    import mlflow

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    tracking.client(first)
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    opened = tracking.client(second)
    own = f"sqlite:///{(second / 'mlflow.db').resolve()}"
    assert opened.tracking_uri == own and mlflow.get_tracking_uri() == own
    assert mlflow.get_registry_uri() == own
    # A URI the user set stands, for every project, and stays set.
    chosen = f"sqlite:///{tmp_path / 'chosen.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", chosen)
    assert tracking.client(first).tracking_uri == chosen
    assert os.environ["MLFLOW_TRACKING_URI"] == chosen


def test_a_dataset_insert_lost_to_another_export_is_logged_again(tmp_path: Path) -> None:
    """Two sweep trials exporting at once log the same new training split: MLflow looks the
    dataset up, then inserts it, so the second insert breaks the datasets table's unique key
    (seen in a suite run). The export logs its inputs again and reuses the other's dataset."""
    import sqlite3

    import mlflow
    import numpy as np
    import sqlalchemy
    from safetensors.numpy import save_file

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, uri)
    experiment = client.create_experiment("sweep", artifact_location=str(tmp_path / "art"))
    ours, theirs = (client.create_run(experiment).info.run_id for _ in range(2))
    (tmp_path / "data").mkdir()
    save_file({"x": np.zeros((5, 3), dtype=np.float32)}, str(tmp_path / "data" / "train.st"))
    splits = [["train", "data/train.st", "0123456789abcdef0123456789abcdef"]]
    lost = sqlalchemy.exc.IntegrityError(
        "INSERT INTO datasets",
        {},
        Exception("UNIQUE constraint failed: datasets.experiment_id, datasets.name"),
    )
    calls: list[str] = []
    real = client.log_inputs

    def racing(run_id: str, datasets: list[Any]) -> None:
        calls.append(run_id)
        if len(calls) == 1:  # meanwhile the other trial logged the same split
            real(theirs, datasets)
            raise lost
        real(run_id, datasets)

    client.log_inputs = racing  # type: ignore[method-assign]
    tracking._log_inputs(client, tmp_path, ours, splits)
    assert calls == [ours, ours]
    for run_id in (ours, theirs):
        (logged,) = client.get_run(run_id).inputs.dataset_inputs
        assert logged.dataset.digest == splits[0][2]
        assert logged.tags[0].value == "train"
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("SELECT COUNT(*) FROM datasets").fetchone() == (1,)
