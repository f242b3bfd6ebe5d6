"""Another process holding SQLite's EXCLUSIVE lock on a database: a busy MLflow store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.write("release\n")
            proc.stdin.flush()
        proc.wait(timeout=30)
