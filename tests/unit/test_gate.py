"""The promotion gate on synthetic predictions: metrics, paired bootstrap, decision rules."""

from __future__ import annotations

import numpy as np
import pytest

from neuroflow.config import PromotionConfig
from neuroflow.evaluation.metrics import classification_metrics, regression_metrics
from neuroflow.registry.gate import (
    Check,
    GateConfigError,
    Predictions,
    decide,
    decide_first,
    paired_bootstrap,
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
    comparison = paired_bootstrap(
        config.metric, champion, challenger, resamples=config.bootstrap, seed=0
    )
    slices = slice_results(
        config.metric,
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
    assert "roc_auc improvement -" in result.reason


def test_identical_models_tie_exactly() -> None:
    same = binary(2.0, seed=1)
    result = gate(same, same, cfg())
    c = result.comparison
    assert c is not None and c.improvement == 0 and c.ci_low == 0 and c.ci_high == 0
    # A tie passes with min_delta=0 (the lower bound 0 > -tolerance) ...
    assert result.promote
    # ... and fails once a real improvement is required.
    strict = gate(same, same, cfg(min_delta=0.01))
    assert not strict.promote and "min_delta" in strict.reason


def test_small_point_loss_fails_min_delta_even_inside_tolerance() -> None:
    champion = binary(2.0, seed=1)
    challenger = Predictions("binary", champion.y, proba=champion.proba[::1].copy())  # type: ignore[index]
    challenger.proba[:3] = challenger.proba[:3, ::-1]  # type: ignore[index]  # flip 3 rows
    result = gate(champion, challenger, cfg(min_delta=0.0, tolerance=0.05))
    c = result.comparison
    assert c is not None and c.improvement < 0  # a little worse on the point estimate
    assert not result.promote and "min_delta" in result.reason  # but min_delta still applies


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
