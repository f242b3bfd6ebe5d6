"""The promotion gate's evidence: metrics on predictions, a paired bootstrap, per-slice drops.

Pure numpy (no MLflow, no onnxruntime): the registry code scores both models on the same frozen
rows and hands the predictions here. Every metric is computed for a *batch* of resamples at once
(leading axis = resample) by the kernels in `neuroflow.evaluation.batched`, the same ones the
evaluate stage reports with.

The decision, in order (all must pass):
- smoke: the registered artifact loads and predicts (checked by the caller, passed in here),
  plus any policy check the caller adds (a rolled-back version without an override fails);
- with a champion: a STRICT improvement. The improvement (challenger - champion, sign-adjusted
  so that positive is better) must exceed `min_delta` both as a point estimate and at the lower
  end of its two-sided 95% paired bootstrap interval; equal is not better, so a challenger whose
  predictions equal the champion's is rejected with "no improvement". No class or declared
  slice may drop by more than `max_slice_drop`;
- without a champion: every `thresholds` metric is reached on the frozen test rows.

`min_delta` defaults per metric (`DEFAULT_MIN_DELTA`, documented in params.yaml): 0.001 for
bounded scores and scale-free errors; for rmse and mae, whose units are the target's, 0.1% of
the champion's value. An explicit `promotion.min_delta` (> 0, in the metric's units) wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from neuroflow.config import PromotionConfig
from neuroflow.errors import ConfigError
from neuroflow.evaluation import batched
from neuroflow.evaluation.direction import higher_is_better
from neuroflow.evaluation.metrics import CLASSIFICATION_KEYS, REGRESSION_KEYS

# An anomaly score only ranks rows (normal vs not): ROC AUC is the metric it supports.
ANOMALY_METRICS = ("roc_auc",)
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary": CLASSIFICATION_KEYS,
    "multiclass": CLASSIFICATION_KEYS,
    "regression": REGRESSION_KEYS,
    # mae / seasonal-naive mae on the same rows: < 1 beats the baseline (what evaluate reports)
    "forecast": (*REGRESSION_KEYS, "mae_vs_naive"),
    "anomaly": ANOMALY_METRICS,
    # Fréchet distance of generated to held-out rows in the rating classifier's feature space,
    # and its ratio to the same distance for held-out real rows (evaluation/generative.py)
    "generative": ("fid", "fid_ratio"),
}
# The smallest improvement that counts when promotion.min_delta is unset (see module docstring).
DEFAULT_MIN_DELTA = 0.001
# fraction of the champion's value (metrics in the data's or a feature space's units)
RELATIVE_MIN_DELTA = {"rmse": 0.001, "mae": 0.001, "fid": 0.001}
IDENTICAL_ATOL = 1e-6  # outputs this close on every row are the same predictions
MIN_SLICE_ROWS = 5  # smaller slices are reported but not judged: one row flips them by 20%+
# Resamples per vectorised block: bounds memory at about 8 MB per (block, rows, classes) array.
_BLOCK_ELEMENTS = 1_000_000


class GateConfigError(ConfigError):
    """A `promotion` parameter does not fit the model's task."""


@dataclass(frozen=True)
class Predictions:
    """One model's outputs on the evaluation rows, aligned row for row with `y`.

    Classification: `y` holds class indices, `proba` is (n, C) in the same class order.
    Regression and forecast: `y` holds targets, `value` the predictions.
    Anomaly: `y` is 1 for rows outside the normal class, `value` the anomaly score.
    Forecast: `naive` holds the seasonal-naive prediction of each row (for `mae_vs_naive`).
    Generative: `y` holds the held-out rows' features, `value` the generated samples' (one per
    seeded latent vector, the same vectors for both models), `naive` other held-out real rows'
    (the real-vs-real reference of `fid_ratio`); a resample draws (row, latent) pairs.
    """

    task: str
    y: np.ndarray
    proba: np.ndarray | None = None
    value: np.ndarray | None = None
    naive: np.ndarray | None = None

    @property
    def classification(self) -> bool:
        return self.task in ("binary", "multiclass")

    def take(self, rows: np.ndarray) -> Predictions:
        return Predictions(
            self.task,
            self.y[rows],
            None if self.proba is None else self.proba[rows],
            None if self.value is None else self.value[rows],
            None if self.naive is None else self.naive[rows],
        )

    @property
    def output(self) -> np.ndarray | None:
        return self.proba if self.classification else self.value


def check_metric(metric: str, task: str, key: str = "promotion.metric") -> None:
    known = METRICS_BY_TASK.get(task, ())
    if metric not in known:
        raise GateConfigError(
            f"{key}={metric!r} does not apply to a {task} model; use one of {known}"
        )


