"""The `neuroflow` entry point ends its process without module teardown, and loses nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Registers an exit handler, then runs the real entry point: the handler must still run, and the
# exit status must be the command's.
PROBE = """
import atexit, sys
atexit.register(lambda: print("exit handler ran", flush=True))
sys.argv = ["neuroflow", *sys.argv[1:]]
from neuroflow.cli import main
main()
"""


def _neuroflow(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_success_runs_exit_handlers_and_exits_zero(tmp_path: Path) -> None:
    proc = _neuroflow(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "ingest" in proc.stdout and proc.stdout.rstrip().endswith("exit handler ran")


def test_failure_keeps_its_exit_status_and_message(tmp_path: Path) -> None:
    proc = _neuroflow(tmp_path, "ingest", "--params", "missing.yaml")
    assert proc.returncode not in (0, None), proc.stdout
    assert "missing.yaml" in proc.stderr
    assert "exit handler ran" in proc.stdout


def test_usage_error_exits_two(tmp_path: Path) -> None:
    proc = _neuroflow(tmp_path, "no-such-command")
    assert proc.returncode == 2
    assert "exit handler ran" in proc.stdout


def test_invalid_params_exit_two_naming_the_key_without_a_traceback(tmp_path: Path) -> None:
    # config.ParamsError is no errors.NeuroflowError (config.py imports nothing of the package):
    # the CLI's guard still gives its one message and the config exit status.
    (tmp_path / "params.yaml").write_text("train:\n  lr: -1\n")
    proc = _neuroflow(tmp_path, "check")
    assert proc.returncode == 2, proc.stderr
    assert "train.lr: got -1" in proc.stderr and "Traceback" not in proc.stderr
