"""The promotion gate on synthetic predictions: metrics, paired bootstrap, decision rules."""

from __future__ import annotations

import numpy as np
import pytest

from neuroflow.config import PromotionConfig
from neuroflow.evaluation.metrics import (
    classification_metrics,
    forecast_metrics,
    regression_metrics,
)
from neuroflow.registry.gate import (
    DEFAULT_MIN_DELTA,
    Check,
    GateConfigError,
    Predictions,
    decide,
    decide_first,
    paired_bootstrap,
    required_delta,
    score,
    slice_results,
)

SMOKE_OK = Check("smoke", True, "ok")
N = 400


def noisy_classifier(y: np.ndarray, n_classes: int, skill: float, seed: int) -> np.ndarray:
    """Probabilities whose separation from the truth grows with `skill`."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(y), n_classes))
    logits[np.arange(len(y)), y] += skill
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def binary(skill: float, seed: int, y_seed: int = 0) -> Predictions:
    y = np.random.default_rng(y_seed).integers(0, 2, size=N)
    return Predictions("binary", y, proba=noisy_classifier(y, 2, skill, seed))


def cfg(**overrides: object) -> PromotionConfig:
    base: dict[str, object] = {"metric": "roc_auc", "bootstrap": 500}
    return PromotionConfig.model_validate({**base, **overrides})


def gate(champion: Predictions, challenger: Predictions, config: PromotionConfig):  # type: ignore[no-untyped-def]
    metric = config.metric_for(challenger.task)
    comparison = paired_bootstrap(metric, champion, challenger, resamples=config.bootstrap, seed=0)
    slices = slice_results(
        metric,
        champion,
        challenger,
        classes=["0", "1", "2"][: _width(challenger)],
        slices={},
    )
    return decide(config, comparison, slices, SMOKE_OK)


def _width(p: Predictions) -> int:
    return 0 if p.proba is None else p.proba.shape[1]


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("n_classes", [2, 3])
def test_metrics_match_the_evaluate_stage(n_classes: int) -> None:
    y = np.random.default_rng(1).integers(0, n_classes, size=300)
    proba = noisy_classifier(y, n_classes, 1.0, seed=2)
    expected, _ = classification_metrics(y, proba, list(range(n_classes)))
    preds = Predictions("multiclass" if n_classes > 2 else "binary", y, proba=proba)
    for name, value in expected.items():
        assert score(name, preds) == pytest.approx(value, abs=1e-9), name


def test_regression_metrics_match_the_evaluate_stage() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=200)
    pred = y + rng.normal(scale=0.3, size=200)
    expected = regression_metrics(y, pred)
    preds = Predictions("regression", y, value=pred)
    for name, value in expected.items():
        assert score(name, preds) == pytest.approx(value, abs=1e-9), name


def test_auc_is_undefined_with_one_class_present() -> None:
    y = np.zeros(10, dtype=int)
    preds = Predictions("binary", y, proba=np.full((10, 2), 0.5))
    assert np.isnan(score("roc_auc", preds))


# --------------------------------------------------------------------------- decisions


def test_better_challenger_is_promoted() -> None:
    result = gate(binary(0.5, seed=1), binary(3.0, seed=2), cfg())
    assert result.promote, result.reason
    c = result.comparison
    assert c is not None and c.improvement > 0.1 and c.ci_low > 0
    assert c.ci_low <= c.improvement <= c.ci_high
    assert result.reason == "all checks passed"


def test_worse_challenger_is_rejected_on_confidence_and_delta() -> None:
    result = gate(binary(3.0, seed=1), binary(0.5, seed=2), cfg())
    assert not result.promote
    failed = {c.name for c in result.checks if not c.passed}
    assert {"min_delta", "confidence"} <= failed
    assert "min_delta: no improvement: roc_auc champion" in result.reason
    assert result.comparison is not None and result.comparison.improvement < 0


def test_identical_models_are_no_improvement() -> None:
    """Equal is not better: a tie is rejected under the default and any explicit min_delta."""
    same = binary(2.0, seed=1)
    result = gate(same, same, cfg())
    c = result.comparison
    assert c is not None and c.improvement == 0 and c.ci_low == 0 and c.ci_high == 0
    assert c.identical
    assert not result.promote
    assert {ch.name for ch in result.checks if not ch.passed} == {"min_delta", "confidence"}
    assert "no improvement: the predictions equal the champion's on all 400 rows" in result.reason
    assert result.min_delta == DEFAULT_MIN_DELTA > 0
    strict = gate(same, same, cfg(min_delta=0.01))
    assert not strict.promote and "no improvement" in strict.reason


def test_different_weights_with_identical_predictions_are_no_improvement() -> None:
    """Outputs that differ only by float rounding (e.g. permuted hidden units) are a tie."""
    champion = binary(2.0, seed=1)
    assert champion.proba is not None
    rounding = np.random.default_rng(5).normal(scale=1e-8, size=champion.proba.shape)
    challenger = Predictions("binary", champion.y, proba=champion.proba + rounding)
    result = gate(champion, challenger, cfg())
    assert result.comparison is not None and result.comparison.identical
    assert not result.promote and "no improvement" in result.reason


def test_small_point_loss_is_no_improvement() -> None:
    champion = binary(2.0, seed=1)
    challenger = Predictions("binary", champion.y, proba=champion.proba[::1].copy())  # type: ignore[index]
    challenger.proba[:3] = challenger.proba[:3, ::-1]  # type: ignore[index]  # flip 3 rows
    result = gate(champion, challenger, cfg(min_delta=1e-6))
    c = result.comparison
    assert c is not None and c.improvement < 0 and not c.identical  # a little worse
    assert not result.promote and "min_delta: no improvement" in result.reason


def test_lower_bound_must_exceed_min_delta() -> None:
    """A point gain above min_delta is not enough: the 95% lower bound must clear it too."""
    champion = binary(1.0, seed=1)
    challenger = binary(1.15, seed=1)  # the same noise, a little more skill
    comparison = paired_bootstrap("roc_auc", champion, challenger, resamples=500, seed=0)
    assert comparison.improvement > 0 and comparison.ci_low > 0
    between = (comparison.ci_low + comparison.improvement) / 2
    result = decide(cfg(min_delta=between), comparison, [], SMOKE_OK)
    assert [c.name for c in result.checks if not c.passed] == ["confidence"]
    assert decide(cfg(min_delta=comparison.ci_low / 2), comparison, [], SMOKE_OK).promote


def test_default_min_delta_is_positive_per_metric() -> None:
    config = PromotionConfig()
    assert config.min_delta is None  # unset: the documented per-metric default applies
    for metric in ("roc_auc", "accuracy", "f1_macro", "log_loss", "r2", "mae_vs_naive"):
        assert required_delta(config, metric, 0.8) == DEFAULT_MIN_DELTA > 0
    # rmse and mae are in the target's units: 0.1% of the champion's value.
    assert required_delta(config, "rmse", 2500.0) == pytest.approx(2.5)
    assert required_delta(config, "mae", 0.02) == pytest.approx(2e-5)
    assert required_delta(cfg(min_delta=0.02), "rmse", 2500.0) == 0.02  # explicit wins
    with pytest.raises(ValueError, match="greater than 0"):
        PromotionConfig(min_delta=0.0)


def test_class_regression_blocks_promotion() -> None:
    """Better AUC overall, but class 1's recall collapses: the slice rule rejects it."""
    champion = binary(2.0, seed=1)
    proba = noisy_classifier(champion.y, 2, 4.0, seed=2)
    # Shift every score toward class 0: ranking (AUC) is untouched, class-1 recall drops.
    shifted = proba.copy()
    shifted[:, 1] = proba[:, 1] * 0.3
    shifted[:, 0] = 1 - shifted[:, 1]
    challenger = Predictions("binary", champion.y, proba=shifted)
    result = gate(champion, challenger, cfg())
    assert result.comparison is not None and result.comparison.improvement > 0
    assert not result.promote
    assert [c.name for c in result.checks if not c.passed] == ["slices"]
    assert "class=1" in result.reason


