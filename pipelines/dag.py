"""The DAG as DVC sees it, and the plumbing to run it: stage order, overrides, output, locks.

Nothing here knows Prefect; flows.py and sweep.py wrap these helpers in tasks.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroflow.errors import DataError, NeuroflowError

log = logging.getLogger(__name__)

# A flow parameter value for one params.yaml key (dicts are set key by key, `train.lr`).
ParamValue = str | int | float | bool | None | list[str | int | float | bool]

LOCK_NAME = "neuroflow-flow.lock"

# Output that marks a failure worth retrying: the fault is outside the stage, and time heals it.
TRANSIENT_MARKERS: tuple[tuple[str, str], ...] = (
    ("Unable to acquire lock", "the DVC lock is held by another process"),
    ("Connection refused", "the MLflow server is unreachable"),
    ("Max retries exceeded", "the MLflow server is unreachable"),
    ("Failed to establish a new connection", "the MLflow server is unreachable"),
    ("Temporary failure in name resolution", "the MLflow server is unreachable"),
    ("database is locked", "the MLflow store is busy"),
)


class StageFailedError(NeuroflowError):
    """A stage exited non-zero for a reason retrying will not fix."""


class TransientStageError(StageFailedError):
    """A stage failed on a fault outside it (DVC lock held, MLflow unreachable): retry."""


class PipelineValidationError(DataError):
    """The validate stage rejected the data; the message is its summary."""


class WorkspaceBusyError(NeuroflowError):
    """Another pipeline run holds this checkout."""

    exit_code = 3


@dataclass
class CommandResult:
    returncode: int
    tail: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.tail)


def venv_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for DVC and stage commands: this interpreter's scripts first on PATH, and
    PYTHONPATH without this process's working folder (`_is_working_folder`)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    kept = [entry for entry in env.pop("PYTHONPATH", "").split(os.pathsep) if entry]
    kept = [entry for entry in kept if not _is_working_folder(entry)]
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    env["PYTHONUNBUFFERED"] = "1"  # stage output must arrive line by line, not at exit
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("GIT_PYTHON_REFRESH", "quiet")
    if extra:
        env.update(extra)
    return env


def _is_working_folder(entry: str) -> bool:
    """Whether a PYTHONPATH entry is the flow run's working folder. Prefect's runner puts it there
    so that a deployment's flow module imports; the commands DVC runs import only the installed
    package, and with it on their path they would key a warm stage server of their own, apart
    from the one `dvc repro` in a shell uses (`neuroflow.warm.registry.server_key`)."""
    try:
        return Path(entry).resolve() == Path.cwd().resolve()
    except OSError:
        return False


def stream(
    cmd: Sequence[str],
    cwd: Path,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
    keep: int = 400,
) -> CommandResult:
    """Run `cmd`, handing each output line (stdout and stderr merged) to `on_line` as it comes."""
    tail: deque[str] = deque(maxlen=keep)
    with subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env) if env is not None else venv_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            on_line(line)
        returncode = proc.wait()
    return CommandResult(returncode, list(tail))


def stage_order(root: Path) -> list[str]:
    """dvc.yaml's stages in an order that runs every dependency first (DVC's own graph)."""
    return plan(root, force=True).order


@dataclass
class Plan:
    """The stages in run order, and those `dvc repro` may run (the rest are up to date)."""

    order: list[str]
    stale: set[str]


def plan(root: Path, *, force: bool = False) -> Plan:
    """dvc.yaml's stages in dependency order, and which of them `dvc repro` may run.

    Stale: a stage `dvc status` reports changed (deps, params, outs or its command), or one
    downstream of a changed stage or data source. Every other stage is one `dvc repro` would
    skip, so the flow need not start a DVC process to hear it: on a run where nothing changed
    that saves one DVC start per stage.
    """
    import networkx as nx
    from dvc.repo import Repo

    base = root.resolve()
    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        # `.dvc`-tracked sources are graph nodes too, but have no command to run.
        ordered = [
            s
            for s in reversed(list(nx.topological_sort(graph)))
            if not s.is_data_source and getattr(s, "cmd", None)
        ]
        changed = set(graph.nodes) if force else _changed(repo, graph)
        stale_nodes = set(changed)
        for node in changed:  # dependents: the nodes with a path to the changed one
            stale_nodes |= nx.ancestors(graph, node)
        order = [_address(Path(s.path), s.name, base) for s in ordered]
        stale = {_address(Path(s.path), s.name, base) for s in ordered if s in stale_nodes}
    return Plan(order, stale)


def _changed(repo: Any, graph: Any) -> set[Any]:
    """The graph's nodes `dvc status` reports changed; all of them while DVC's lock is held
    elsewhere (each stage then goes through `dvc repro`, whose lock errors are retried)."""
    from dvc.lock import LockError

    try:
        with repo.lock:  # on the graph already built: `repo.status()` would rebuild it
            return {n for n in graph.nodes if n.status(check_updates=True)}
    except LockError:
        log.info("DVC's lock is held by another process: every stage goes through dvc repro")
        return set(graph.nodes)


def _address(dvcfile: Path, name: str, root: Path) -> str:
    """How `dvc repro` names the stage from the repo root (DVC's is relative to the cwd)."""
    rel = dvcfile.resolve().relative_to(root)
    return name if rel == Path("dvc.yaml") else f"{rel}:{name}"


def repro_command(stage: str, *, force: bool = False) -> list[str]:
    cmd = ["dvc", "repro", "--single-item", stage]
    return [*cmd, "--force"] if force else cmd


def transient_reason(output: str) -> str | None:
    for marker, reason in TRANSIENT_MARKERS:
        if marker in output:
            return reason
    return None


def stage_error(stage: str, result: CommandResult, root: Path) -> NeuroflowError:
    """The error for a failed stage: validation, transient, or a plain stage failure."""
    reason = transient_reason(result.text)
    if reason is not None:
        return TransientStageError(
            f"stage {stage!r} failed because {reason}; retrying: {_last_error(result)}"
        )
    summary = validation_failure(root, result)
    if summary is not None:
        return PipelineValidationError(summary)
    return StageFailedError(
        f"stage {stage!r} failed (`{' '.join(repro_command(stage))}` exited {result.returncode})"
        f": {_last_error(result)}"
    )


def _last_error(result: CommandResult) -> str:
    errors = [line for line in result.tail if "ERROR" in line or "Error" in line]
    return (errors or result.tail or ["no output"])[-1].strip()


def validation_failure(root: Path, result: CommandResult) -> str | None:
    """The validation summary when this failure is the validate stage rejecting the data."""
    from neuroflow.config import Paths
    from neuroflow.io import read_json

    lines = [line for line in result.tail if "validate failed for" in line]
    if lines:
        # The stage's own one-line-per-failure message, without the log prefix.
        return "\n".join(line[line.index("validate failed for") :] for line in lines)
    path = Paths(root=root).validation_summary
    if not path.exists():
        return None
    summary = read_json(path)
    if summary.get("success", True):
        return None
    rel = path.relative_to(root)
    parts = [
        f"split {f.get('split')!r}, column {f.get('column')!r}: {f.get('expectation')}"
        for f in summary.get("failures", [])
    ]
    return f"validate failed ({rel}): " + "; ".join(parts)


def stage_ran(output: str) -> bool:
    """Whether `dvc repro` ran the stage's command (False when DVC found it up to date)."""
    return "Running stage" in output


# --- params overrides -----------------------------------------------------------------------


def check_overrides(root: Path, overrides: Mapping[str, ParamValue]) -> None:
    """Fail before anything runs if an override names an unknown key or an invalid value."""
    from neuroflow.config import load_params

    load_params(root / "params.yaml", overrides)


def apply_overrides(root: Path, overrides: Mapping[str, ParamValue]) -> list[str]:
    """Write overrides into params.yaml with DVC's own `--set-param` applier.

    This is what `dvc exp run -S key=value` does to the workspace before it reproduces; the
    stages then run through `dvc repro`, which records the values they actually used in
    dvc.lock. Comments and key order in params.yaml survive.
    """
    if not overrides:
        return []
    from dvc.utils.hydra import apply_overrides as dvc_apply

    check_overrides(root, overrides)
    # JSON spelling is valid Hydra override grammar and keeps each value's type.
    specs = [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    dvc_apply(root / "params.yaml", specs)
    return specs


# --- one run per workspace --------------------------------------------------------------------


def lock_path(root: Path) -> Path:
    return root / ".dvc" / "tmp" / LOCK_NAME


@contextlib.contextmanager
def workspace_lock(root: Path, *, wait_s: float = 0.0, owner: str = "") -> Iterator[Path]:
    """Hold the checkout's flow lock: an exclusive flock released when the holder dies.

    A second run waits up to `wait_s` seconds, then is refused naming the current holder.
    """
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(wait_s, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = Path(path).read_text(encoding="utf-8", errors="replace").strip()
                    raise WorkspaceBusyError(
                        f"another pipeline run holds {path} ({holder or 'holder unknown'}); "
                        f"waited {wait_s:.0f}s. One run per checkout: wait for it to finish "
                        "or raise lock_wait_s."
                    ) from None
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} {owner}".strip().encode())
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
