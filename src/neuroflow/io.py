"""Atomic file writes: a reader never sees a half-written file, a crash leaves the old one."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@functools.cache
def _file_mode() -> int:
    """The mode `open()` gives a new file (0o666 less the umask); mkstemp's is 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(target: str | Path, *, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename.

    `exclusive`: link it in instead, only where no file is; FileExistsError leaves the one
    there (made meanwhile by another process) as it is.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.chmod(_file_mode())
        if exclusive:
            os.link(tmp, target)
        else:
            tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | Path, obj: Any) -> None:
    # allow_nan=False: NaN is not JSON, and DVC/MLflow readers would choke on it later.
    # Streamed: json.dumps with an indent holds every chunk of a big document before joining.
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, allow_nan=False)
        fh.write("\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_with(target: str | Path, writer: Callable[[Path], None]) -> None:
    """Atomically write `target` with a library writer that takes a path (Parquet, safetensors)."""
    with atomic_path(target) as tmp:
        writer(tmp)
