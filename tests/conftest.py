"""Shared fixtures: a throw-away copy of the project, shrunken params, CLI runners."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

# What a fresh clone holds, as a new git repo: the one copy, shared with the benchmarks.
from benchmarks.common import copy_project as copy_project
from benchmarks.common import free_port as free_port  # procs.py and tests import it from here
from benchmarks.common import stop_process

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Fast settings for tests: the real config, shrunk (few epochs, CPU, deterministic).
FAST_TRAIN = {"epochs": 12, "patience": 5, "device": "cpu"}


def clean_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@example.com"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    env.update(extra)
    return env


def tree_hashes(root: Path, rels: tuple[str, ...]) -> dict[str, str]:
    """SHA-256 of every file under each of `rels` (files or folders), by path under root."""
    out: dict[str, str] = {}
    for rel in rels:
        base = root / rel
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for file in files:
            out[str(file.relative_to(root))] = hashlib.sha256(file.read_bytes()).hexdigest()
    return out


def set_params(root: Path, overrides: dict[str, Any]) -> None:
    """Deep-merge `overrides` into root/params.yaml."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())

    def merge(base: dict[str, Any], new: dict[str, Any]) -> None:
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value

    merge(params, overrides)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def tiny_preset(root: Path, name: str, train: dict[str, Any]) -> Path:
    """presets/NAME.yaml with `train` merged in, written beside it as tiny_NAME.yaml."""
    preset = yaml.safe_load((root / "presets" / f"{name}.yaml").read_text())
    preset.setdefault("train", {}).update(train)
    path = root / f"tiny_{name}.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


def run(
    root: Path, *args: str, check: bool = True, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(args),
        cwd=root,
        env=clean_env(root, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A fresh copy of the project with shrunken training params."""
    root = copy_project(tmp_path / "project")
    set_params(root, {"train": FAST_TRAIN})
    yield root


@pytest.fixture(scope="session")
def pipeline_done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One shrunken `dvc repro` shared by read-only tests (a session-scoped project copy).

    Under xdist each worker has its own session: the first worker to get here runs the pipeline
    once, in the run's common temp directory under a file lock, and every worker gets its own
    copy of the result (so no two workers ever run DVC in the same checkout).
    """
    mine = tmp_path_factory.mktemp("shared") / "project"
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: build in place
        root = copy_project(mine)
        set_params(root, {"train": FAST_TRAIN})
        run(root, "dvc", "repro")
        return root
    from filelock import FileLock

    common = tmp_path_factory.getbasetemp().parent  # this run's directory, shared by workers
    built, done = common / "pipeline_done", common / "pipeline_done.ok"
    with FileLock(str(common / "pipeline_done.lock")):
        if not done.exists():
            shutil.rmtree(built, ignore_errors=True)  # a worker that died half-way
            copy_project(built)
            set_params(built, {"train": FAST_TRAIN})
            run(built, "dvc", "repro")
            done.touch()
    shutil.copytree(built, mine, symlinks=True)
    return mine


@contextmanager
def mlflow_server(
    backend_uri: str, artifacts: Path, log_path: Path, *, workers: int = 1
) -> Iterator[str]:
    """A real `mlflow server` on a free loopback port; yields its URL, stops it by PID."""
    port = free_port()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                backend_uri,
                "--artifacts-destination",
                str(artifacts),
                "--workers",
                str(workers),
            ],
            cwd=log_path.parent,
            env=clean_env(log_path.parent, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.5)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextmanager
def neuroflow_server(root: Path, *args: str, log_name: str = "serve.log") -> Iterator[str]:
    """`neuroflow serve ARGS` in `root` on a free loopback port; yields its URL once /ping
    answers, stops it by PID. Its output goes to root/`log_name`."""
    import httpx

    port = free_port()
    log_path = root / log_name
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(BIN / "neuroflow"), "serve", "--port", str(port), *args],
            cwd=root,
            env=clean_env(root),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, f"server exited: {log_path.read_text()[-3000:]}"
                try:
                    if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"no /ping: {log_path.read_text()[-3000:]}"
                time.sleep(0.2)
            yield url
        finally:
            stop_process(proc, timeout=15)
