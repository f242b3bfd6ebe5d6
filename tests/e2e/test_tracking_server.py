"""The pipeline against a real `mlflow server` on PostgreSQL with a separate artifact store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import free_port, run
from tests.conftest import mlflow_server as start_mlflow_server

pytestmark = pytest.mark.slow

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


def as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI runs as root, developers usually not.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    if PG_BIN is None:
        pytest.skip("PostgreSQL server binaries not installed (.ci/run installs Debian's package)")
    base = Path(tempfile.mkdtemp(prefix="neuroflow-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    subprocess.run(
        as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        as_postgres(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(sock),
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(100):
            ready = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            time.sleep(0.2)
        subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "-c",
                "CREATE DATABASE mlflow",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/mlflow"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    artifacts = tmp_path_factory.mktemp("artifact-store")
    log = tmp_path_factory.mktemp("logs") / "mlflow.log"
    with start_mlflow_server(postgres, artifacts, log) as url:
        yield url


def test_pipeline_tracks_and_registers_on_the_server(
    pipeline_done: Path, tmp_path: Path, mlflow_server: str
) -> None:
    from mlflow.tracking import MlflowClient

    # The session's shared run without its embedded store: the stages that track (train
    # onwards; those before it never open MLflow) run again, against the server.
    project = Path(shutil.copytree(pipeline_done, tmp_path / "project", symlinks=True))
    (project / "mlflow.db").unlink()
    shutil.rmtree(project / "mlruns", ignore_errors=True)
    proc = run(
        project,
        "dvc",
        "repro",
        "--force",
        "--downstream",
        "train",
        MLFLOW_TRACKING_URI=mlflow_server,
    )
    ran = {line.split("'")[1] for line in proc.stdout.splitlines() if "Running stage" in line}
    assert ran == {"train", "evaluate", "export"}, proc.stdout
    assert not (project / "mlflow.db").exists()  # nothing fell back to the embedded store
    reg = json.loads((project / "artifacts/export/registration.json").read_text())
    mlc = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    tracked = mlc.get_run(reg["run_id"])
    assert tracked.info.status == "FINISHED"
    assert "test_accuracy" in tracked.data.metrics
    assert len(mlc.get_metric_history(reg["run_id"], "train_loss")) >= 2
    version = mlc.get_model_version_by_alias(reg["model_name"], "challenger")
    assert str(version.version) == reg["version"] and version.run_id == reg["run_id"]
    # The artifact went through the server's proxy into its own store.
    files = {a.path for a in mlc.list_artifacts(reg["run_id"], "plots")}
    assert "plots/history.png" in files
