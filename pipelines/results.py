"""What a retrain leaves in the registry, read for the flow's artifacts: no Prefect here.

The challenger (its test metrics, MLflow run and registered version) comes from the files the
export and evaluate stages wrote, checked against the registry's `@challenger`; the champion's
test metrics come from its version tags. Reading the registry means importing MLflow and opening
its store (4-6 s on a busy 2-core machine), which would dominate a run where nothing changed.
So the reading is remembered in `.dvc/tmp/` beside the flow lock, keyed by those files and, for a
local SQLite store, the database file's size and mtime: a store nothing wrote to since still
holds the same aliases and tags. Any other store is read every time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from neuroflow.io import read_json, write_json

CACHE_NAME = "neuroflow-flow-registry.json"
# Where `mlflow ui` / `mlflow server` serves the UI when the store is a local database file.
MLFLOW_UI_ENV = "NEUROFLOW_MLFLOW_UI_URL"
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"


def mlflow_ui_base(tracking_uri: str) -> str:
    """The MLflow UI for this store: the tracking server itself, or NEUROFLOW_MLFLOW_UI_URL."""
    if urlparse(tracking_uri).scheme in ("http", "https"):
        return tracking_uri.rstrip("/")
    return os.environ.get(MLFLOW_UI_ENV, DEFAULT_MLFLOW_UI).rstrip("/")


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def version_url(base: str, model: str, version: str) -> str:
    return f"{base}/#/models/{quote(model, safe='')}/versions/{version}"


def _store_stamp(tracking_uri: str) -> list[list[int]] | None:
    """Size and mtime of a local SQLite store's files; None when there is no such file."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite" or not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
    db = db if db.is_absolute() else Path.cwd() / db
    stamp = []
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-journal")):
        if path.exists():
            st = path.stat()
            stamp.append([st.st_size, st.st_mtime_ns])
    return stamp or None


def _key(tracking_uri: str, files: list[Path]) -> str | None:
    stamp = _store_stamp(tracking_uri)
    if stamp is None:
        return None
    digest = hashlib.sha256(json.dumps([tracking_uri, stamp]).encode())
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_registry(
    root: Path, registration: dict[str, Any], tracking_uri: str, champion_alias: str
) -> dict[str, Any]:
    """@challenger's version, the run's experiment, and the champion's version and test metrics."""
    from neuroflow import tracking
    from neuroflow.registry import names

    name = registration["model_name"]
    client = tracking.client(root)
    with tracking.reachable(tracking_uri):
        current = names.aliases(client, name)
        run = tracking.retry_locked(client.get_run, registration["run_id"])
        champion = current.get(champion_alias)
        tags = names.get_version_tags(client, name, champion) if champion else {}
    prefix = names.TEST_METRIC_PREFIX
    return {
        "challenger_version": current.get(names.CHALLENGER),
        "experiment_id": str(run.info.experiment_id),
        "champion_version": champion,
        "champion_test": {
            k.removeprefix(prefix): float(v) for k, v in tags.items() if k.startswith(prefix)
        },
    }


def registry_view(
    root: Path, cache_dir: Path, *, fresh: bool = False
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(registration.json, what the registry says about it, whether that came from the cache).

    `fresh`: read the registry even if the cache is valid (the export stage just ran).
    """
    from neuroflow.config import Paths, tracking_uri
    from neuroflow.registry.names import CHAMPION

    paths = Paths(root=root)
    registration: dict[str, Any] = read_json(paths.registration)
    uri = tracking_uri(root)
    cache = cache_dir / CACHE_NAME
    key = _key(uri, [paths.registration])
    if not fresh and key is not None and cache.exists():
        cached = read_json(cache)
        if cached.get("key") == key:
            return registration, dict(cached["registry"]), True
    registry = read_registry(root, registration, uri, CHAMPION)
    key = _key(uri, [paths.registration])  # after the read: opening the store may migrate it
    if key is not None:
        write_json(cache, {"key": key, "registry": registry})
    return registration, registry, False


def metrics_rows(
    challenger: dict[str, float], champion: dict[str, float], versions: tuple[str, str | None]
) -> list[dict[str, Any]]:
    """One row per test metric: challenger, champion, the difference and which is better."""
    from neuroflow.evaluation.direction import is_better

    new, old = versions
    rows = []
    for metric in sorted(set(challenger) | set(champion)):
        mine, theirs = challenger.get(metric), champion.get(metric)
        row: dict[str, Any] = {
            "metric": metric,
            f"challenger v{new}": _fmt(mine),
            f"champion v{old}" if old else "champion (none)": _fmt(theirs),
        }
        if mine is not None and theirs is not None:
            row["difference"] = f"{mine - theirs:+.4f}"
            row["better"] = (
                "challenger"
                if is_better(metric, mine, theirs)
                else "champion"
                if is_better(metric, theirs, mine)
                else "equal"
            )
        else:
            row["difference"], row["better"] = "", ""
        rows.append(row)
    return rows


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def promotion_markdown(outcome: dict[str, Any]) -> str:
    """The promotion gate's decision (`neuroflow promote --json`) as markdown."""
    champion = outcome.get("champion_before") or "none"
    lines = [
        f"## Promotion: {outcome.get('decision', '?')}",
        "",
        f"`{outcome.get('model')}` challenger v{outcome.get('challenger')} against champion "
        f"{'v' + champion if champion != 'none' else '(none)'}; champion now "
        f"v{outcome.get('champion_after') or '(none)'}.",
        "",
        f"{outcome.get('message', '')}",
    ]
    gate = outcome.get("gate") or {}
    checks = gate.get("checks") or []
    if checks:
        lines += ["", "| check | result | evidence |", "|---|---|---|"]
        for check in checks:
            detail = str(check.get("detail", "")).replace("|", "\\|")
            result = "pass" if check.get("passed") else "FAIL"
            lines.append(f"| {check.get('name')} | {result} | {detail} |")
    if outcome.get("ledger_run_id"):
        lines += [
            "",
            f"Ledger entry: MLflow run `{outcome['ledger_run_id']}` (experiment "
            "`promotions`); `neuroflow promotions` lists them all.",
        ]
    return "\n".join(lines) + "\n"
