"""A new SQLite tracking store is a copy of a migrated empty one, and MLflow takes it as its own."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from neuroflow import store_seed, tracking
from neuroflow.config import sqlite_file

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


def schema(db: Path) -> list[tuple[str, str, list[str]]]:
    """Every table and index with its definition's lines, in no particular order: MLflow's
    migrations rebuild some tables with their constraints in a hash-dependent order, so two
    stores MLflow makes itself differ in that order too."""
    with sqlite3.connect(db) as conn:
        found = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"
        ).fetchall()
    return sorted(
        (kind, name, sorted(line.strip().rstrip(",") for line in sql.splitlines()))
        for kind, name, sql in found
    )


def rows(db: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query).fetchall()


@pytest.fixture
def cache(_run_cache: Path) -> Path:
    """The run's cache folder (the session sets it): its template is made once per test run."""
    return _run_cache


def open_store(root: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """`tracking.client(root)` on the project's own store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tracking.client(root)


def test_a_seeded_store_is_the_store_mlflow_makes(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    seeded, made = tmp_path / "seeded", tmp_path / "made"
    seeded.mkdir()
    made.mkdir()
    assert store_seed.seed(f"sqlite:///{seeded / 'mlflow.db'}")
    assert (seeded / "mlflow.db").stat().st_nlink == 1  # a copy: the template is not shared
    # Stages run in the project's folder; MLflow puts the Default experiment's artifacts there.
    monkeypatch.chdir(made)
    (mlflows,) = MlflowClient(f"sqlite:///{made / 'mlflow.db'}").search_experiments()
    monkeypatch.chdir(seeded)
    (default,) = open_store(seeded, monkeypatch).search_experiments()  # checks the schema
    assert (default.experiment_id, default.name) == (mlflows.experiment_id, mlflows.name)
    assert default.artifact_location == str(seeded / "mlruns" / "0")  # the project's, not ours
    assert mlflows.artifact_location == str(made / "mlruns" / "0")
    assert schema(seeded / "mlflow.db") == schema(made / "mlflow.db")
    query = "SELECT version_num FROM alembic_version"
    assert rows(seeded / "mlflow.db", query) == rows(made / "mlflow.db", query)
    # The template holds tables and the schema version only: no experiment, no run.
    (template,) = cache.glob("mlflow-*-store.db")
    assert rows(template, "SELECT COUNT(*) FROM experiments") == [(0,)]
    # A second store comes from the same template, not a second migration.
    made_at = template.stat().st_mtime_ns
    assert store_seed.seed(f"sqlite:///{tmp_path / 'other.db'}")
    assert template.stat().st_mtime_ns == made_at


def test_an_existing_file_is_never_replaced(cache: Path, tmp_path: Path) -> None:
    for content in (b"", b"not a database"):
        db = tmp_path / "mlflow.db"
        db.write_bytes(content)
        assert not store_seed.seed(f"sqlite:///{db}")
        assert db.read_bytes() == content
        # A store that appears between the check and the link (another stage made it) stands.
        template = store_seed._template()
        assert not store_seed._link_copy(template, db)
        assert db.read_bytes() == content
    assert not list(tmp_path.glob(".mlflow.db.*"))  # no temporary file left behind


@pytest.mark.parametrize(
    "uri",
    ["http://127.0.0.1:5000", "postgresql://u@localhost/db", "sqlite://", "sqlite:///:memory:"],
)
def test_other_stores_are_left_to_mlflow(uri: str, cache: Path) -> None:
    assert sqlite_file(uri) is None
    assert not store_seed.seed(uri)


def test_without_a_usable_cache_mlflow_makes_the_store_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(store_seed.CACHE_ENV, str(blocked / "cache"))
    project = tmp_path / "project"
    project.mkdir()
    assert not store_seed.seed(f"sqlite:///{project / 'mlflow.db'}")
    assert not (project / "mlflow.db").exists()
    (default,) = open_store(project, monkeypatch).search_experiments()
    assert default.name == "Default"


def test_the_cache_folder_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(store_seed.CACHE_ENV, str(tmp_path / "mine"))
    assert store_seed.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(store_seed.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert store_seed.cache_dir() == tmp_path / "xdg" / "neuroflow"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert store_seed.cache_dir() == tmp_path / "home" / ".cache" / "neuroflow"