def test_declared_slice_regression_names_the_slice() -> None:
    champion = binary(2.0, seed=1)
    challenger = binary(2.0, seed=1)
    region = np.arange(N) % 4 == 0
    broken = challenger.proba.copy()  # type: ignore[union-attr]
    broken[region] = broken[region][:, ::-1]  # wrong on a quarter of the rows
    challenger = Predictions("binary", challenger.y, proba=broken)
    slices = slice_results(
        "roc_auc",
        champion,
        challenger,
        classes=["0", "1"],
        slices={"site=north": region, "site=rest": ~region},
    )
    by_name = {s.name: s for s in slices}
    assert by_name["site=north"].drop > 0.5 and by_name["site=rest"].drop == pytest.approx(0)
    config = cfg()
    comparison = paired_bootstrap("roc_auc", champion, challenger, resamples=200, seed=0)
    result = decide(config, comparison, slices, SMOKE_OK)
    assert not result.promote and "site=north" in result.reason


def test_tiny_slices_are_reported_not_judged() -> None:
    champion = binary(2.0, seed=1)
    mask = np.zeros(N, dtype=bool)
    mask[:3] = True
    flipped = champion.proba.copy()  # type: ignore[union-attr]
    flipped[:3] = flipped[:3, ::-1]
    challenger = Predictions("binary", champion.y, proba=flipped)
    slices = slice_results(
        "accuracy", champion, challenger, classes=["0", "1"], slices={"rare=x": mask}
    )
    rare = next(s for s in slices if s.name == "rare=x")
    assert rare.rows == 3 and not rare.judged


