"""`promote` and `rollback`: the only code that moves the `champion` alias.

promote: score `challenger` and `champion` on the challenger's frozen raw test rows (each through
its own registered ONNX artifact), run the gate (registry/gate.py), record the decision in the
ledger and, if it passed, point `champion` at the challenger. rollback: point `champion` back at
the previous champion in the ledger. Both run under the promotion lock with a compare-and-set
re-read of the alias before writing (registry/ledger.py explains the guarantee).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from neuroflow.config import Params, tracking_uri
from neuroflow.registry import ledger
from neuroflow.registry.artifacts import (
    CHALLENGER,
    CHAMPION,
    RegistryError,
    aliases,
    download,
    frozen_test_rows,
    scratch_dir,
    smoke_test,
)
from neuroflow.registry.gate import (
    GateConfigError,
    GateResult,
    Predictions,
    check_metric,
    decide,
    decide_first,
    paired_bootstrap,
    slice_results,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from neuroflow.serving.scorer import OnnxScorer

log = logging.getLogger(__name__)

NOOP, DRY_RUN = "noop", "dry_run"


@dataclass
class Outcome:
    action: str  # promote | rollback
    decision: str  # promoted | rejected | rolled_back | noop | dry_run
    model: str
    challenger: str = ""
    champion_before: str = ""
    champion_after: str = ""
    message: str = ""
    gate: GateResult | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)
    ledger_run_id: str = ""
    would_promote: bool = False  # what the gate decided (a dry run stops there)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "gate"}
        out["gate"] = self.gate.to_json() if self.gate else None
        return out


def _client(root: Path) -> tuple[MlflowClient, str]:
    from neuroflow import tracking

    return tracking.client(root), tracking_uri(root)


# --------------------------------------------------------------------------- evaluation


def _label_key(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def predictions(
    scorer: OnnxScorer,
    frame: pd.DataFrame,
    target: str,
    classes: list[Any],
    normal_class: Any = None,
) -> Predictions:
    """Score raw rows; express outputs in `classes` order (the challenger's)."""
    outputs = scorer.predict_frame(frame)
    if scorer.task in ("regression", "forecast"):
        y = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=np.float64)
        return Predictions(scorer.task, y, value=outputs["prediction"].astype(np.float64))
    if scorer.task == "anomaly":
        if normal_class is None:
            raise GateConfigError("an anomaly model is judged against data.normal_class: set it")
        normal = _label_key(normal_class)
        y = np.asarray([_label_key(v) != normal for v in frame[target].tolist()], dtype=np.int64)
        return Predictions("anomaly", y, value=outputs["score"].astype(np.float64))
    index = {_label_key(c): i for i, c in enumerate(classes)}
    keys = [_label_key(v) for v in frame[target].tolist()]
    unknown = sorted({k for k in keys if k not in index})
    if unknown:
        raise GateConfigError(
            f"target column {target!r} has label(s) {unknown[:5]} that the model does not know "
            f"(classes {classes})"
        )
    own = [_label_key(c) for c in scorer.classes]
    if sorted(own) != sorted(index):
        raise RegistryError(f"models predict different classes: {scorer.classes} vs {classes}")
    order = [own.index(_label_key(c)) for c in classes]
    proba = outputs["probabilities"][:, order].astype(np.float64)
    return Predictions(scorer.task, np.asarray([index[k] for k in keys]), proba=proba)


