"""Hand a stage command that DVC runs, or a short command typed by hand, to a warm server.

The server forks a process that takes this one's arguments, folder, environment, umask and
standard streams (passed as file descriptors), so the stage writes to the same terminal or
pipe and sees the same environment as if it ran here. Signals sent here are forwarded to it
(Ctrl-Z stops both, and `fg`/`bg` continue both);
if this process is killed outright, the forked stage kills itself (it watches the connection).
The exit status comes back here: a stage killed by a signal makes this process die of the
same signal. Where no server is ready, the stage runs here as usual and a server is started in
the background for the next stage. A command typed by hand (`QUICK`) uses a server that is
ready already, and never starts one: where none is, it runs here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from neuroflow.warm import registry

STAGES = frozenset({"check", "ingest", "validate", "preprocess", "train", "evaluate", "export"})
# Stages that import little (under 0.7 s here): while the server is still importing (and
# answers only between two modules, up to 3 s apart), they are quicker on their own.
LIGHT = frozenset({"check", "ingest", "preprocess"})
# Commands typed by hand whose own work is short next to their imports (MLflow, torch, pandas,
# onnxruntime: 2-3 s here): they start no processes and hold no terminal. Stage commands typed
# by hand, and the long-running ones (serve, tune, cv), run in their own process.
QUICK = frozenset({"promote", "rollback", "promotions", "predict", "show-metrics", "profile"})
# Set in the processes torchrun starts: each rank is a process of its own.
_RANK_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)
# The protocol: the client sends HEADER (the JSON request's length), the request and its fds
# 0, 1, 2; the server answers MESSAGEs: (b"P", forked pid), then (b"S", status), or (b"R", 0).
HEADER = struct.Struct("!I")
MESSAGE = struct.Struct("!ci")


def entry() -> None:
    """The `neuroflow` command. A stage DVC runs goes to the project's warm server when one
    listens; anything else (and a stage no server takes) runs in this process. Decided before
    the CLI is imported: a stage the server runs costs this process no import but this one."""
    if eligible(sys.argv):
        code = run_warm(sys.argv, start="DVC_STAGE" in os.environ)
        if code is not None:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            os._exit(code)
    from neuroflow.cli import main

    main()


def eligible(argv: list[str], environ: Mapping[str, str] = os.environ) -> bool:
    """A pipeline stage that DVC runs (DVC sets DVC_STAGE for each stage command), with no
    option but the params file; or, outside DVC, a `QUICK` command."""
    if any(k in environ for k in _RANK_ENV) or not registry.settings(environ).enabled:
        return False
    if len(argv) < 2:
        return False
    if "DVC_STAGE" not in environ:
        return argv[1] in QUICK
    if argv[1] not in STAGES:
        return False
    rest = argv[2:]
    return (
        rest == []
        or (len(rest) == 2 and rest[0] in ("-p", "--params"))
        or (len(rest) == 1 and rest[0].startswith("--params="))
    )


def run_warm(argv: list[str], *, start: bool = True) -> int | None:
    """The command's exit code from a warm server, or None: run it in this process. `start`:
    where no server is ready, start one for the next command (stages); else use a ready one
    only (commands typed by hand: one command is no reason for a server's imports)."""
    config = registry.settings()
    try:
        key = registry.server_key()
        ready = registry.is_ready(config.directory, key)
        if not (ready or start):
            return None
        importing = argv[1] in LIGHT and not ready
        conn = None if importing else _connect(registry.socket_path(config.directory, key))
        if conn is None:
            if start:
                registry.request_start(key, config)  # nothing to do if one is starting already
            return None
    except OSError:
        return None  # no registry folder, no socket: the stage runs here, as without servers
    with conn:
        return _delegate(conn, key, argv)


def _connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        conn.close()
        return None
    return conn


def _standard_fds() -> list[int]:
    """0, 1, 2, with /dev/null standing in for a closed one (as a child process would see)."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


def _delegate(conn: socket.socket, key: str, argv: list[str]) -> int | None:
    umask = os.umask(0)
    os.umask(umask)
    request = {
        "key": key,
        "argv": argv,
        "cwd": str(Path.cwd()),
        "env": dict(os.environ),
        "umask": umask,
    }
    payload = json.dumps(request).encode()
    # A Ctrl-Z before the forked pid is known waits for it (else this process would stop alone).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTSTP})
    try:
        socket.send_fds(conn, [HEADER.pack(len(payload)) + payload], _standard_fds())
        child = 0
        with contextlib.suppress(ConnectionError):  # a server closing as we connected
            for kind, value in _messages(conn):
                if kind == b"R":
                    return None  # the server is stopping or stale: run here
                if kind == b"P":
                    child = value
                    forward = functools.partial(_forward, child)
                    for signum in _FORWARDED:
                        signal.signal(signum, forward)
                    signal.signal(signal.SIGTSTP, functools.partial(_suspend, child))
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTSTP})
                elif kind == b"S":
                    return _exit_code(value)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTSTP})
    if not child:
        return None  # the server went away before it forked: nothing has run yet
    sys.stderr.write(
        "neuroflow: the warm server stopped before reporting the command's exit status\n"
    )
    return 1


def _messages(conn: socket.socket) -> Iterator[tuple[bytes, int]]:
    """Messages from the server, as they come."""
    buffer = b""
    while True:
        chunk = conn.recv(64)
        if not chunk:
            return
        buffer += chunk
        while len(buffer) >= MESSAGE.size:
            kind, value = MESSAGE.unpack(buffer[: MESSAGE.size])
            buffer = buffer[MESSAGE.size :]
            yield kind, value


def _forward(child: int, signum: int, _frame: object) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signum)


def _suspend(child: int, _signum: int, _frame: object) -> None:
    """Ctrl-Z (SIGTSTP): stop the forked process, then this one, as job control stops a
    process of its own; `fg`/`bg` continue this one (SIGCONT), and it continues the other."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signal.SIGSTOP)
    signal.signal(signal.SIGTSTP, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTSTP)  # stopped here until SIGCONT
    signal.signal(signal.SIGTSTP, functools.partial(_suspend, child))
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signal.SIGCONT)


def _exit_code(status: int) -> int:
    """A negative status is death by that signal: this process dies of it too."""
    if status >= 0:
        return status
    signum = -status
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return 128 + signum  # a signal that does not end a process
