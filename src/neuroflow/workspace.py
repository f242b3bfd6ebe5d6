"""The pipeline's state in the working tree: snapshot it, put it back, restore the last commit.

A DVC run that fails part-way has already removed the failed stage's outputs, and
`dvc exp run -S` has already written its values into params.yaml (and, with `core.autostage`,
staged dvc.lock). Two ways back, one implementation:
- `Snapshot`: what a command saw before it ran (params.yaml, dvc.lock and the outputs DVC keeps
  no cache of), put back when it fails; `dvc checkout` then restores the cached outputs that
  the restored dvc.lock names.
- `restore_committed`: the same files from git's HEAD (index and working tree, so a staged bad
  dvc.lock does not survive), then `dvc checkout`. Input files are the user's own: they are
  reported when they differ from HEAD, never overwritten.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroflow.errors import NeuroflowError
from neuroflow.io import write_bytes

log = logging.getLogger(__name__)

PIPELINE_FILES = ("params.yaml", "dvc.lock")


class RestoreError(NeuroflowError):
    """git or DVC could not put the pipeline's files back."""


def uncached_outputs(root: Path) -> list[str]:
    """Stage outputs declared `cache: false` in dvc.yaml: `dvc checkout` cannot restore them."""
    stages = _stages(root)
    found: list[str] = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []) or []:
                if isinstance(entry, dict):
                    for path, opts in entry.items():
                        if isinstance(opts, dict) and opts.get("cache") is False:
                            found.append(str(path))
    return found


def input_files(root: Path) -> list[str]:
    """The check and ingest stages' data inputs (not source code): the user's own files."""
    stages = _stages(root)
    deps = [*stages.get("ingest", {}).get("deps", []), "data/suites"]
    return [str(d) for d in deps if str(d).startswith("data/") and str(d) != "data/checked.txt"]


def _stages(root: Path) -> dict[str, Any]:
    import yaml

    return (yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}).get("stages", {})


@dataclass
class Snapshot:
    """Bytes of the pipeline files as a command found them (None: the file did not exist)."""

    root: Path
    files: dict[str, bytes | None] = field(default_factory=dict)

    @classmethod
    def take(cls, root: Path) -> Snapshot:
        names = [*PIPELINE_FILES, *uncached_outputs(root)]
        files = {}
        for name in names:
            path = root / name
            files[name] = path.read_bytes() if path.is_file() else None
        return cls(root=root, files=files)

    def restore(self) -> list[str]:
        """Put every file back as it was, then the cached outputs; returns the files changed."""
        changed: list[str] = []
        for name, data in self.files.items():
            path = self.root / name
            now = path.read_bytes() if path.is_file() else None
            if now == data:
                continue
            changed.append(name)
            if data is None:
                path.unlink(missing_ok=True)
            else:
                write_bytes(path, data)
        if (self.root / "dvc.lock").is_file():
            _run(self.root, "dvc", "checkout", "--force", "--quiet")
        return changed


@dataclass(frozen=True)
class Restored:
    backup: Path | None  # where the replaced versions of changed files were saved
    changed: list[str]  # pipeline files put back from HEAD
    inputs_differ: list[str]  # input files that differ from HEAD: kept as the user has them


def restore_committed(root: Path) -> Restored:
    """params.yaml, dvc.lock and the uncached outputs from HEAD, then `dvc checkout --force`."""
    names = [*PIPELINE_FILES, *uncached_outputs(root)]
    tracked = set(_run(root, "git", "ls-files", "--", *names).split())
    differ = _run(root, "git", "diff", "HEAD", "--name-only", "--", *sorted(tracked)).split()
    backup = None
    if differ:
        backup = save_aside(root, differ)
        _run(root, "git", "restore", "--source=HEAD", "--staged", "--worktree", "--", *differ)
    _run(root, "dvc", "checkout", "--force", "--quiet")
    inputs = input_files(root)
    inputs_differ = (
        _run(root, "git", "status", "--porcelain", "--", *inputs).splitlines() if inputs else []
    )
    return Restored(
        backup=backup, changed=differ, inputs_differ=[line[3:] for line in inputs_differ]
    )


def save_aside(root: Path, names: list[str]) -> Path:
    """Copy files about to be replaced under .dvc/tmp (git-ignored); returns the folder."""
    backup = root / ".dvc" / "tmp" / "neuroflow-restore" / time.strftime("%Y%m%d-%H%M%S")
    for name in names:
        if (root / name).is_file():
            (backup / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, backup / name)
    return backup


def _run(root: Path, *cmd: str) -> str:
    proc = subprocess.run(list(cmd), cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RestoreError(
            f"`{' '.join(cmd)}` exited {proc.returncode} in {root}: "
            f"{(proc.stderr or proc.stdout).strip()[-800:]}"
        )
    return proc.stdout
