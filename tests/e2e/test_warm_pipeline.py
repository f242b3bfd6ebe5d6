"""Warm stage servers through the real pipeline: a stage forked from the environment's server
gives the same outputs as one that imports for itself, serves another project too, keeps the
exit code and the message of a failing stage, dies when DVC is killed outright, and the server
exits when idle or stopped. Short commands typed by hand use a ready server the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from benchmarks.common import own_warm_servers
from tests.conftest import BIN, clean_env, run, set_params, start_dvc, tree_hashes

from neuroflow.warm import registry

pytestmark = pytest.mark.slow

OUTPUTS = ("artifacts/model", "artifacts/plots/test", "artifacts/report")  # metrics: below
FORKED = "forked by warm server"


def _server(root: Path, directory: Path) -> registry.Server | None:
    """The server that stages run in `root` would go to."""
    key = registry.server_key(clean_env(root))
    found = [s for s in registry.live_servers(directory) if s.key == key]
    return found[0] if found else None


def _ready_server(root: Path, directory: Path, timeout_s: float = 300) -> registry.Server:
    """The project's server once it listens, started as a stage command DVC runs starts it."""
    deadline = time.monotonic() + timeout_s
    while True:
        server = _server(root, directory)
        if server is not None and server.state == "ready":
            return server
        if server is None:
            run(root, "neuroflow", "check", DVC_STAGE="check")  # runs here, starts the server
        assert time.monotonic() < deadline, "the warm server did not become ready"
        time.sleep(0.2)


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _wait_no_children(pid: int, why: str) -> None:
    deadline = time.monotonic() + 60
    while _children(pid):
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


@pytest.fixture(scope="module")
def warm(pipeline_done: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warm]:
    """A copy of the shared run with its own registry and a ready server."""
    root = tmp_path_factory.mktemp("warm") / "project"
    shutil.copytree(pipeline_done, root, symlinks=True)
    # Its own registry: no other test's server start can evict this one.
    with own_warm_servers(os.environ) as directory:
        yield Warm(root, directory, _ready_server(root, directory))


@dataclass(frozen=True)
class Warm:
    root: Path
    directory: Path
    server: registry.Server


def test_a_warm_stage_gives_the_outputs_of_a_cold_one(warm: Warm, tmp_path: Path) -> None:
    project, server = warm.root, warm.server
    cold = tmp_path / "cold"
    shutil.copytree(project, cold, symlinks=True)
    experiment = ("dvc", "exp", "run", "-S", "train.lr=0.002")
    run(cold, *experiment, NEUROFLOW_WARM="0")

    proc = run(project, *experiment, NEUROFLOW_VERBOSE="1")
    output = proc.stdout + proc.stderr
    for stage in ("check", "train", "evaluate", "export"):
        assert f"neuroflow.warm: {stage} {FORKED} {server.pid}" in output, output[-3000:]
    assert tree_hashes(project, OUTPUTS) == tree_hashes(cold, OUTPUTS)
    warm_metrics = json.loads((project / "artifacts/metrics.json").read_text())
    cold_metrics = json.loads((cold / "artifacts/metrics.json").read_text())
    assert warm_metrics == {**cold_metrics, "run_key": warm_metrics["run_key"]}
    # The run record is the stage's own: a new key, logged to MLflow by the forked export.
    assert warm_metrics["run_key"] != cold_metrics["run_key"]
    assert _children(server.pid) == []


def test_a_failing_warm_stage_keeps_its_exit_code_and_message(warm: Warm) -> None:
    project, server = warm.root, warm.server
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["lr"] = -1.0
    (project / "bad.yaml").write_text(yaml.safe_dump(params))
    stage = ("neuroflow", "check", "--params", "bad.yaml")
    local = run(
        project, *stage, check=False, NEUROFLOW_WARM="0", DVC_STAGE="check", NEUROFLOW_VERBOSE="1"
    )
    forked = run(project, *stage, check=False, DVC_STAGE="check", NEUROFLOW_VERBOSE="1")
    assert f"{FORKED} {server.pid}" in forked.stderr
    assert local.returncode == forked.returncode == 2
    assert "train.lr" in local.stderr
    message = [line for line in local.stderr.splitlines() if "train.lr" in line]
    assert message and all(line.split(" ", 1)[1] in forked.stderr for line in message)


def test_short_commands_typed_by_hand_use_the_ready_server(warm: Warm, tmp_path: Path) -> None:
    """promote --dry-run, predict, show-metrics and a refused rollback: forked from the ready
    server, with the output, files and exit code of the same command run in its own process."""
    project, server = warm.root, warm.server
    predict = ("neuroflow", "predict", "-i", "data/raw/test.parquet", "--alias", "challenger")
    commands = {
        "dry_run": ("neuroflow", "promote", "--dry-run", "--json"),
        "predict": (*predict, "-o", "{out}"),
        "metrics": ("neuroflow", "show-metrics"),
        "rollback": ("neuroflow", "rollback", "--reason", "no champion yet"),
    }
    seen: dict[str, dict[str, subprocess.CompletedProcess[str]]] = {}
    for mode, env in (("local", {"NEUROFLOW_WARM": "0"}), ("forked", {})):
        for name, args in commands.items():
            out = str(tmp_path / f"{mode}.csv")
            args = tuple(a.format(out=out) for a in args)
            proc = run(project, *args, check=False, NEUROFLOW_VERBOSE="1", **env)
            seen.setdefault(name, {})[mode] = proc
            assert (f"{FORKED} {server.pid}" in proc.stderr) is (mode == "forked"), proc.stderr
    for name, procs in seen.items():
        local, forked = procs["local"], procs["forked"]
        assert local.returncode == forked.returncode, (name, local.stderr, forked.stderr)
        assert local.stdout == forked.stdout, name
    assert seen["rollback"]["forked"].returncode not in (0, 3)
    assert "champion" in seen["rollback"]["forked"].stderr
    assert json.loads(seen["dry_run"]["forked"].stdout)["decision"] == "dry_run"
    local_rows = (tmp_path / "local.csv").read_bytes()
    assert local_rows == (tmp_path / "forked.csv").read_bytes() and local_rows
    assert _children(server.pid) == []


