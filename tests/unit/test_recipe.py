"""The Params → model spec recipe: every `model.*` key reaches the spec under its own name."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from neuroflow.config import ModelConfig, load_params
from neuroflow.models.spec import ModelSpec
from neuroflow.recipe import build_spec

REPO = Path(__file__).resolve().parents[2]


def test_every_model_key_is_a_spec_field() -> None:
    # build_spec passes params.model through whole: a key with no spec field would fail there.
    assert set(ModelConfig.model_fields) <= {f.name for f in fields(ModelSpec)}


def test_model_keys_reach_the_spec_and_the_data_decides_the_rest() -> None:
    overrides = {
        "model.hidden": [7, 5],
        "model.activation": "gelu",
        "model.dropout": 0.25,
        "model.batch_norm": True,
        "model.init": "xavier",
        "model.channels": [3],
        "model.kernel_size": 5,
        "model.hidden_size": 9,
        "model.layers": 2,
        "model.d_model": 12,
        "model.heads": 3,
        "model.latent": 4,
    }
    params = load_params(REPO / "params.yaml", overrides)
    spec = build_spec(params, 30, [0, 1], np.zeros(10), {"season": 6})
    assert {key: getattr(spec, key.removeprefix("model.")) for key in overrides} == overrides
    assert (spec.type, spec.task, spec.input_dim, spec.output_dim) == ("mlp", "binary", 30, 2)
    assert spec.input_shape == [30] and spec.classes == [0, 1] and spec.season == 6
    spec.hidden.append(1)  # the spec holds its own lists, not the params' ones
    assert params.model.hidden == [7, 5]
