"""The append-only promotion ledger, and the lock that serialises champion changes.

Ledger: every decision (promoted, rejected, rolled back) is one MLflow run in the `promotions`
experiment, visible in the MLflow UI: tags say when, who, which versions, the decision and the
reason; metrics hold the compared values and the bootstrap interval; `evidence.json` holds the
full gate evidence. Runs are only ever created, never edited or deleted by neuroflow; an entry
whose alias change failed ends FAILED and is ignored when the champion history is replayed.
Each entry carries a sequence number (`neuroflow.ledger.seq`), one more than the last entry for
the same model, assigned under the lock.

Concurrency: two promoters (or a promoter and a rollback) must not interleave "read champion →
evaluate → move alias → record". Each champion change therefore runs inside `exclusive()`:
- local stores (`sqlite:///path.db`, a `file:` / plain-path store): an exclusive `fcntl` lock on
  a file beside the store (`mlflow.db.promotion.lock`). The OS releases it if the process dies,
  so there is never a stale lock.
- remote stores (`http(s)://` tracking server, database URIs): a lease in the registry itself:
  creating the registered model `<model>.promotion-lock` is atomic (unique name in the server's
  database, RESOURCE_ALREADY_EXISTS for the loser). The holder deletes it when done; a holder that
  died leaves it, and waiters time out with a message naming the holder and how to clear it.
Inside the lock, right before writing, the champion alias and the ledger head are re-read and
compared with what the decision was based on (compare-and-set); after moving the alias it is read
back. A change by anything that bypasses the lock aborts the write with `ConcurrentChangeError`
instead of recording a decision about a stale champion.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from neuroflow.config import sqlite_file
from neuroflow.errors import NeuroflowError
from neuroflow.tracking import retry_locked

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

EXPERIMENT = "promotions"
TAG = "neuroflow.ledger."
PROMOTED, REJECTED, ROLLED_BACK = "promoted", "rejected", "rolled_back"
LOCK_TIMEOUT_S = 120.0


class LockTimeoutError(NeuroflowError):
    """Another promotion or rollback holds the lock for too long."""


class ConcurrentChangeError(NeuroflowError):
    """The champion alias or the ledger changed under a decision; nothing was written."""


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Entry:
    """One ledger row (read back from its MLflow run)."""

    seq: int
    model: str
    action: str  # promote | rollback
    decision: str  # promoted | rejected | rolled_back
    reason: str
    challenger: str  # the version evaluated ("" for a rollback)
    champion_before: str  # "" = none
    champion_after: str
    decided_at: str
    decided_by: str
    status: str  # MLflow run status: FINISHED, or FAILED if the alias change did not happen
    run_id: str
    metric: str = ""
    improvement: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    override: str = ""  # why a rolled-back version was allowed back (promote --allow-rolled-back)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _experiment_id(client: MlflowClient, create: bool) -> str | None:
    from mlflow.exceptions import MlflowException

    exp = retry_locked(client.get_experiment_by_name, EXPERIMENT)
    if exp is not None:
        return str(exp.experiment_id)
    if not create:
        return None
    try:
        tags = {"neuroflow.ledger": "true"}
        return str(retry_locked(client.create_experiment, EXPERIMENT, tags=tags))
    except MlflowException:  # created concurrently by another process
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            raise
        return str(exp.experiment_id)


def entries(client: MlflowClient, model: str) -> list[Entry]:
    """Every ledger entry for `model`, oldest first."""
    exp_id = _experiment_id(client, create=False)
    if exp_id is None:
        return []
    runs: list[Any] = []
    token: str | None = None
    while True:
        page = retry_locked(
            client.search_runs,
            [exp_id],
            filter_string=f"tags.`{TAG}model` = '{model}'",
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    out = [_entry(run) for run in runs]
    return sorted(out, key=lambda e: e.seq)


def _entry(run: Any) -> Entry:
    tags, metrics = run.data.tags, run.data.metrics

    def tag(key: str) -> str:
        return str(tags.get(TAG + key, ""))

    return Entry(
        seq=int(tag("seq") or 0),
        model=tag("model"),
        action=tag("action"),
        decision=tag("decision"),
        reason=tag("reason"),
        challenger=tag("challenger"),
        champion_before=tag("champion_before"),
        champion_after=tag("champion_after"),
        decided_at=tag("decided_at"),
        decided_by=tag("decided_by"),
        status=str(run.info.status),
        run_id=str(run.info.run_id),
        metric=tag("metric"),
        improvement=metrics.get("improvement"),
        ci_low=metrics.get("ci_low"),
        ci_high=metrics.get("ci_high"),
        override=tag("override"),
    )


def champion_history(ledger: list[Entry]) -> list[str]:
    """Replay the ledger into the stack of champions: promote pushes, rollback pops."""
    stack: list[str] = []
    for entry in ledger:
        if entry.status != "FINISHED":
            continue
        if entry.decision == PROMOTED:
            stack.append(entry.champion_after)
        elif entry.decision == ROLLED_BACK and stack:
            stack.pop()
    return stack


def head(ledger: list[Entry]) -> int:
    return ledger[-1].seq if ledger else 0


def start_entry(
    client: MlflowClient,
    *,
    seq: int,
    model: str,
    action: str,
    decision: str,
    reason: str,
    challenger: str,
    champion_before: str,
    champion_after: str,
    params: dict[str, str],
    metrics: dict[str, float],
    extra_tags: dict[str, str],
    evidence: dict[str, Any],
) -> str:
    """Create the entry's run (RUNNING until `finish_entry`); returns its run id."""
    import math

    from mlflow.entities import Metric, Param, RunTag

    exp_id = _experiment_id(client, create=True)
    assert exp_id is not None
    when = now_iso()
    by = who()
    tags = {
        "mlflow.user": by.split("@", 1)[0],
        "mlflow.note.content": f"{action} {model}: {decision}: {reason}",
        **{
            TAG + k: v
            for k, v in {
                "seq": str(seq),
                "model": model,
                "action": action,
                "decision": decision,
                "reason": reason[:4000],
                "challenger": challenger,
                "champion_before": champion_before,
                "champion_after": champion_after,
                "decided_at": when,
                "decided_by": by,
            }.items()
        },
        **extra_tags,
    }
    versions = f"v{challenger or champion_before} → v{champion_after or '-'}"
    run = retry_locked(
        client.create_run, exp_id, run_name=f"#{seq} {action} {model} {versions}: {decision}"
    )
    run_id = str(run.info.run_id)
    stamp = int(time.time() * 1000)
    retry_locked(
        client.log_batch,
        run_id,
        metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items() if math.isfinite(v)],
        params=[Param(k, v[:6000]) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    text = json.dumps(evidence, indent=2, default=str)
    retry_locked(client.log_text, run_id, text, "evidence.json")
    return run_id


def finish_entry(client: MlflowClient, run_id: str, error: str | None = None) -> None:
    if error:
        retry_locked(client.set_tag, run_id, TAG + "error", error[:4000])
    retry_locked(client.set_terminated, run_id, status="FAILED" if error else "FINISHED")


# --------------------------------------------------------------------------- the lock


def lock_file(tracking_uri: str) -> Path | None:
    """The lock file beside a local store, or None for a remote one."""
    if tracking_uri.startswith("sqlite:"):
        db = sqlite_file(tracking_uri)
        return None if db is None else Path(f"{db}.promotion.lock")
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else tracking_uri) / ".promotion.lock"
    return None


