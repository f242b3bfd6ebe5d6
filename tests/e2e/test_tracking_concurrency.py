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

_WORKER = """
import sys
from pathlib import Path
from mlflow.exceptions import MlflowException
from neuroflow import tracking

worker, runs, steps, model, root = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), \\
    sys.argv[4], Path(sys.argv[5])
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
        params={"worker": str(worker), "run": str(r)}, tags={"concurrency.worker": str(worker)},
    )
    record["metrics"] = [["loss", 1.0 / (s + 1), s] for s in range(steps)]
    record["artifacts"] = [[note.name, "model"]]
    run_id = tracking.log_record(root, record, status="FINISHED")
    artifact_uri = mlc.get_run(run_id).info.artifact_uri
    tracking.retry_locked(
        mlc.create_model_version, model, f"{artifact_uri}/model", run_id=run_id
    )
print("done", worker, flush=True)
"""


def run_workers(root: Path, uri: str) -> None:
    env = clean_env(root, MLFLOW_TRACKING_URI=uri)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(i), str(RUNS), str(STEPS), MODEL, str(root)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WORKERS)
    ]
    failures = []
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0 or f"done {i}" not in out:
            failures.append(f"worker {i} exited {proc.returncode}:\n{err[-3000:]}")
    assert failures == []


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
    # The store's schema is created (migrated) by its first user; eight first users at once
    # would race on the migration, so the store is opened once before the writers start.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from pathlib import Path; from neuroflow import tracking; "
            "tracking.client(Path('.')).search_experiments()",
        ],
        cwd=tmp_path,
        env=clean_env(tmp_path, MLFLOW_TRACKING_URI=uri),
        check=True,
        capture_output=True,
    )
    run_workers(tmp_path, uri)
    assert_nothing_lost(db)
