"""Where warm servers live, which server fits a stage command, and when a new one may start.

A server serves every project that uses one interpreter and one version of the code (nothing
it holds belongs to a project: a forked stage takes the command's folder and environment). Its
key hashes the interpreter, the environment that changes what an import does, and the size and
mtime of every package file and install directory. Any change gives a new key, so a stage never
runs code older than the files on disk. Start-up is guarded per user: one server
imports at a time, at most `NEUROFLOW_WARM_MAX` live at once (the least recently used idle one
is asked to stop), and each exits after `NEUROFLOW_WARM_IDLE_S` idle seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENABLE_ENV = "NEUROFLOW_WARM"  # 0 / off / false: every stage process imports for itself
DIR_ENV = "NEUROFLOW_WARM_DIR"
IDLE_ENV = "NEUROFLOW_WARM_IDLE_S"
MAX_ENV = "NEUROFLOW_WARM_MAX"
DEFAULT_IDLE_S = 600.0
DEFAULT_MAX = 3
# Environment read at import time (threads, devices, library paths, the interpreter's path).
_IMPORT_ENV = ("PYTHON", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "CUDA_", "NVIDIA_", "TORCH", "LD_")
# Not part of the key: what the preloaded libraries set when absent, at those values, and what
# they read only when used (the forked stage gets the command's own value). A process that has
# imported them (a test runner, a notebook, a scheduler) passes them on to the commands it
# starts; they must not split one environment's server in two.
_SET_ON_IMPORT = {"KMP_DUPLICATE_LIB_OK": "True", "KMP_INIT_AT_FORK": "FALSE"}  # scikit-learn
# torch._inductor's cache and compile settings; stdio buffering, set by each forked stage
# (`server.buffer_as_a_new_process`).
_READ_ON_USE = ("TORCHINDUCTOR_", "PYTHONUNBUFFERED")


@dataclass(frozen=True)
class Settings:
    enabled: bool
    directory: Path
    idle_s: float
    max_servers: int


@dataclass(frozen=True)
class Server:
    key: str
    pid: int
    python: str  # the environment it serves (sys.prefix)
    state: str  # "starting" (importing) or "ready" (listening)
    last_used: float  # the record's mtime: touched at every request


def settings(environ: Mapping[str, str] = os.environ) -> Settings:
    enabled = environ.get(ENABLE_ENV, "1").strip().lower() not in ("0", "off", "false", "no")
    default_dir = Path(tempfile.gettempdir()) / f"neuroflow-warm-{os.getuid()}"
    return Settings(
        enabled=enabled,
        directory=Path(environ.get(DIR_ENV) or default_dir),
        idle_s=float(environ.get(IDLE_ENV) or DEFAULT_IDLE_S),
        max_servers=max(1, int(environ.get(MAX_ENV) or DEFAULT_MAX)),
    )


def package_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def server_key(environ: Mapping[str, str] = os.environ) -> str:
    """The key of the server that may run this process's stages (16 hex digits)."""
    digest = hashlib.sha256()
    import_env = sorted(
        (k, v)
        for k, v in environ.items()
        if k.startswith(_IMPORT_ENV)
        and not k.startswith(_READ_ON_USE)
        and _SET_ON_IMPORT.get(k) != v
    )
    header = [sys.executable, sys.prefix, str(package_dir()), import_env]
    digest.update(json.dumps(header).encode())
    for directory in [*site.getsitepackages(), str(package_dir())]:
        with contextlib.suppress(OSError):
            stat = Path(directory).stat()
            digest.update(f"{directory}:{stat.st_mtime_ns}".encode())
    for dirpath, dirnames, filenames in os.walk(package_dir()):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            stat = Path(dirpath, name).stat()
            digest.update(f"{dirpath}/{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def socket_path(directory: Path, key: str) -> Path:
    return directory / f"{key}.sock"


def record_path(directory: Path, key: str) -> Path:
    return directory / f"{key}.json"


def log_path(directory: Path, key: str) -> Path:
    return directory / f"{key}.log"


def ensure_directory(directory: Path) -> Path:
    """The registry folder, private to this user (sockets there accept any process of ours)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stat = directory.stat()
    if stat.st_uid != os.getuid() or stat.st_mode & 0o077:
        raise PermissionError(f"{directory} must belong to this user with mode 0700")
    return directory


def write_record(directory: Path, key: str, **fields: Any) -> None:
    path = record_path(directory, key)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": key, **fields}))
    tmp.replace(path)


def is_ready(directory: Path, key: str) -> bool:
    """Whether the server for `key` has imported everything (its record says "ready")."""
    try:
        return json.loads(record_path(directory, key).read_text()).get("state") == "ready"
    except (OSError, ValueError):
        return False


def alive(pid: int) -> bool:
    """Whether process `pid` exists (one of another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_servers(directory: Path) -> list[Server]:
    """Servers whose process is alive (none without a folder); the files of dead ones are
    removed."""
    servers = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            mtime = path.stat().st_mtime
        except (OSError, ValueError):
            continue
        if alive(int(record["pid"])):
            servers.append(
                Server(record["key"], int(record["pid"]), record["python"], record["state"], mtime)
            )
            continue
        for stale in (path, socket_path(directory, record["key"])):
            stale.unlink(missing_ok=True)
    return servers


@contextlib.contextmanager
def _spawn_lock(directory: Path) -> Iterator[None]:
    with (directory / "spawn.lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def request_start(key: str, config: Settings) -> str:
    """Start a server for `key` unless one exists or another is importing; says what it did."""
    directory = ensure_directory(config.directory)
    with _spawn_lock(directory):
        servers = live_servers(directory)
        if any(s.key == key for s in servers):
            return "a server for this environment is starting"
        if any(s.state == "starting" for s in servers):
            return "another server is starting"  # one import at a time per user
        for victim in to_evict(servers, config.max_servers):
            stop(victim)
        with log_path(directory, key).open("wb") as log:  # one server per key at a time
            proc = subprocess.Popen(
                # -P: no script or current folder on sys.path, the same path as the stages.
                [sys.executable, "-P", "-m", "neuroflow.warm.server", key],
                cwd="/",  # no project's folder: stages take their own
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not in DVC's process group, not on its pipes
                close_fds=True,
            )
        write_record(directory, key, pid=proc.pid, python=sys.prefix, state="starting")
        return f"started server {proc.pid}"


def to_evict(servers: list[Server], max_servers: int) -> list[Server]:
    """The least recently used ready servers to stop so that one more fits under the cap."""
    ready = sorted((s for s in servers if s.state == "ready"), key=lambda s: s.last_used)
    return ready[: max(0, len(servers) - max_servers + 1)]


def stop(server: Server) -> None:
    """Ask a server to exit once its running stages are done (SIGTERM)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.pid, signal.SIGTERM)


def stop_servers(servers: list[Server], timeout_s: float) -> list[Server]:
    """Ask each to exit (`stop`); the ones still alive after up to `timeout_s` seconds."""
    for server in servers:
        stop(server)
    return wait_stopped(servers, timeout_s)


def wait_stopped(servers: list[Server], timeout_s: float) -> list[Server]:
    """The servers still alive after up to `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    running = list(servers)
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = [s for s in running if alive(s.pid)]
    return running