@contextmanager
def exclusive(
    client: MlflowClient, tracking_uri: str, model: str, *, timeout: float = LOCK_TIMEOUT_S
) -> Iterator[str]:
    """Hold the promotion lock for `model`'s store (see the module docstring); yields its name."""
    path = lock_file(tracking_uri)
    if path is not None:
        with _file_lock(path, timeout):
            yield str(path)
    else:
        with _registry_lock(client, f"{model}.promotion-lock", timeout) as name:
            yield name


@contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeoutError(
                        f"{path}: another promotion or rollback has held the lock for over "
                        f"{timeout:.0f} s; retry when it has finished"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _registry_lock(client: MlflowClient, name: str, timeout: float) -> Iterator[str]:
    from mlflow.exceptions import MlflowException

    token = uuid.uuid4().hex
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.create_registered_model(
                name,
                tags={"token": token, "holder": who(), "acquired_at": now_iso()},
                description="Held while neuroflow changes a champion alias; deleted when done.",
            )
            break
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                raise
            if time.monotonic() > deadline:
                holder = _lock_holder(client, name)
                raise LockTimeoutError(
                    f"registered model {name!r} (the promotion lock) is held by {holder}; if "
                    "that process died, delete that registered model and retry"
                ) from None
            time.sleep(0.2 + random.random() * 0.3)  # jitter: waiters do not retry in lockstep
    try:
        yield name
    finally:
        try:
            if client.get_registered_model(name).tags.get("token") == token:
                client.delete_registered_model(name)
        except MlflowException as exc:
            log.warning("could not release promotion lock %s: %s", name, exc)


def _lock_holder(client: MlflowClient, name: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(name).tags
    except MlflowException:
        return "another process (now released)"
    return f"{tags.get('holder', '?')} since {tags.get('acquired_at', '?')}"
