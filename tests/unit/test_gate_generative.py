"""The gate judges a generative challenger by the Fréchet distance, lower is better."""

from __future__ import annotations

import numpy as np
import pytest

from neuroflow.config import PromotionConfig
from neuroflow.registry.gate import Check, Predictions, decide, decide_first, paired_bootstrap

ROWS, WIDTH = 200, 6


def features(shift: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, size=(ROWS, WIDTH))


def generated(shift: float) -> Predictions:
    # Held-out rows, the model's samples, other held-out real rows: one row each per resample.
    return Predictions("generative", features(0, 1), value=features(shift, 2), naive=features(0, 3))


SMOKE = Check("smoke", True, "loads and generates")


def test_closer_samples_win_with_a_confident_bootstrap() -> None:
    champion, challenger = generated(1.0), generated(0.2)
    comparison = paired_bootstrap("fid", champion, challenger, resamples=200, seed=0)
    assert not comparison.higher_is_better
    assert comparison.challenger < comparison.champion  # lower distance
    assert comparison.improvement > 0 and comparison.ci_low > 0  # positive = better
    result = decide(PromotionConfig(), comparison, [], SMOKE)
    assert result.promote, result.reason
    worse = paired_bootstrap("fid", challenger, champion, resamples=200, seed=0)
    assert worse.improvement < 0
    assert not decide(PromotionConfig(), worse, [], SMOKE).promote


def test_identical_generators_are_no_improvement() -> None:
    same = paired_bootstrap("fid", generated(0.5), generated(0.5), resamples=100, seed=0)
    assert same.identical and not decide(PromotionConfig(), same, [], SMOKE).promote


@pytest.mark.parametrize(("shift", "passes"), [(0.1, True), (2.0, False)])
def test_first_champion_needs_fid_within_three_times_real_vs_real(
    shift: float, passes: bool
) -> None:
    cfg = PromotionConfig(thresholds={"generative": {"fid_ratio": 3.0}})
    result = decide_first(cfg, generated(shift), SMOKE)
    assert result.promote is passes
    assert "fid_ratio" in result.thresholds
