"""The generator's ONNX export: latent vectors in, images in the data's pixel units out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits

from neuroflow.config import ExportConfig
from neuroflow.export.generator import export_generator, pixel_scale, run_generator
from neuroflow.features.image import fit_image_preprocessor
from neuroflow.features.transform import PreprocessOptions
from neuroflow.models.factory import build_model
from neuroflow.models.spec import ModelSpec


def digits_preprocessor(mode: str = "global"):  # type: ignore[no-untyped-def]
    x, y = load_digits(return_X_y=True)
    pixels = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    frame = pd.DataFrame(x[:200], columns=pixels)
    return fit_image_preprocessor(frame, pd.Series(y[:200]), pixels, PreprocessOptions(), mode)


def test_generator_onnx_matches_pytorch_in_pixel_units() -> None:
    torch.manual_seed(0)
    spec = ModelSpec(
        type="gan",
        task="generative",
        input_dim=64,
        output_dim=64,
        input_shape=[1, 8, 8],
        latent=8,
        channels=[8, 16],
    )
    gan = build_model(spec).eval()
    pre = digits_preprocessor()
    assert pixel_scale(pre) == 16.0  # the digits' maximum pixel value
    exported = export_generator(gan, pre, ExportConfig(), seed=0)
    assert exported.parity_max_abs_diff <= 1e-4
    assert [i.name for i in exported.model.graph.input] == ["latent"]
    z = np.random.default_rng(1).standard_normal((9, 8)).astype(np.float32)
    images = run_generator(exported.model.SerializeToString(), z)
    assert images.shape == (9, 1, 8, 8)
    with torch.inference_mode():
        expected = gan(torch.from_numpy(z)).numpy().reshape(9, 1, 8, 8) * 16.0
    np.testing.assert_allclose(images, expected, atol=1e-4)
    assert exported.example["latent"].shape == (5, 8)


def test_per_pixel_scaling_is_refused() -> None:
    with pytest.raises(ValueError, match="image_scale=global"):
        pixel_scale(digits_preprocessor("per_pixel"))
