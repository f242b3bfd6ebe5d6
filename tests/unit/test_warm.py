"""Warm stage servers without starting one: which commands go to a server, what a server's key
covers, and when a new server may start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from neuroflow.warm import client, registry

DVC = {"DVC_STAGE": "train", "DVC_ROOT": "/p"}


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["neuroflow", "train"], DVC, True),
        (["neuroflow", "export", "--params", "p.yaml"], DVC, True),
        (["neuroflow", "export", "-p", "p.yaml"], DVC, True),
        (["neuroflow", "evaluate", "--params=p.yaml"], DVC, True),
        (["neuroflow", "train"], {}, False),  # a stage typed by hand: runs here
        (["neuroflow", "promote", "--dry-run"], {}, True),  # a short command: a ready server
        (["neuroflow", "predict", "-i", "rows.csv", "-o", "out.csv"], {}, True),
        (["neuroflow", "show-metrics"], {}, True),
        (["neuroflow", "promote"], {"NEUROFLOW_WARM": "0"}, False),
        (["neuroflow", "serve"], {}, False),  # long-running: its own process
        (["neuroflow", "tune"], {}, False),
        (["neuroflow", "--help"], {}, False),
        (["neuroflow", "train"], {**DVC, "NEUROFLOW_WARM": "0"}, False),
        (["neuroflow", "train"], {**DVC, "NEUROFLOW_WARM": "off"}, False),
        (["neuroflow", "train", "--nproc", "2"], DVC, False),  # re-executes under torchrun
        (["neuroflow", "train"], {**DVC, "WORLD_SIZE": "2", "RANK": "1"}, False),
        (["neuroflow", "-v", "train"], DVC, False),
        (["neuroflow", "promote"], DVC, False),
        (["neuroflow"], DVC, False),
    ],
)
def test_stages_that_dvc_runs_and_short_commands_go_to_a_server(
    argv: list[str], environ: dict[str, str], expected: bool
) -> None:
    assert client.eligible(argv, environ) is expected


def test_the_key_covers_the_import_environment_and_every_package_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "neuroflow"
    shutil.copytree(registry.package_dir(), package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(registry, "package_dir", lambda: package)
    env = {"PATH": "/bin", "OMP_NUM_THREADS": "2"}
    key = registry.server_key(env)
    assert registry.server_key(env) == key
    assert len(key) == 16
    assert registry.server_key({**env, "OMP_NUM_THREADS": "1"}) != key
    assert registry.server_key({**env, "PYTHONPATH": "/x"}) != key
    # Read when a stage runs, not when it imports (the project, its store): the same server.
    assert registry.server_key({**env, "MLFLOW_TRACKING_URI": "sqlite://", "DVC_ROOT": "/b"}) == key
    # What a process that imported scikit-learn and torch._inductor passes on: the same server,
    # unless a value differs from the one the import sets.
    imported = {"KMP_DUPLICATE_LIB_OK": "True", "KMP_INIT_AT_FORK": "FALSE"}
    assert registry.server_key({**env, **imported, "TORCHINDUCTOR_CACHE_DIR": "/c"}) == key
    # The flows set PYTHONUNBUFFERED; each forked stage sets its own buffering from it.
    assert registry.server_key({**env, "PYTHONUNBUFFERED": "1"}) == key
    assert registry.server_key({**env, "KMP_INIT_AT_FORK": "TRUE"}) != key
    source = package / "stages" / "train.py"
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert registry.server_key(env) != key


def _record(directory: Path, key: str, pid: int, state: str) -> None:
    registry.write_record(directory, key, pid=pid, python=f"/{key}", state=state)


def test_one_server_imports_at_a_time_and_none_twice_for_an_environment(tmp_path: Path) -> None:
    config = registry.settings({registry.DIR_ENV: str(tmp_path / "warm")})
    directory = registry.ensure_directory(config.directory)
    _record(directory, "mine", os.getpid(), "starting")
    assert "for this environment" in registry.request_start("mine", config)
    assert "another server" in registry.request_start("other", config)
    # Nothing was started: the only records are the ones written here.
    assert [s.key for s in registry.live_servers(directory)] == ["mine"]


def test_records_of_dead_servers_are_swept(tmp_path: Path) -> None:
    directory = registry.ensure_directory(tmp_path / "warm")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    _record(directory, "gone", int(dead.stdout), "ready")
    registry.socket_path(directory, "gone").write_text("")
    _record(directory, "here", os.getpid(), "ready")
    assert [s.key for s in registry.live_servers(directory)] == ["here"]
    assert sorted(p.name for p in directory.iterdir()) == ["here.json"]


def test_the_least_recently_used_ready_servers_make_room(tmp_path: Path) -> None:
    directory = registry.ensure_directory(tmp_path / "warm")
    for age, (key, state) in enumerate([("old", "ready"), ("new", "ready"), ("busy", "starting")]):
        _record(directory, key, os.getpid(), state)
        os.utime(registry.record_path(directory, key), (1000 + age, 1000 + age))
    servers = registry.live_servers(directory)
    assert [s.key for s in registry.to_evict(servers, max_servers=3)] == ["old"]
    assert [s.key for s in registry.to_evict(servers, max_servers=2)] == ["old", "new"]
    assert registry.to_evict(servers, max_servers=4) == []


def test_the_registry_folder_is_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(PermissionError, match="0700"):
        registry.ensure_directory(shared)
    assert registry.ensure_directory(tmp_path / "own").stat().st_mode & 0o777 == 0o700


def test_a_stage_command_with_no_server_runs_here(tmp_path: Path) -> None:
    """A registry folder that cannot be made: the command still runs, in its own process."""
    blocked = tmp_path / "file"
    blocked.write_text("")
    env = {**os.environ, "DVC_STAGE": "check", registry.DIR_ENV: str(blocked / "warm")}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "neuroflow"), "check", "--params", "missing.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "missing.yaml" in proc.stderr
    assert json.dumps(proc.stderr).count("Traceback") == 0


def test_a_command_typed_by_hand_uses_only_a_ready_server_and_starts_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    directory = registry.ensure_directory(tmp_path / "warm")
    monkeypatch.setenv(registry.DIR_ENV, str(directory))
    key = registry.server_key()
    assert client.run_warm(["neuroflow", "promote"], start=False) is None
    assert sorted(p.name for p in directory.iterdir()) == []  # no server was asked for
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as importing:
        importing.bind(str(registry.socket_path(directory, key)))
        importing.listen(1)
        _record(directory, key, os.getpid(), "starting")
        # Still importing: not waited for (a stage would queue for it).
        assert client.run_warm(["neuroflow", "promote"], start=False) is None
        assert [server.key for server in registry.live_servers(directory)] == [key]


def test_a_light_stage_runs_here_while_the_server_is_still_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    directory = registry.ensure_directory(tmp_path / "warm")
    monkeypatch.setenv(registry.DIR_ENV, str(directory))
    key = registry.server_key()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as importing:
        # Listening, but busy importing: it would answer only between two modules.
        importing.bind(str(registry.socket_path(directory, key)))
        importing.listen(1)
        _record(directory, key, os.getpid(), "starting")
        assert not registry.is_ready(directory, key)
        assert client.run_warm(["neuroflow", "check"]) is None  # at once, not connected
        _record(directory, key, os.getpid(), "ready")
        assert registry.is_ready(directory, key)


@pytest.mark.parametrize("value", ["1", "true", "On", " yes ", "0", "off", "no", ""])
def test_a_forked_stage_reads_neuroflow_verbose_as_the_cli_does(value: str) -> None:
    import logging

    from typer.testing import CliRunner

    from neuroflow.cli import app
    from neuroflow.warm.server import _verbose

    level = logging.getLogger("neuroflow").level
    try:
        # `--help` of a subcommand still runs the app's callback, which sets the log level.
        env = {"NEUROFLOW_VERBOSE": value}
        result = CliRunner().invoke(app, ["show-metrics", "--help"], env=env)
        assert result.exit_code == 0, result.output
        cli_verbose = logging.getLogger("neuroflow").level == logging.DEBUG
    finally:
        logging.getLogger("neuroflow").setLevel(level)
    assert _verbose(value) is cli_verbose


@pytest.mark.parametrize("server_unbuffered", [False, True])
@pytest.mark.parametrize("stage_unbuffered", [False, True])
def test_a_forked_stage_buffers_its_output_as_its_own_environment_says(
    server_unbuffered: bool, stage_unbuffered: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the server started with, a stage under PYTHONUNBUFFERED (the flows' stages) hands
    each line on at once, and one without it holds stdout until exit, as a new process would
    off a terminal; stderr goes line by line either way."""
    import io

    from neuroflow.warm.server import buffer_as_a_new_process

    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)

    def stream(fd: int) -> io.TextIOWrapper:  # as the interpreter opened the server's own
        raw = io.FileIO(fd, "w")
        if server_unbuffered:
            return io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
        return io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8", line_buffering=False)

    def arrived() -> bytes:
        try:
            return os.read(read_end, 4096)
        except BlockingIOError:
            return b""

    out, err = stream(write_end), stream(os.dup(write_end))
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    try:
        buffer_as_a_new_process({"PYTHONUNBUFFERED": "1"} if stage_unbuffered else {})
        out.write("epoch 1/3\n")
        assert arrived() == (b"epoch 1/3\n" if stage_unbuffered else b"")
        err.write("a warning\n")
        assert arrived() == b"a warning\n"
        out.flush()  # at exit
        assert arrived() == (b"" if stage_unbuffered else b"epoch 1/3\n")
    finally:
        out.close()
        err.close()
        os.close(read_end)