def test_another_project_in_this_environment_uses_the_same_server(
    warm: Warm, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(warm.root, other, symlinks=True)
    proc = run(other, "neuroflow", "check", DVC_STAGE="check", NEUROFLOW_VERBOSE="1")
    assert f"check {FORKED} {warm.server.pid}" in proc.stderr
    assert (other / "data/checked.txt").exists()
    assert [s.pid for s in registry.live_servers(warm.directory)] == [warm.server.pid]


def test_killing_dvc_outright_kills_the_forked_stage(warm: Warm, tmp_path: Path) -> None:
    project, server = warm.root, warm.server
    shutil.copy(project / "params.yaml", tmp_path / "params.yaml")
    set_params(project, {"train": {"epochs": 100000, "patience": 100000}})
    proc = start_dvc(project, "repro", "--single-item", "--force", "train")
    try:
        deadline = time.monotonic() + 120
        while not _children(server.pid):  # the forked train stage
            assert proc.poll() is None, "dvc ended before the stage started"
            assert time.monotonic() < deadline, "no stage was forked"
            time.sleep(0.05)
        stage = _children(server.pid)[0]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    _wait_no_children(server.pid, f"stage {stage} outlived the killed dvc")
    assert _server(project, warm.directory) is not None  # the server itself serves on
    shutil.copy(tmp_path / "params.yaml", project / "params.yaml")


def _state(pid: int) -> str:
    """The process's state letter (R, S, T = stopped, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _wait_state(pid: int, stopped: bool, what: str) -> None:
    deadline = time.monotonic() + 60
    while (_state(pid) == "T") is not stopped:
        assert time.monotonic() < deadline, f"{what} {'not ' if stopped else ''}stopped"
        time.sleep(0.02)


def test_ctrl_z_and_sigterm_reach_the_forked_stage_and_end_the_command_alike(
    warm: Warm, tmp_path: Path
) -> None:
    project, server = warm.root, warm.server
    shutil.copy(project / "params.yaml", tmp_path / "params.yaml")
    set_params(project, {"train": {"epochs": 100000, "patience": 100000}})
    proc = subprocess.Popen(
        [str(BIN / "neuroflow"), "train"],
        cwd=project,
        env=clean_env(project, DVC_STAGE="train"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        process_group=0,  # a job of its own, as a shell starts it (not orphaned: it can stop)
    )
    try:
        deadline = time.monotonic() + 120
        while not _children(server.pid):
            assert proc.poll() is None, "the command ended before its stage started"
            assert time.monotonic() < deadline, "no stage was forked"
            time.sleep(0.05)
        (stage,) = _children(server.pid)
        # Ctrl-Z stops the command and its stage; `fg` (SIGCONT) continues both.
        proc.send_signal(signal.SIGTSTP)
        _wait_state(proc.pid, True, "the command")
        _wait_state(stage, True, "the forked stage")
        proc.send_signal(signal.SIGCONT)
        _wait_state(proc.pid, False, "the command")
        _wait_state(stage, False, "the forked stage")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == -signal.SIGTERM  # as a stage killed by it here
    finally:  # a failure must not leave the 100000-epoch stage running: killed outright, the
        proc.kill()  # command closes its connection and the forked stage kills itself
        proc.wait()
        for pid in _children(server.pid):  # once it runs again, if it was left stopped
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    _wait_no_children(server.pid, "the forked stage outlived SIGTERM")
    shutil.copy(tmp_path / "params.yaml", project / "params.yaml")


def test_warm_stop_stops_this_projects_server(warm: Warm) -> None:
    proc = run(warm.root, "neuroflow", "warm", "stop")
    assert "stopped 1 server(s)" in proc.stdout
    assert _server(warm.root, warm.directory) is None
    assert registry.wait_stopped([warm.server], timeout_s=30) == []
    assert not registry.socket_path(warm.directory, warm.server.key).exists()


def test_a_server_exits_when_idle_and_leaves_no_files(pipeline_done: Path, tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(pipeline_done, root, symlinks=True)
    with own_warm_servers(os.environ, **{registry.IDLE_ENV: "1"}) as directory:
        run(root, "neuroflow", "check", DVC_STAGE="check")  # runs here, starts the server
        (server,) = registry.live_servers(directory)
        # It imports, listens, and after a second without a stage exits: a crash would leave
        # its log behind, a clean exit removes its socket, record and log.
        assert registry.wait_stopped([server], timeout_s=300) == []
        assert sorted(p.name for p in directory.iterdir()) == ["spawn.lock"]
