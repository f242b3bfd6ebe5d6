"""`promote` and `rollback`: the only code that moves the `champion` alias.

promote: score `challenger` and `champion` on the challenger's frozen raw test rows (each through
its own registered ONNX artifact), run the gate (registry/gate.py), record the decision in the
ledger and, if it passed, point `champion` at the challenger. rollback: point `champion` back at
the previous champion in the ledger, and tag the version it leaves with the rollback's reason:
that version fails the gate's `rolled_back` check from then on, unless a promote passes
`allow_rolled_back` with a reason (recorded in the ledger as the override). Both run under the
promotion lock with a compare-and-set re-read of the alias before writing (registry/ledger.py
explains the guarantee); every MLflow write is retried while a SQLite store is locked.
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
from neuroflow.errors import ConfigError
from neuroflow.registry import ledger, names
from neuroflow.registry.artifacts import download, frozen_test_rows, scratch_dir, smoke_test
from neuroflow.registry.gate import (
    Check,
    GateConfigError,
    GateResult,
    Predictions,
    check_metric,
    decide,
    decide_first,
    paired_bootstrap,
    required_delta,
    slice_results,
)
from neuroflow.registry.names import CHALLENGER, CHAMPION, RegistryError, aliases
from neuroflow.tracking import retry_locked

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from neuroflow.export.runtime import OnnxScorer

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
    override: str = ""  # why a rolled-back version was allowed back (--allow-rolled-back)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "gate"}
        out["gate"] = self.gate.to_json() if self.gate else None
        out["summary"] = self.summary()
        return out

    def summary(self) -> dict[str, str]:
        """The decision in eight short lines: what `neuroflow promote` prints as its table."""
        gate, c = self.gate, (self.gate.comparison if self.gate else None)
        champ = f"v{self.champion_before}" if self.champion_before else "(none)"
        chall = f"v{self.challenger}" if self.challenger else "(none)"
        decision = self.decision
        if self.decision == DRY_RUN:
            decision = f"dry run: would {'promote' if self.would_promote else 'reject'}"
        out = {
            "metric": "",
            "champion": champ,
            "challenger": chall,
            "delta": "n/a",
            "interval": "n/a",
            "slices": "n/a",
            "decision": decision,
            "reason": gate.reason if gate is not None else self.message,
        }
        if gate is not None and c is not None:
            better = "higher" if c.higher_is_better else "lower"
            out["metric"] = f"{c.metric} ({better} is better)"
            out["champion"] = f"{champ}: {c.champion:.4f}"
            out["challenger"] = f"{chall}: {c.challenger:.4f}"
            out["delta"] = f"{c.improvement:+.4f} (must be > {gate.min_delta:.4g})"
            out["interval"] = (
                f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}] 95% paired bootstrap, "
                f"{c.resamples} resamples of {c.rows} rows"
            )
            judged = [x for x in gate.slices if x.judged and np.isfinite(x.drop)]
            if judged:
                worst = max(judged, key=lambda x: x.drop)
                out["slices"] = f"{len(judged)} judged, worst drop {worst.drop:+.4f} ({worst.name})"
            else:
                out["slices"] = "none judged"
        elif gate is not None:
            bars = [ch for ch in gate.checks if ch.name.startswith("threshold ")]
            out["metric"] = "; ".join(
                f"{ch.name.removeprefix('threshold ')} {ch.detail}" for ch in bars
            )
            out["champion"] = "(none): the first champion must reach promotion.thresholds"
        return out


def _client(root: Path) -> tuple[MlflowClient, str]:
    from neuroflow import tracking

    return tracking.client(root), tracking_uri(root)


class RolledBackOverrideError(ConfigError):
    """--allow-rolled-back was given without the reason the ledger must record."""


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
    *,
    season: int | None = None,
) -> Predictions:
    """Score raw rows; express outputs in `classes` order (the challenger's).

    Forecast rows with `season` also carry the seasonal-naive prediction (`lag_<season>`, what
    evaluate's `mae_vs_naive` divides by).
    """
    outputs = scorer.predict_frame(frame)
    if scorer.task in ("regression", "forecast"):
        y = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=np.float64)
        naive = None
        lag = f"lag_{season}"
        if scorer.task == "forecast" and season is not None and lag in frame.columns:
            naive = pd.to_numeric(frame[lag], errors="coerce").to_numpy(dtype=np.float64)
        value = outputs["prediction"].astype(np.float64)
        return Predictions(scorer.task, y, value=value, naive=naive)
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


def rollback_check(client: MlflowClient, name: str, version: str, override: str) -> Check:
    """Fails for a version a rollback took the champion alias from, unless overridden."""
    tags = names.get_version_tags(client, name, version)
    reason = tags.get(names.ROLLED_BACK_TAG)
    if reason is None:
        return Check("rolled_back", True, f"v{version} was never rolled back")
    when = tags.get(names.ROLLED_BACK_AT_TAG, "?")
    entry = tags.get(names.ROLLED_BACK_BY_TAG, "?")
    what = f"v{version} was rolled back at {when} (ledger run {entry}): {reason!r}"
    if override:
        return Check("rolled_back", True, f"{what}; allowed back: {override!r}")
    return Check(
        "rolled_back",
        False,
        f"{what}; to promote it anyway: neuroflow promote --allow-rolled-back --reason '...'",
    )


def evaluate(
    client: MlflowClient,
    params: Params,
    root: Path,
    name: str,
    challenger: str,
    champion: str | None,
    scratch: Path,
    *,
    override: str = "",
) -> tuple[GateResult, dict[str, Any]]:
    """The gate's evidence for `challenger` (vs `champion`, if any) on the frozen test rows."""
    from neuroflow.export.runtime import OnnxScorer

    cfg = params.promotion
    policy = [rollback_check(client, name, challenger, override)]
    chall = download(client, name, challenger, scratch / "challenger")
    frame, evaluation = frozen_test_rows(client, chall, root, scratch)
    target = params.data.target
    if target not in frame.columns:
        raise GateConfigError(
            f"{evaluation['source']}: target column {target!r} (data.target) not found"
        )
    chall_scorer = OnnxScorer(chall.onnx_path.read_bytes())
    metric = cfg.metric_for(chall_scorer.task)
    check_metric(metric, chall_scorer.task)
    rating = None
    if chall_scorer.task == "generative":  # samples rated as evaluate rates them
        from neuroflow.registry.generative import Rating

        rating = Rating(root, params.seed, frame)
        smoke = rating.smoke(chall_scorer)
    else:
        smoke = smoke_test(chall, chall_scorer, frame)
    normal = params.data.normal_class
    season = int(chall.tags.get(names.SEASON_TAG, params.data.season))
    classes = chall_scorer.classes
    chall_preds = (
        rating.predictions(chall_scorer)
        if rating is not None
        else predictions(chall_scorer, frame, target, classes, normal, season=season)
    )
    if champion is None:
        return decide_first(cfg, chall_preds, smoke, policy=policy), evaluation
    champ = download(client, name, champion, scratch / "champion")
    champ_scorer = OnnxScorer(champ.onnx_path.read_bytes())
    if champ_scorer.task != chall_scorer.task:
        raise RegistryError(
            f"champion v{champion} is a {champ_scorer.task} model, challenger v{challenger} a "
            f"{chall_scorer.task} model: not comparable"
        )
    champ_preds = (
        rating.predictions(champ_scorer)
        if rating is not None
        else predictions(champ_scorer, frame, target, classes, normal, season=season)
    )
    comparison = paired_bootstrap(
        metric, champ_preds, chall_preds, resamples=cfg.bootstrap, seed=params.seed
    )
    slices = slice_results(
        metric,
        champ_preds,
        chall_preds,
        classes=[_label_key(c) for c in classes],
        slices=_slices(frame, cfg.slices),
    )
    return decide(cfg, comparison, slices, smoke, policy=policy), evaluation


# --------------------------------------------------------------------------- promote


def promote(
    params: Params,
    root: Path,
    *,
    model: str | None = None,
    dry_run: bool = False,
    allow_rolled_back: bool = False,
    reason: str = "",
) -> Outcome:
    """Gate @challenger; `allow_rolled_back` (with a `reason`) lets a rolled-back version back."""
    from neuroflow.tracking import reachable

    name = model or params.registry.model_name
    override = reason.strip() if allow_rolled_back else ""
    if allow_rolled_back and not override:
        raise RolledBackOverrideError(
            "--allow-rolled-back needs --reason '...': the ledger records why a rolled-back "
            "version may become champion again"
        )
    client, uri = _client(root)
    with reachable(uri):
        if dry_run:
            return _promote(client, params, root, name, dry_run=True, override=override)
        with ledger.exclusive(client, uri, name):
            return _promote(client, params, root, name, dry_run=False, override=override)


def _promote(
    client: MlflowClient, params: Params, root: Path, name: str, *, dry_run: bool, override: str
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
        gate, evaluation = evaluate(
            client, params, root, name, challenger, champion, Path(tmp), override=override
        )
    outcome.gate, outcome.evaluation, outcome.would_promote = gate, evaluation, gate.promote
    rolled = next((c for c in gate.checks if c.name == "rolled_back"), None)
    if override and rolled is not None and "allowed back" in rolled.detail:
        outcome.override = override
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
            retry_locked(client.set_registered_model_alias, name, CHAMPION, challenger)
            _expect(client, name, challenger, ledger.head(history) + 1)
        stamp = {
            names.DECISION_TAG: outcome.decision,
            names.LEDGER_RUN_TAG: outcome.ledger_run_id,
            names.DECIDED_AT_TAG: ledger.now_iso(),
        }
        for key, value in stamp.items():
            retry_locked(client.set_model_version_tag, name, challenger, key, value)
    except Exception as exc:
        _fail_entry(client, outcome.ledger_run_id, exc)
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


def _fail_entry(client: MlflowClient, run_id: str, exc: BaseException) -> None:
    """Mark the ledger entry FAILED; if the store refuses even that, the original error stands."""
    try:
        ledger.finish_entry(client, run_id, error=f"{type(exc).__name__}: {exc}")
    except Exception as second:  # the store that failed the write may refuse this one too
        log.error("could not mark ledger run %s FAILED: %s", run_id, second)


def _record(client: MlflowClient, params: Params, outcome: Outcome, *, seq: int) -> str:
    cfg = params.promotion
    gate = outcome.gate
    metric = cfg.metric_for(params.task)
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
    if gate is not None and gate.comparison is not None:
        metric = gate.comparison.metric
    min_delta = gate.min_delta if gate is not None and gate.min_delta is not None else None
    run_params = {
        "metric": metric,
        "min_delta": str(
            min_delta if min_delta is not None else required_delta(cfg, metric, float("nan"))
        ),
        "bootstrap": str(cfg.bootstrap),
        "max_slice_drop": str(cfg.max_slice_drop),
        "slices": json.dumps(cfg.slices),
        "thresholds": json.dumps(cfg.thresholds_for(params.task), sort_keys=True),
        "seed": str(params.seed),
    }
    extra = {
        f"{ledger.TAG}metric": metric,
        **{f"{ledger.TAG}evaluation.{k}": str(v) for k, v in outcome.evaluation.items()},
    }
    if outcome.override:
        extra[f"{ledger.TAG}override"] = outcome.override
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
    """Point @champion back at the previous champion in the ledger (and record that).

    The version rolled back from is tagged with the reason; the gate refuses it from then on
    unless `promote(..., allow_rolled_back=True, reason=...)`.
    """
    from neuroflow.tracking import reachable

    name = model or params.registry.model_name
    client, uri = _client(root)
    with reachable(uri), ledger.exclusive(client, uri, name):
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
            retry_locked(client.set_registered_model_alias, name, CHAMPION, target)
            _expect(client, name, target, ledger.head(history) + 1)
            retry_locked(
                client.set_model_version_tag,
                name,
                target,
                names.RESTORED_BY_TAG,
                outcome.ledger_run_id,
            )
            for key, value in {
                names.ROLLED_BACK_TAG: outcome.message,
                names.ROLLED_BACK_AT_TAG: ledger.now_iso(),
                names.ROLLED_BACK_BY_TAG: outcome.ledger_run_id,
            }.items():
                retry_locked(client.set_model_version_tag, name, current, key, value)
        except Exception as exc:
            _fail_entry(client, outcome.ledger_run_id, exc)
            raise
        ledger.finish_entry(client, outcome.ledger_run_id)
    log.info("rollback %s: @%s v%s → v%s", name, CHAMPION, current, target)
    return outcome


def list_entries(params: Params, root: Path, *, model: str | None = None) -> list[ledger.Entry]:
    from neuroflow.tracking import reachable

    client, uri = _client(root)
    with reachable(uri):
        return ledger.entries(client, model or params.registry.model_name)
