"""Another process holding SQLite's EXCLUSIVE lock on a database: a busy MLflow store."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# What neuroflow logs each time MLflow gave up on a locked store ("database is locked") and
# neuroflow's own retry takes over.
RETRY_LINE = "tracking store busy (database is locked), retry"

# Holds the lock until `seconds` pass or the test writes a line to its stdin.
HOLDER = """
import select, sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline and not select.select([sys.stdin], [], [], 0.05)[0]:
    pass
con.execute("COMMIT")
"""


def release(holder: subprocess.Popen[str]) -> None:
    """Ask the holder to commit (a no-op once it has, or is gone)."""
    if holder.poll() is None and holder.stdin is not None and not holder.stdin.closed:
        try:
            holder.stdin.write("release\n")
            holder.stdin.close()
        except BrokenPipeError:  # it ended between the check and the write
            pass


@contextmanager
def exclusive_lock(db: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holds an EXCLUSIVE lock on `db` for up to `seconds` (or until exit)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        release(proc)
        proc.wait(timeout=30)


def no_wait() -> bool:
    """The default `until` of `run_until_retried`: nothing else to wait for."""
    return True


def run_until_retried(
    holder: subprocess.Popen[str],
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    held_s: float = 25.0,
    until: Callable[[], bool] = no_wait,
) -> subprocess.CompletedProcess[str]:
    """Run `args` against the locked store; release the lock at the first RETRY_LINE the
    command logs once it has waited `held_s` seconds, past SQLite's 20 s busy timeout, and once
    `until()` holds (another command meant to fail on the lock has): neuroflow retried through
    MLflow's own wait, and its retry is what completes the command. (A fixed hold would have to
    outlast the command's start-up on a busy machine too.)"""
    start = time.monotonic()
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    out: list[str] = []
    drain = threading.Thread(target=lambda: out.extend(proc.stdout or ()), daemon=True)
    drain.start()
    watchdog = threading.Timer(timeout, proc.kill)  # a hung command fails instead of blocking
    watchdog.start()
    err: list[str] = []
    try:
        for line in proc.stderr:
            err.append(line)
            if RETRY_LINE in line and time.monotonic() - start >= held_s and until():
                release(holder)
        proc.wait()
        drain.join()
    finally:
        watchdog.cancel()
    assert proc.returncode != -9, f"{args} ran past {timeout} s:\n{''.join(err)[-3000:]}"
    return subprocess.CompletedProcess(args, proc.returncode, "".join(out), "".join(err))