def test_lower_is_better_metric_for_regression() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=N)
    champion = Predictions("regression", y, value=y + rng.normal(scale=1.0, size=N))
    challenger = Predictions("regression", y, value=y + rng.normal(scale=0.3, size=N))
    config = cfg(metric="rmse")
    comparison = paired_bootstrap("rmse", champion, challenger, resamples=300, seed=0)
    assert comparison.challenger < comparison.champion and comparison.improvement > 0
    assert decide(config, comparison, [], SMOKE_OK).promote
    reverse = paired_bootstrap("rmse", challenger, champion, resamples=300, seed=0)
    assert not decide(config, reverse, [], SMOKE_OK).promote


def test_failed_smoke_test_rejects_even_a_better_model() -> None:
    comparison = paired_bootstrap("roc_auc", binary(0.5, 1), binary(3.0, 2), resamples=200, seed=0)
    result = decide(cfg(), comparison, [], Check("smoke", False, "load failed: boom"))
    assert not result.promote and "boom" in result.reason


def test_bootstrap_is_reproducible_for_a_seed() -> None:
    a, b = binary(1.0, 1), binary(1.5, 2)
    first = paired_bootstrap("roc_auc", a, b, resamples=300, seed=7)
    again = paired_bootstrap("roc_auc", a, b, resamples=300, seed=7)
    assert first == again


# --------------------------------------------------------------------------- first model


def test_first_model_uses_absolute_thresholds() -> None:
    strong, weak = binary(4.0, seed=1), binary(0.2, seed=2)
    config = cfg(thresholds={"binary": {"accuracy": 0.8, "roc_auc": 0.9}})
    passed = decide_first(config, strong, SMOKE_OK)
    assert passed.promote and set(passed.thresholds) == {"accuracy", "roc_auc"}
    failed = decide_first(config, weak, SMOKE_OK)
    assert not failed.promote
    assert "threshold accuracy" in failed.reason and "threshold roc_auc" in failed.reason


def test_first_model_lower_is_better_threshold() -> None:
    y = np.linspace(0, 1, 50)
    preds = Predictions("regression", y, value=y + 0.1)

    def bar(rmse: float) -> PromotionConfig:
        return cfg(metric="rmse", thresholds={"regression": {"rmse": rmse}})

    assert decide_first(bar(0.2), preds, SMOKE_OK).promote
    assert not decide_first(bar(0.05), preds, SMOKE_OK).promote


def test_threshold_for_the_wrong_task_names_the_key() -> None:
    preds = Predictions("regression", np.zeros(5), value=np.zeros(5))
    with pytest.raises(GateConfigError, match=r"promotion\.thresholds\.regression\.accuracy"):
        decide_first(cfg(thresholds={"regression": {"accuracy": 0.9}}), preds, SMOKE_OK)


def test_thresholds_are_per_task_so_a_task_switch_inherits_none() -> None:
    """The binary defaults (accuracy, roc_auc) never judge a regression model."""
    y = np.linspace(0, 1, 50)
    preds = Predictions("regression", y, value=y + 0.01)
    result = decide_first(PromotionConfig(metric="r2"), preds, SMOKE_OK)
    assert result.promote and set(result.thresholds) == {"r2"}


