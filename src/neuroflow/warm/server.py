"""A warm server: import the stages' heavy modules once, then fork one process per stage
command of any project using this environment (`python -P -m neuroflow.warm.server KEY`,
started by `registry`).

The server itself runs no torch operation, opens no store and starts no thread, so a forked
process starts from a clean import state: the stage code in it is the same code a fresh
process would run. The server exits when it has been idle `NEUROFLOW_WARM_IDLE_S` seconds,
when its code or environment changes, or on SIGTERM (after its running stages end).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from neuroflow.warm import registry
from neuroflow.warm.client import HEADER, MESSAGE

log = logging.getLogger("neuroflow.warm")

# What the stages import lazily, in pipeline order. A module that fails to import here is
# imported (and fails, with its own message) in the stage that needs it.
PRELOAD = (
    "neuroflow.cli",
    "neuroflow.presets",  # the CLI's extensions, imported (not registered) here
    "neuroflow.registry.cli",
    "neuroflow.search.cli",
    "neuroflow.serving.cli",
    "neuroflow.warm.cli",
    "pandas",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "pyarrow.pandas_compat",
    "neuroflow.stages.check",
    "neuroflow.stages.ingest",
    "great_expectations",
    "neuroflow.validation.runner",
    "neuroflow.validation.drift",
    "neuroflow.stages.validate",
    "neuroflow.stages.preprocess",
    "torch",
    "torch._dynamo",  # imported by an optimizer's first call
    "torch._inductor.config",  # imported by torch.use_deterministic_algorithms
    "safetensors.numpy",
    "neuroflow.tracking",
    "neuroflow.training.engine",
    "neuroflow.training.distributed",
    "neuroflow.training.streaming",
    "neuroflow.stages.train",
    "neuroflow.models.store",
    "neuroflow.evaluation.curves",
    "neuroflow.evaluation.plots",
    "neuroflow.stages.evaluate",
    "mlflow",
    "mlflow.onnx",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "mlflow.store.model_registry.sqlalchemy_workspace_store",
    "mlflow.tracing.processor.otel",
    "alembic.command",
    "onnx",
    "onnxruntime",
    "torch.onnx._internal.torchscript_exporter.symbolic_opset20",
    "neuroflow.export.onnx_graph",
    "neuroflow.export.model_card",
    "neuroflow.registry.register",
    "neuroflow.stages.export",
)
_REQUEST_TIMEOUT_S = 30.0  # a client that connects and never sends: drop it, keep serving
_CODE_CHECK_S = 10.0


def preload(between: Callable[[], bool]) -> bool:
    """Import PRELOAD in order, calling `between` after each module (it serves the stages that
    arrived meanwhile: they start from what is imported so far). False if `between` said stop."""
    import matplotlib

    matplotlib.use("Agg")  # as evaluate sets it, before pyplot picks a backend
    for name in (*PRELOAD, "matplotlib.pyplot", "matplotlib.backends.backend_agg"):
        started = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as exc:  # the stage that needs it reports it
            log.warning("preload %s failed: %s", name, exc)
        log.debug("preload %s: %.2f s", name, time.perf_counter() - started)
        if not between():
            return False
    return True


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
    size = HEADER.size
    while len(data) < size or len(data) < size + HEADER.unpack(data[:size])[0]:
        chunk = conn.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the client closed before its request was complete")
        data += chunk
    return json.loads(data[size:]), list(fds)


def _become_stage(
    conn: socket.socket, request: dict[str, Any], fds: list[int], set_by_imports: dict[str, str]
) -> None:
    """In the forked process: take the client's streams, folder and environment, run the CLI."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        if fd > 2:
            os.close(fd)
    for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.set_wakeup_fd(-1)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update({**set_by_imports, **request["env"]})  # as after the imports in a new process
    os.umask(request["umask"])
    sys.argv = list(request["argv"])
    buffer_as_a_new_process(os.environ)

    def die_with_client() -> None:
        # The client never writes again: end of file means it is gone (killed outright).
        with contextlib.suppress(OSError):
            conn.recv(1)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=die_with_client, name="warm-client-watch", daemon=True).start()
    from neuroflow.cli import VERBOSE_ENV, main

    if _verbose(os.environ.get(VERBOSE_ENV, "")):
        sys.stderr.write(f"neuroflow.warm: {sys.argv[1]} forked by warm server {os.getppid()}\n")
    main()


def buffer_as_a_new_process(environ: Mapping[str, str]) -> None:
    """stdout and stderr buffered as in a new interpreter on these fds with this environment:
    stdout line by line on a terminal, else in blocks; stderr line by line. Under
    PYTHONUNBUFFERED (set by the flows, whose logs show stage output as it comes) stdout too
    hands on each line as it is written. The server's own start environment does not decide
    it, so PYTHONUNBUFFERED is not part of the server's key (`registry.server_key`)."""
    unbuffered = bool(environ.get("PYTHONUNBUFFERED"))
    for stream, line_buffered in ((sys.stdout, sys.stdout.isatty()), (sys.stderr, True)):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=line_buffered or unbuffered, write_through=unbuffered)


def _verbose(value: str) -> bool:
    """The verbose variable read as the CLI's `--verbose` reads it (click's boolean: on, yes, 1...);
    a value it rejects is the CLI's to report."""
    import click

    try:
        return bool(value.strip()) and bool(click.BOOL.convert(value, None, None))
    except click.BadParameter:
        return False


