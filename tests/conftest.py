"""Shared fixtures: a throw-away copy of the project, shrunken params, CLI runners."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

# What a fresh clone holds, as a new git repo: the one copy, shared with the benchmarks.
from benchmarks.common import copy_project as copy_project
from benchmarks.common import free_port as free_port  # procs.py and tests import it from here
from benchmarks.common import stop_process

from neuroflow.io import write_json, write_text
from neuroflow.warm import registry

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# A test body shared by several test files: its asserts explain failures like a test's own.
pytest.register_assert_rewrite("tests.e2e.own_csv")

# Fast settings for tests: the real config, shrunk (few epochs, CPU, deterministic).
FAST_TRAIN = {"epochs": 12, "patience": 5, "device": "cpu"}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` hands out whole files (xdist --dist loadfile --no-loadscope-reorder) in this
    order: files holding slow tests first, each kept together, so the many quick ones fill the
    workers' gaps at the end instead of one long test ending the run alone. Among the slow,
    those that start from the shared pipeline run (`shared_run`) come after the rest, which
    run while it is built."""

    def file(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    slow = {file(item) for item in items if item.get_closest_marker("slow")}
    shared = {file(item) for item in items if "shared_run" in getattr(item, "fixturenames", ())}
    first = {name: index for index, name in reversed(list(enumerate(map(file, items))))}
    items.sort(key=lambda item: (file(item) not in slow, file(item) in shared, first[file(item)]))


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


def start_dvc(root: Path, *args: str) -> subprocess.Popen[bytes]:
    """`dvc ARGS` in `root`, in a session of its own (so a test can kill its whole group)."""
    return subprocess.Popen(
        [str(BIN / "dvc"), *args],
        cwd=root,
        env=clean_env(root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


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


# The default pipeline, shrunk, run once per test session (all xdist workers together) in the
# background from the session's start: the tests that need a finished pipeline start from a copy
# of it instead of their own cold `dvc repro`. Its environment carries a secret that no run
# record may hold (tests/e2e/test_untrusted.py), and its log is what a user sees
# (tests/stage/test_dvc_views.py).
SECRET_VAR = "NEUROFLOW_TEST_SECRET"
_SHARED = "pipeline_done"
_SHARED_WAIT_S = 1200.0


@dataclass(frozen=True)
class SharedRun:
    """This worker's copy of the shared pipeline run, with what the run printed."""

    root: Path
    log: str  # `dvc repro`'s stdout and stderr, interleaved as on a terminal
    secret: str  # the value of SECRET_VAR in the run's environment


def combined(root: Path, *args: str, timeout: float = 600, **env: str) -> str:
    """Run to success; stdout and stderr interleaved as a terminal would show them."""
    proc = subprocess.run(
        list(args),
        cwd=root,
        env=clean_env(root, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}"
    return proc.stdout


def shared_dir(factory: pytest.TempPathFactory) -> Path:
    """This run's temp directory common to all xdist workers (each has its own basetemp in it)."""
    base = factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


def _build_shared(common: Path) -> None:
    """Copy, shrink and `dvc repro`; then `<name>.json` (secret) or `<name>.failed` (why)."""
    try:
        root = copy_project(common / _SHARED)
        set_params(root, {"train": FAST_TRAIN})
        secret = f"s3cr3t-{uuid.uuid4().hex}"
        log = combined(root, "dvc", "repro", timeout=_SHARED_WAIT_S, **{SECRET_VAR: secret})
        (common / f"{_SHARED}.log").write_text(log)
        write_json(common / f"{_SHARED}.json", {"secret": secret})
    except Exception as exc:  # the waiting workers report it instead of timing out
        write_text(common / f"{_SHARED}.failed", f"{type(exc).__name__}: {exc}"[-6000:])


def _start_shared(common: Path) -> None:
    """Start the build in a thread of the first worker to get here (non-daemon: the worker
    does not exit half-way through a build that the others wait for)."""
    from filelock import FileLock

    with FileLock(str(common / f"{_SHARED}.lock")):
        started = common / f"{_SHARED}.pid"
        if started.exists():
            return
        started.write_text(str(os.getpid()))
    threading.Thread(target=_build_shared, args=(common,), name="shared-pipeline").start()


@pytest.fixture(scope="session", autouse=True)
def _warm_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The warm stage servers the tests' pipelines start register in this run's own folder
    (shared by the workers, so the per-user cap holds for the run, and a developer's own
    servers are left alone); those still alive are stopped when the last worker using them
    ends (the first to run out of tests would pull them from under the others' last tests,
    which would then run cold and start servers anew)."""
    from filelock import FileLock

    common = shared_dir(tmp_path_factory)
    directory, users = common / "warm", common / "warm-users"
    os.environ[registry.DIR_ENV] = str(directory)
    users.mkdir(exist_ok=True)
    mine = users / str(os.getpid())
    mine.touch()
    yield directory
    with FileLock(str(common / "warm-users.lock")):
        mine.unlink()
        # A worker that died without its teardown does not keep the servers up.
        if any(registry.alive(int(user.name)) for user in users.iterdir()):
            return
    registry.stop_servers(registry.live_servers(directory), timeout_s=60.0)


@pytest.fixture(scope="session", autouse=True)
def _run_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Per-user caches (the empty MLflow store new stores copy) live in this run's folder, never
    the developer's: each run makes them once, as a new user's first pipeline run does."""
    from neuroflow import store_seed

    directory = shared_dir(tmp_path_factory) / "cache"
    os.environ[store_seed.CACHE_ENV] = str(directory)
    return directory


@pytest.fixture(scope="session", autouse=True)
def _shared_pipeline_started(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Start the shared run as the session starts, if any selected test needs it, so it
    overlaps the tests that do not."""
    if any("shared_run" in getattr(item, "fixturenames", ()) for item in request.session.items):
        _start_shared(shared_dir(tmp_path_factory))


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> SharedRun:
    """One shrunken `dvc repro` of the default pipeline for the whole session; each worker
    gets its own copy (no two workers ever run DVC in the same checkout)."""
    common = shared_dir(tmp_path_factory)
    _start_shared(common)  # a no-op once started
    done, failed = common / f"{_SHARED}.json", common / f"{_SHARED}.failed"
    builder = int((common / f"{_SHARED}.pid").read_text())
    deadline = time.monotonic() + _SHARED_WAIT_S
    while not done.exists():
        assert not failed.exists(), f"the shared pipeline run failed:\n{failed.read_text()}"
        if builder != os.getpid() and not registry.alive(builder):
            pytest.fail(f"worker {builder} died while building the shared pipeline run")
        assert time.monotonic() < deadline, "the shared pipeline run did not finish"
        time.sleep(0.5)
    mine = tmp_path_factory.mktemp("shared") / "project"
    shutil.copytree(common / _SHARED, mine, symlinks=True)
    secret = json.loads(done.read_text())["secret"]
    return SharedRun(mine, (common / f"{_SHARED}.log").read_text(), secret)


@pytest.fixture(scope="session")
def pipeline_done(shared_run: SharedRun) -> Path:
    """This worker's copy of the shared shrunken run, for read-only tests (copy it to change it)."""
    return shared_run.root


@contextmanager
def mlflow_server(
    backend_uri: str, artifacts: Path, log_path: Path, *, workers: int = 1
) -> Iterator[str]:
    """A real `mlflow server` on a free loopback port; yields its URL, stops it by PID. A new
    SQLite backend starts as the pipeline's own new stores do (`store_seed`)."""
    from neuroflow import store_seed

    store_seed.seed(backend_uri)
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
            # No job runner: its eight extra interpreters (GenAI jobs, never used here) cost
            # ~30 CPU-s per server start and slowed the server's own start beside them.
            env=clean_env(
                log_path.parent,
                MLFLOW_DISABLE_TELEMETRY="true",
                DO_NOT_TRACK="true",
                MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
            ),
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


def run_tiny_preset(root: Path, name: str, train: dict[str, Any], timeout: float) -> str:
    """`neuroflow run-preset` in `root` of presets/NAME.yaml with `train` merged in (one CPU
    thread); its stdout."""
    tiny = tiny_preset(root, name, train)
    args = ("neuroflow", "run-preset", "--file", str(tiny))
    return run(root, *args, timeout=timeout, OMP_NUM_THREADS="1").stdout
