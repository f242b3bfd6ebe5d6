"""Eight processes logging runs and registering versions at once lose nothing: against a real
`mlflow server` (SQLite backend, proxied artifacts) and against the embedded SQLite store."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import clean_env
from tests.conftest import mlflow_server as start_mlflow_server

pytestmark = pytest.mark.slow

WORKERS = 8
RUNS = 2  # per worker
STEPS = 10  # metric values per run
MODEL = "concurrency-model"

# One interpreter imports MLflow once and forks the writers: eight processes with their own
# connections, started together (eight cold interpreters would each spend seconds importing, and
# start staggered by that). With --migrate a first child opens the store (creating its schema)
# and exits before the writers start: eight first users at once would race on the migration.
_WRITERS = """
import os, sys, traceback
from pathlib import Path
import mlflow.store.model_registry.sqlalchemy_store
import mlflow.store.tracking.rest_store
import mlflow.store.tracking.sqlalchemy_store
from mlflow.exceptions import MlflowException
from neuroflow import tracking

migrate, workers, runs, steps, model, root = sys.argv[1] == "--migrate", int(sys.argv[2]), \\
    int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], Path(sys.argv[6])


def in_child(body, *args):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            body(*args)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return pid


def write(worker):
    mlc = tracking.client(root)
    note = root / f"note-{worker}.txt"
    note.write_text(f"worker {worker}")
    try:
        tracking.retry_locked(mlc.create_registered_model, model)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    for r in range(runs):
        # What the pipeline does: train writes a record, export logs it as the run in one go.
        record = tracking.new_record(
            root, experiment="concurrency", run_name=f"w{worker}-r{r}",
            params={"worker": str(worker), "run": str(r)},
            tags={"concurrency.worker": str(worker)},
        )
        record["metrics"] = [["loss", 1.0 / (s + 1), s] for s in range(steps)]
        record["artifacts"] = [[note.name, "model"]]
        run_id = tracking.log_record(root, record, status="FINISHED")
        artifact_uri = mlc.get_run(run_id).info.artifact_uri
        tracking.retry_locked(
            mlc.create_model_version, model, f"{artifact_uri}/model", run_id=run_id
        )
    print("done", worker, flush=True)


if migrate:
    _, status = os.waitpid(in_child(lambda: tracking.client(root).search_experiments()), 0)
    assert status == 0, "opening the store failed"
pids = {in_child(write, worker): worker for worker in range(workers)}
failed = [pids[pid] for pid, status in (os.waitpid(p, 0) for p in pids) if status != 0]
sys.exit(f"writers {sorted(failed)} failed" if failed else 0)
"""


def run_workers(root: Path, uri: str, *, migrate: bool = False) -> None:
    env = clean_env(root, MLFLOW_TRACKING_URI=uri)
    args = ["--migrate" if migrate else "--no-migrate", str(WORKERS), str(RUNS), str(STEPS), MODEL]
    proc = subprocess.run(
        [sys.executable, "-c", _WRITERS, *args, str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"exited {proc.returncode}:\n{proc.stderr[-6000:]}"
    done = sorted(line for line in proc.stdout.splitlines() if line.startswith("done "))
    assert done == sorted(f"done {i}" for i in range(WORKERS)), proc.stdout[-3000:]


def assert_nothing_lost(db_path: Path) -> None:
    total = WORKERS * RUNS
    with sqlite3.connect(db_path) as db:
        runs = db.execute(
            "SELECT r.run_uuid, r.status FROM runs r JOIN experiments e "
            "ON r.experiment_id = e.experiment_id WHERE e.name = 'concurrency'"
        ).fetchall()
        assert len(runs) == total
        assert {status for _, status in runs} == {"FINISHED"}
        assert db.execute("SELECT COUNT(*) FROM experiments WHERE name = 'concurrency'").fetchone()
        metric_rows = db.execute(
            "SELECT run_uuid, COUNT(*) FROM metrics WHERE key = 'loss' GROUP BY run_uuid"
        ).fetchall()
        assert sorted(n for _, n in metric_rows) == [STEPS] * total
        pairs = db.execute(
            "SELECT a.value, b.value FROM params a JOIN params b ON a.run_uuid = b.run_uuid "
            "WHERE a.key = 'worker' AND b.key = 'run'"
        ).fetchall()
        assert sorted(pairs) == sorted(
            (str(w), str(r)) for w in range(WORKERS) for r in range(RUNS)
        )
        versions = db.execute(
            "SELECT version, run_id FROM model_versions WHERE name = ?", (MODEL,)
        ).fetchall()
        assert sorted(int(v) for v, _ in versions) == list(range(1, total + 1))
        assert {run_id for _, run_id in versions} == {run_id for run_id, _ in runs}
        assert db.execute("SELECT COUNT(*) FROM registered_models").fetchone()[0] == 1


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    db = tmp_path / "server.db"
    with start_mlflow_server(
        f"sqlite:///{db}", tmp_path / "artifacts", tmp_path / "server.log", workers=2
    ) as url:
        yield url, db


def test_eight_writers_against_mlflow_server(
    mlflow_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, db = mlflow_server
    root = tmp_path / "client"
    root.mkdir()
    run_workers(root, url)
    assert_nothing_lost(db)
    stored = list((tmp_path / "artifacts").rglob("note-*.txt"))
    assert len(stored) == WORKERS * RUNS  # every artifact went through the server's proxy


def test_eight_writers_against_embedded_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    run_workers(tmp_path, uri, migrate=True)
    assert_nothing_lost(db)
