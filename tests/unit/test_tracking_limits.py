"""Descriptions fit MLflow's SQL columns: a PostgreSQL-backed server refuses longer ones."""

from __future__ import annotations

from neuroflow.tracking import DESCRIPTION_LIMIT, _fit


def test_a_long_model_card_is_clipped_to_the_store_limit_and_says_so() -> None:
    card = "# Model card\n" + "\n".join(f"- feature_{i}: 0.123" for i in range(600))
    assert len(card) > DESCRIPTION_LIMIT
    fitted = _fit(card)
    assert len(fitted) <= DESCRIPTION_LIMIT
    assert fitted.startswith("# Model card\n- feature_0")
    assert "model_card/MODEL_CARD.md" in fitted


def test_a_short_description_is_kept_whole() -> None:
    assert _fit("# Model card\nshort\n") == "# Model card\nshort\n"