def _end_as_the_interpreter_would(code: object) -> None:
    """What a process's interpreter does at SystemExit: threading's exit hooks (which tell
    ThreadPoolExecutor workers to finish), join the other non-daemon threads, run the exit
    handlers, flush; then exit with the code (None is 0, a message is printed and is 1)."""
    import atexit

    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # the interpreter's own exit step
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code or 0)


def _status(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return -os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)


class Server:
    def __init__(self, key: str, config: registry.Settings) -> None:
        self.key, self.config = key, config
        # As the client saw it: imports set variables of their own (torch: CUDA_MODULE_LOADING).
        self.environ = dict(os.environ)
        self.directory = config.directory
        self.children: dict[int, socket.socket] = {}
        self.stopping = False
        self.listening = False
        self.last_active = time.monotonic()
        self.last_code_check = time.monotonic()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)  # SIGCHLD and SIGTERM end the wait in select at once
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)

    def _stop(self, *_: object) -> None:
        if not self.listening:
            raise SystemExit(0)  # nothing can have been forked yet: stop now
        self.stopping = True  # let the running stages end first (preloading stops too)

    def listen(self) -> None:
        path = registry.socket_path(self.directory, self.key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        self.listener.bind(str(tmp))
        self.listener.listen(16)
        tmp.replace(path)  # clients only ever see a listening socket
        self.listening = True

    def mark_ready(self) -> None:
        """Everything imported: the per-user start guard lets the next server import."""
        registry.write_record(
            self.directory, self.key, pid=os.getpid(), python=sys.prefix, state="ready"
        )

    def serve(self) -> None:
        while True:
            self._reap()
            if not self.children and self._should_exit():
                return
            self._wait_and_handle(timeout_s=1.0)

    def serve_pending(self) -> bool:
        """Between two preloaded modules: fork the stages waiting now, reap the ended ones.
        False once the server is asked to stop."""
        self._reap()
        self._wait_and_handle(timeout_s=0.0)
        return not self.stopping

    def _wait_and_handle(self, timeout_s: float) -> None:
        ready, _, _ = select.select([self.listener.fileno(), self.wake_r], [], [], timeout_s)
        if self.wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_r, 512)
        if self.listener.fileno() in ready:
            conn, _ = self.listener.accept()
            self._handle(conn)

    def _should_exit(self) -> bool:
        if self.stopping:
            return True
        if time.monotonic() - self.last_active > self.config.idle_s:
            log.info("idle for %.0f s: exiting", self.config.idle_s)
            return True
        if time.monotonic() - self.last_code_check > _CODE_CHECK_S:
            self.last_code_check = time.monotonic()
            if registry.server_key(self.environ) != self.key:
                log.info("the code or the environment changed: exiting")
                return True
        return False

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(_REQUEST_TIMEOUT_S)
        try:
            request, fds = _receive(conn)
        except (OSError, ValueError, ConnectionError) as exc:
            log.warning("dropped a request: %s", exc)
            conn.close()
            return
        conn.settimeout(None)
        # A thread would not survive the fork (a lock it holds stays held): refuse, run there.
        refuse = self.stopping or threading.active_count() != 1
        if refuse or request.get("key") != self.key:
            with contextlib.suppress(OSError):
                conn.sendall(MESSAGE.pack(b"R", 0))
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        # As after the same imports in a new process (torch sets CUDA_MODULE_LOADING).
        set_by_imports = {k: v for k, v in os.environ.items() if self.environ.get(k) != v}
        pid = os.fork()
        if pid == 0:
            try:
                self.listener.close()
                os.close(self.wake_r)
                for other in self.children.values():
                    other.close()
                _become_stage(conn, request, fds, set_by_imports)
            except SystemExit as exc:  # the CLI leaves this way while its threads still run
                _end_as_the_interpreter_would(exc.code)
            except BaseException:  # the forked process must never return into the server
                import traceback

                traceback.print_exc()
            finally:
                os._exit(1)
        for fd in fds:
            os.close(fd)
        self.children[pid] = conn
        self.last_active = time.monotonic()
        with contextlib.suppress(OSError):
            conn.sendall(MESSAGE.pack(b"P", pid))
            os.utime(registry.record_path(self.directory, self.key))

    def _reap(self) -> None:
        while self.children:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            self.last_active = time.monotonic()
            if conn is None:
                continue
            with contextlib.suppress(OSError):
                conn.sendall(MESSAGE.pack(b"S", _status(wait_status)))
            conn.close()

    def close(self) -> None:
        # The key names this server alone: no other can start while its record is alive.
        registry.socket_path(self.directory, self.key).unlink(missing_ok=True)
        self.listener.close()
        registry.record_path(self.directory, self.key).unlink(missing_ok=True)
        registry.log_path(self.directory, self.key).unlink(missing_ok=True)  # kept after a crash


def main(argv: list[str]) -> int:
    logging.basicConfig(  # the libraries' start-up chatter stays out of the server's log
        level=logging.WARNING, format=f"%(asctime)s warm[{os.getpid()}] %(levelname)s %(message)s"
    )
    log.setLevel(logging.INFO)
    key = argv[0]
    config = registry.settings()
    if registry.server_key() != key:
        log.warning("key mismatch: the code changed while starting; not serving")
        registry.record_path(config.directory, key).unlink(missing_ok=True)
        return 1
    started = time.perf_counter()
    server = Server(key, config)
    try:
        server.listen()  # stages that come while it imports start from what is imported so far
        if preload(server.serve_pending):
            server.mark_ready()
            log.info("preloaded in %.1f s; serving %s", time.perf_counter() - started, sys.prefix)
        server.serve()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