def _slices(frame: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    masks: dict[str, np.ndarray] = {}
    for col in columns:
        if col not in frame.columns:
            raise GateConfigError(
                f"promotion.slices names column {col!r}, which the test rows lack "
                f"(columns: {list(frame.columns)[:10]}...)"
            )
        values = frame[col].astype("string").fillna("<missing>").to_numpy(dtype=object)
        for value in sorted(set(values)):
            masks[f"{col}={value}"] = values == value
    return masks


def evaluate(
    client: MlflowClient,
    params: Params,
    root: Path,
    name: str,
    challenger: str,
    champion: str | None,
    scratch: Path,
) -> tuple[GateResult, dict[str, Any]]:
    """The gate's evidence for `challenger` (vs `champion`, if any) on the frozen test rows."""
    from neuroflow.serving.scorer import OnnxScorer

    cfg = params.promotion
    chall = download(client, name, challenger, scratch / "challenger")
    frame, evaluation = frozen_test_rows(client, chall, root, scratch)
    target = params.data.target
    if target not in frame.columns:
        raise GateConfigError(
            f"{evaluation['source']}: target column {target!r} (data.target) not found"
        )
    chall_scorer = OnnxScorer(chall.onnx_path.read_bytes())
    check_metric(cfg.metric, chall_scorer.task)
    smoke = smoke_test(chall, chall_scorer, frame)
    normal = params.data.normal_class
    chall_preds = predictions(chall_scorer, frame, target, chall_scorer.classes, normal)
    if champion is None:
        return decide_first(cfg, chall_preds, smoke), evaluation
    champ = download(client, name, champion, scratch / "champion")
    champ_scorer = OnnxScorer(champ.onnx_path.read_bytes())
    if champ_scorer.task != chall_scorer.task:
        raise RegistryError(
            f"champion v{champion} is a {champ_scorer.task} model, challenger v{challenger} a "
            f"{chall_scorer.task} model: not comparable"
        )
    champ_preds = predictions(champ_scorer, frame, target, chall_scorer.classes, normal)
    comparison = paired_bootstrap(
        cfg.metric, champ_preds, chall_preds, resamples=cfg.bootstrap, seed=params.seed
    )
    slices = slice_results(
        cfg.metric,
        champ_preds,
        chall_preds,
        classes=[_label_key(c) for c in chall_scorer.classes],
        slices=_slices(frame, cfg.slices),
    )
    return decide(cfg, comparison, slices, smoke), evaluation


# --------------------------------------------------------------------------- promote


def promote(
    params: Params, root: Path, *, model: str | None = None, dry_run: bool = False
) -> Outcome:
    name = model or params.registry.model_name
    client, uri = _client(root)
    if dry_run:
        return _promote(client, params, root, name, dry_run=True)
    with ledger.exclusive(client, uri, name):
        return _promote(client, params, root, name, dry_run=False)


def _promote(
    client: MlflowClient, params: Params, root: Path, name: str, *, dry_run: bool
) -> Outcome:
    current = aliases(client, name)
    challenger = current.get(CHALLENGER)
    if challenger is None:
        raise RegistryError(
            f"{name} has no @{CHALLENGER}: run the pipeline (`dvc repro`) to register one"
        )
    champion = current.get(CHAMPION)
    outcome = Outcome("promote", NOOP, name, challenger, champion or "", champion or "")
    if champion == challenger:
        outcome.message = f"v{challenger} is already @{CHAMPION}: nothing to promote"
        return outcome
    history = ledger.entries(client, name)
    with scratch_dir() as tmp:
        gate, evaluation = evaluate(client, params, root, name, challenger, champion, Path(tmp))
    outcome.gate, outcome.evaluation, outcome.would_promote = gate, evaluation, gate.promote
    if dry_run:
        outcome.decision = DRY_RUN
        outcome.message = f"dry run: would {'promote' if gate.promote else 'reject'}: {gate.reason}"
        return outcome

    # Compare-and-set: nothing may have moved the alias or written the ledger meanwhile.
    _expect(client, name, champion, ledger.head(history))
    outcome.decision = ledger.PROMOTED if gate.promote else ledger.REJECTED
    outcome.champion_after = challenger if gate.promote else (champion or "")
    outcome.message = gate.reason
    outcome.ledger_run_id = _record(client, params, outcome, seq=ledger.head(history) + 1)
    try:
        if gate.promote:
            client.set_registered_model_alias(name, CHAMPION, challenger)
            _expect(client, name, challenger, ledger.head(history) + 1)
        stamp = {
            "promotion.decision": outcome.decision,
            "promotion.ledger_run_id": outcome.ledger_run_id,
            "promotion.decided_at": ledger.now_iso(),
        }
        for key, value in stamp.items():
            client.set_model_version_tag(name, challenger, key, value)
    except Exception as exc:
        ledger.finish_entry(client, outcome.ledger_run_id, error=f"{type(exc).__name__}: {exc}")
        raise
    ledger.finish_entry(client, outcome.ledger_run_id)
    log.info("promote %s v%s: %s (%s)", name, challenger, outcome.decision, gate.reason)
    return outcome


def _expect(client: MlflowClient, name: str, champion: str | None, seq: int) -> None:
    now_champion = aliases(client, name).get(CHAMPION)
    now_seq = ledger.head(ledger.entries(client, name))
    if now_champion != champion or now_seq != seq:
        raise ledger.ConcurrentChangeError(
            f"{name}: @{CHAMPION} is now {now_champion or 'unset'} (expected {champion or 'unset'})"
            f" and the ledger head #{now_seq} (expected #{seq}): another process changed the "
            "registry without the promotion lock; re-run the command"
        )


def _record(client: MlflowClient, params: Params, outcome: Outcome, *, seq: int) -> str:
    cfg = params.promotion
    gate = outcome.gate
    metrics: dict[str, float] = {}
    if gate is not None and gate.comparison is not None:
        c = gate.comparison
        metrics = {
            f"champion_{c.metric}": c.champion,
            f"challenger_{c.metric}": c.challenger,
            "improvement": c.improvement,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
        }
        drops = [s.drop for s in gate.slices if s.judged and np.isfinite(s.drop)]
        if drops:
            metrics["worst_slice_drop"] = max(drops)
    elif gate is not None:
        metrics = {f"challenger_{k}": v for k, v in gate.thresholds.items()}
    run_params = {
        "metric": cfg.metric,
        "min_delta": str(cfg.min_delta),
        "tolerance": str(cfg.tolerance),
        "bootstrap": str(cfg.bootstrap),
        "max_slice_drop": str(cfg.max_slice_drop),
        "slices": json.dumps(cfg.slices),
        "thresholds": json.dumps(cfg.thresholds_for(params.task), sort_keys=True),
        "seed": str(params.seed),
    }
    extra = {
        f"{ledger.TAG}metric": cfg.metric,
        **{f"{ledger.TAG}evaluation.{k}": str(v) for k, v in outcome.evaluation.items()},
    }
    return ledger.start_entry(
        client,
        seq=seq,
        model=outcome.model,
        action=outcome.action,
        decision=outcome.decision,
        reason=outcome.message,
        challenger=outcome.challenger,
        champion_before=outcome.champion_before,
        champion_after=outcome.champion_after,
        params=run_params if outcome.action == "promote" else {},
        metrics=metrics,
        extra_tags=extra if outcome.action == "promote" else {},
        evidence=outcome.to_json(),
    )


# --------------------------------------------------------------------------- rollback


def rollback(params: Params, root: Path, *, model: str | None = None, reason: str = "") -> Outcome:
    """Point @champion back at the previous champion in the ledger (and record that)."""
    name = model or params.registry.model_name
    client, uri = _client(root)
    with ledger.exclusive(client, uri, name):
        current = aliases(client, name).get(CHAMPION)
        history = ledger.entries(client, name)
        stack = ledger.champion_history(history)
        if current is None:
            raise RegistryError(f"{name} has no @{CHAMPION}: nothing to roll back")
        if not stack or stack[-1] != current:
            raise RegistryError(
                f"{name}: @{CHAMPION} is v{current} but the promotion ledger's last champion is "
                f"{'v' + stack[-1] if stack else 'none'}: the alias was moved outside neuroflow; "
                "promote a version instead"
            )
        if len(stack) < 2:
            raise RegistryError(
                f"{name}: v{current} is the first champion in the ledger: no previous champion "
                "to roll back to"
            )
        target = stack[-2]
        outcome = Outcome(
            "rollback",
            ledger.ROLLED_BACK,
            name,
            champion_before=current,
            champion_after=target,
            message=reason or f"rollback from v{current} to v{target}",
        )
        _expect(client, name, current, ledger.head(history))
        outcome.ledger_run_id = _record(client, params, outcome, seq=ledger.head(history) + 1)
        try:
            client.set_registered_model_alias(name, CHAMPION, target)
            _expect(client, name, target, ledger.head(history) + 1)
            client.set_model_version_tag(
                name, target, "promotion.restored_by", outcome.ledger_run_id
            )
        except Exception as exc:
            ledger.finish_entry(client, outcome.ledger_run_id, error=f"{type(exc).__name__}: {exc}")
            raise
        ledger.finish_entry(client, outcome.ledger_run_id)
    log.info("rollback %s: @%s v%s → v%s", name, CHAMPION, current, target)
    return outcome


def list_entries(params: Params, root: Path, *, model: str | None = None) -> list[ledger.Entry]:
    client, _ = _client(root)
    return ledger.entries(client, model or params.registry.model_name)
