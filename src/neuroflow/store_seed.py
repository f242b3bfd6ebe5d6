"""A new SQLite tracking store starts as a copy of an empty, migrated one.

MLflow creates a new SQLite store by running its whole chain of schema migrations: 2.2 CPU-s
here, paid by the first stage that opens the store of every new project, clone or worktree.
The result is the same file every time for one MLflow release, so it is made once per user and
release (``<cache>/mlflow-<version>-store.db``: tables and schema version only, no rows) and a
new store is a copy of it (the first call on it: 0.93 CPU-s instead of 1.95, MLflow's store
imports included, benchmarks/RESULTS.md). MLflow then opens it as it opens any store: it
checks the schema version and adds its Default experiment, whose artifact location is the
project's own.

Seeding never overwrites: the copy is linked into place only where no file is, so a store made
meanwhile by another process (MLflow, or another stage) stands. Anything that goes wrong here
(no cache folder, a file system without hard links) leaves the store to MLflow, as before.
The cache folder is ``NEUROFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/neuroflow``, else
``~/.cache/neuroflow``; deleting it is always safe.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from neuroflow.config import sqlite_file
from neuroflow.io import atomic_path, write_with

log = logging.getLogger(__name__)

CACHE_ENV = "NEUROFLOW_CACHE_DIR"


def cache_dir() -> Path:
    """Where per-user files that can always be made again are kept."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "neuroflow"


def seed(uri: str) -> bool:
    """Put a copy of the migrated empty store where `uri`'s SQLite file would be made.

    True if this call seeded it; False where the URI is not a file store, the file exists, or
    seeding failed (MLflow then creates the store itself).
    """
    target = sqlite_file(uri)
    if target is None or target.exists():
        return False
    try:
        template = _template()
        return _link_copy(template, target)
    except Exception as exc:  # the store is MLflow's to make, as without a template
        log.debug("tracking store %s not seeded: %s", target, exc)
        return False


def _template() -> Path:
    """The empty migrated store for the installed MLflow, made the first time it is needed."""
    import mlflow

    path = cache_dir() / f"mlflow-{mlflow.__version__}-store.db"
    if not path.is_file():
        write_with(path, _migrate)
        log.info("made the empty MLflow store that new stores copy: %s", path)
    return path


def _migrate(database: Path) -> None:
    """MLflow's own initialisation of a new database: its tables, then every migration."""
    import sqlalchemy
    from mlflow.store.db import utils

    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    try:
        utils._initialize_tables(engine)
        utils._verify_schema(engine)  # raises unless the schema is MLflow's latest
    finally:
        engine.dispose()


def _link_copy(template: Path, target: Path) -> bool:
    """Copy `template` beside `target`, then link it in unless a file got there first."""
    try:
        with atomic_path(target, exclusive=True) as tmp:
            shutil.copyfile(template, tmp)
    except FileExistsError:
        return False
    return True