def test_anomaly_scores_are_judged_by_roc_auc_only() -> None:
    y = np.random.default_rng(0).integers(0, 2, size=N)
    score_good = y + np.random.default_rng(1).normal(scale=0.3, size=N)
    preds = Predictions("anomaly", y, value=score_good)
    assert score("roc_auc", preds) > 0.95
    assert decide_first(cfg(), preds, SMOKE_OK).promote  # default anomaly bar: roc_auc 0.9
    noise = Predictions("anomaly", y, value=np.random.default_rng(2).normal(size=N))
    assert not decide_first(cfg(), noise, SMOKE_OK).promote
    with pytest.raises(GateConfigError, match="anomaly"):
        score("accuracy", preds)


def test_evidence_serialises_to_plain_json() -> None:
    import json

    result = gate(binary(0.5, 1), binary(3.0, 2), cfg())
    data = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert data["promote"] is True and data["comparison"]["metric"] == "roc_auc"


# --------------------------------------------------------------------------- per-task defaults


def _under_the_bar(task: str) -> Predictions:
    """A model that learned little, for each task (each misses its default first bar)."""
    rng = np.random.default_rng(11)
    if task in ("binary", "multiclass"):
        k = 2 if task == "binary" else 3
        y = rng.integers(0, k, size=N)
        return Predictions(task, y, proba=noisy_classifier(y, k, 0.3, seed=12))
    if task == "anomaly":
        labels = rng.integers(0, 2, size=N)
        return Predictions(task, labels, value=labels * 0.2 + rng.normal(size=N))
    series = np.cumsum(rng.normal(size=N)) + 100
    if task == "regression":
        noise = rng.normal(scale=series.std(), size=N)
        return Predictions(task, series, value=series.mean() + noise)
    naive = series + rng.normal(scale=1.0, size=N)  # the seasonal-naive forecast: mae about 0.8
    return Predictions(task, series, value=series + rng.normal(scale=1.0, size=N), naive=naive)


@pytest.mark.parametrize(
    ("task", "metric"),
    [
        ("binary", "accuracy"),
        ("binary", "roc_auc"),
        ("multiclass", "accuracy"),
        ("regression", "r2"),
        ("forecast", "mae_vs_naive"),
        ("anomaly", "roc_auc"),
    ],
)
def test_every_task_has_a_first_champion_bar_that_names_the_metric(task: str, metric: str) -> None:
    config = PromotionConfig()  # the shipped defaults (params.yaml holds the same)
    assert metric in config.thresholds_for(task)
    result = decide_first(config, _under_the_bar(task), SMOKE_OK)
    assert not result.promote
    assert f"threshold {metric}:" in result.reason, result.reason
    assert metric in result.thresholds


def test_forecast_bar_passes_a_model_that_beats_the_seasonal_naive() -> None:
    rng = np.random.default_rng(4)
    y = np.cumsum(rng.normal(size=N)) + 100
    good = Predictions(
        "forecast", y, value=y + rng.normal(scale=0.2, size=N), naive=y + rng.normal(size=N)
    )
    assert decide_first(PromotionConfig(), good, SMOKE_OK).promote


def test_mae_vs_naive_matches_the_evaluate_stage() -> None:
    rng = np.random.default_rng(8)
    y = rng.normal(size=120) * 10 + 300
    pred, naive = y + rng.normal(size=120), y + rng.normal(scale=3, size=120)
    expected = forecast_metrics(y, pred, naive)["mae_vs_naive"]
    assert score("mae_vs_naive", Predictions("forecast", y, value=pred, naive=naive)) == (
        pytest.approx(expected, rel=1e-12)
    )


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression", "forecast", "anomaly"])
def test_promotion_metric_defaults_per_task(task: str) -> None:
    """Unset, the metric always applies to the task: a regression user never meets roc_auc."""
    from neuroflow.registry.gate import check_metric

    config = PromotionConfig()
    assert config.metric is None
    metric = config.metric_for(task)
    check_metric(metric, task)
    assert PromotionConfig(metric="rmse").metric_for(task) == "rmse"  # explicit wins