def _batched(metric: str, preds: Predictions, rows: np.ndarray) -> np.ndarray:
    """`metric` on each resample; `rows` is (B, m) row indices."""
    check_metric(metric, preds.task)
    out = preds.proba if preds.classification else preds.value
    if out is None:
        raise ValueError(f"{preds.task} predictions lack their output array")
    if preds.task == "anomaly":
        return batched.binary_auc(preds.y[rows] == 1, out[rows].astype(np.float64))
    if preds.task == "generative":
        return _frechet(metric, preds, out, rows)
    if metric == "mae_vs_naive":
        if preds.naive is None:
            raise GateConfigError("mae_vs_naive needs the seasonal-naive predictions (data.season)")
        y = preds.y[rows]
        model_mae = batched.METRICS["mae"](y, out[rows].astype(np.float64))
        naive_mae = batched.METRICS["mae"](y, preds.naive[rows].astype(np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(naive_mae > 0, model_mae / naive_mae, np.nan)
    return batched.METRICS[metric](preds.y[rows], out[rows].astype(np.float64))


def _frechet(metric: str, preds: Predictions, out: np.ndarray, rows: np.ndarray) -> np.ndarray:
    from neuroflow.evaluation.generative import frechet_distance

    fid = np.array([frechet_distance(out[r], preds.y[r]) for r in rows])
    if metric == "fid":
        return fid
    if preds.naive is None:
        raise GateConfigError("fid_ratio needs held-out real rows' features (the reference)")
    real = np.array([frechet_distance(preds.naive[r], preds.y[r]) for r in rows])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(real > 0, fid / real, np.nan)


def score(metric: str, preds: Predictions) -> float:
    """`metric` on all rows (NaN where undefined, e.g. ROC AUC with one class present)."""
    return float(_batched(metric, preds, np.arange(len(preds.y))[None, :])[0])


def improvement(metric: str, champion: float | np.ndarray, challenger: float | np.ndarray) -> Any:
    """challenger - champion, signed so that positive always means better."""
    diff = np.subtract(challenger, champion)
    return diff if higher_is_better(metric) else -diff


# --------------------------------------------------------------------------- evidence


@dataclass(frozen=True)
class Comparison:
    """Champion vs challenger on the primary metric, paired over the same rows."""

    metric: str
    higher_is_better: bool
    champion: float
    challenger: float
    improvement: float  # signed: positive = challenger better
    ci_low: float  # two-sided 95% paired bootstrap interval of the improvement
    ci_high: float
    rows: int
    resamples: int  # resamples where the metric was defined for both models
    identical: bool = False  # outputs equal on every row (within IDENTICAL_ATOL)


def paired_bootstrap(
    metric: str, champion: Predictions, challenger: Predictions, *, resamples: int, seed: int
) -> Comparison:
    """Resample rows with replacement; both models are scored on the SAME resampled rows."""
    n = len(challenger.y)
    if n == 0 or len(champion.y) != n:
        raise ValueError(f"paired bootstrap needs aligned non-empty rows ({len(champion.y)}, {n})")
    rng = np.random.default_rng(seed)
    width = 1 if challenger.proba is None else challenger.proba.shape[-1]
    block = max(1, _BLOCK_ELEMENTS // (n * width))
    deltas: list[np.ndarray] = []
    for start in range(0, resamples, block):
        rows = rng.integers(0, n, size=(min(block, resamples - start), n))
        champ = _batched(metric, champion, rows)
        chall = _batched(metric, challenger, rows)
        deltas.append(improvement(metric, champ, chall))
    delta = np.concatenate(deltas)
    delta = delta[np.isfinite(delta)]
    champ_point, chall_point = score(metric, champion), score(metric, challenger)
    if delta.size == 0:
        low = high = float("nan")
    else:
        low, high = (float(v) for v in np.percentile(delta, [2.5, 97.5]))
    return Comparison(
        metric=metric,
        higher_is_better=higher_is_better(metric),
        champion=champ_point,
        challenger=chall_point,
        improvement=float(improvement(metric, champ_point, chall_point)),
        ci_low=low,
        ci_high=high,
        rows=n,
        resamples=int(delta.size),
        identical=_same_outputs(champion, challenger),
    )


def _same_outputs(a: Predictions, b: Predictions) -> bool:
    x, y = a.output, b.output
    if x is None or y is None or x.shape != y.shape:
        return False
    return bool(np.allclose(x, y, rtol=0.0, atol=IDENTICAL_ATOL, equal_nan=True))


def required_delta(cfg: PromotionConfig, metric: str, champion: float) -> float:
    """The improvement a challenger must exceed: promotion.min_delta, else the metric default."""
    if cfg.min_delta is not None:
        return float(cfg.min_delta)
    if metric in RELATIVE_MIN_DELTA and np.isfinite(champion) and champion != 0:
        return RELATIVE_MIN_DELTA[metric] * abs(champion)
    return DEFAULT_MIN_DELTA


@dataclass(frozen=True)
class SliceResult:
    """One class (its recall) or one declared slice value (the primary metric on its rows)."""

    name: str  # "class=malignant", "color=red"
    metric: str
    rows: int
    champion: float
    challenger: float
    drop: float  # how much worse the challenger is (positive = worse); NaN = not judged
    judged: bool


def slice_results(
    metric: str,
    champion: Predictions,
    challenger: Predictions,
    *,
    classes: list[str],
    slices: dict[str, np.ndarray],
) -> list[SliceResult]:
    """Per class: recall on that class's rows. Per declared slice: the primary metric there.

    A slice where the primary metric is undefined (ROC AUC on rows of one class) is judged on
    accuracy instead; slices under MIN_SLICE_ROWS rows are reported but not judged.
    """
    results: list[SliceResult] = []
    if challenger.classification:
        for index, label in enumerate(classes):
            rows = np.flatnonzero(challenger.y == index)
            results.append(_slice(f"class={label}", "accuracy", champion, challenger, rows))
    for name, mask in slices.items():
        rows = np.flatnonzero(mask)
        result = _slice(name, metric, champion, challenger, rows)
        if result.judged and not np.isfinite(result.drop) and challenger.classification:
            result = _slice(name, "accuracy", champion, challenger, rows)
        results.append(result)
    return results


def _slice(
    name: str, metric: str, champion: Predictions, challenger: Predictions, rows: np.ndarray
) -> SliceResult:
    if len(rows) == 0:
        nan = float("nan")
        return SliceResult(name, metric, 0, nan, nan, nan, judged=False)
    champ = score(metric, champion.take(rows))
    chall = score(metric, challenger.take(rows))
    drop = -float(improvement(metric, champ, chall))
    return SliceResult(name, metric, len(rows), champ, chall, drop, len(rows) >= MIN_SLICE_ROWS)


# --------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateResult:
    promote: bool
    checks: list[Check]
    comparison: Comparison | None = None
    slices: list[SliceResult] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)  # metric -> challenger value
    min_delta: float | None = None  # the improvement the challenger had to exceed

    @property
    def reason(self) -> str:
        failed = [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]
        return "; ".join(failed) if failed else "all checks passed"

    def to_json(self) -> dict[str, Any]:
        def clean(value: Any) -> Any:
            if isinstance(value, float) and not np.isfinite(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        return {"promote": self.promote, "reason": self.reason, **clean(asdict(self))}


def decide(
    cfg: PromotionConfig,
    comparison: Comparison,
    slices: list[SliceResult],
    smoke: Check,
    *,
    policy: Sequence[Check] = (),
) -> GateResult:
    """Challenger vs an existing champion: a strict, confident improvement (module docstring)."""
    c = comparison
    delta = required_delta(cfg, c.metric, c.champion)
    checks = [smoke, *policy]
    values = f"{c.metric} champion {c.champion:.4f} → challenger {c.challenger:.4f}"
    if c.identical:
        point = f"no improvement: the predictions equal the champion's on all {c.rows} rows"
    elif not (np.isfinite(c.improvement) and c.improvement > 0):
        point = f"no improvement: {values} ({c.improvement:+.4f})"
    else:
        point = f"{values}: improvement {c.improvement:+.4f}"
    checks.append(
        Check(
            "min_delta",
            bool(not c.identical and np.isfinite(c.improvement) and c.improvement > delta),
            f"{point}; must be > {delta:.4g}",
        )
    )
    checks.append(
        Check(
            "confidence",
            bool(not c.identical and np.isfinite(c.ci_low) and c.ci_low > delta),
            f"95% CI of the improvement [{c.ci_low:+.4f}, {c.ci_high:+.4f}] "
            f"({c.resamples} paired resamples of {c.rows} rows); lower bound must be > "
            f"{delta:.4g}",
        )
    )
    judged = [s for s in slices if s.judged and np.isfinite(s.drop)]
    worst = [s for s in judged if s.drop > cfg.max_slice_drop]
    if worst:
        detail = ", ".join(
            f"{s.name} {s.metric} {s.champion:.4f} → {s.challenger:.4f} (drop {s.drop:.4f})"
            for s in worst
        )
        detail += f" > max_slice_drop {cfg.max_slice_drop}"
    else:
        top = max((s.drop for s in judged), default=float("nan"))
        detail = f"{len(judged)} slices judged, worst drop {top:.4f} <= {cfg.max_slice_drop}"
    checks.append(Check("slices", not worst, detail))
    return GateResult(all(ch.passed for ch in checks), checks, comparison, slices, min_delta=delta)


def decide_first(
    cfg: PromotionConfig, challenger: Predictions, smoke: Check, *, policy: Sequence[Check] = ()
) -> GateResult:
    """No champion yet: absolute thresholds on the frozen test rows decide."""
    checks = [smoke, *policy]
    values: dict[str, float] = {}
    thresholds = cfg.thresholds_for(challenger.task)
    if not thresholds:
        checks.append(Check("thresholds", True, f"no promotion.thresholds.{challenger.task} set"))
    for metric, bound in sorted(thresholds.items()):
        key = f"promotion.thresholds.{challenger.task}.{metric}"
        check_metric(metric, challenger.task, key=key)
        value = score(metric, challenger)
        values[metric] = value
        if higher_is_better(metric):
            passed, op = bool(np.isfinite(value) and value >= bound), ">="
        else:
            passed, op = bool(np.isfinite(value) and value <= bound), "<="
        checks.append(Check(f"threshold {metric}", passed, f"{value:.4f} vs required {op} {bound}"))
    return GateResult(all(ch.passed for ch in checks), checks, thresholds=values)
