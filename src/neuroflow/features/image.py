"""Image preprocessing: pixel scaling fitted on train, shift augmentation for train only.

Images travel as flat pixel columns (`pixel_<r>_<c>`, C order), so the exported graph takes the
raw pixel columns and the tabular machinery (impute, affine scale) does the scaling in ONNX.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd

from neuroflow.features.transform import FittedPreprocessor, PreprocessOptions, fit_preprocessor

_PIXEL = re.compile(r"^pixel_(\d+)_(\d+)(?:_(\d+))?$")


def infer_image_shape(columns: list[str]) -> list[int] | None:
    """[C, H, W] from `pixel_r_c` / `pixel_ch_r_c` names in C order, else None."""
    parsed = [_PIXEL.match(c) for c in columns]
    if not parsed or any(m is None for m in parsed):
        return None
    idx = [tuple(int(g) for g in m.groups() if g is not None) for m in parsed if m]
    if len({len(i) for i in idx}) != 1:
        return None
    dims = [max(i[d] for i in idx) + 1 for d in range(len(idx[0]))]
    shape = [1, *dims] if len(dims) == 2 else dims
    expected = list(np.ndindex(*dims))
    return shape if idx == expected else None


def fit_image_preprocessor(
    frame: pd.DataFrame, y: pd.Series, pixels: list[str], options: PreprocessOptions, mode: str
) -> FittedPreprocessor:
    """`global`: every pixel divided by the train maximum (keeps 0 = background, so shifted
    copies stay valid); `per_pixel`: the tabular per-column scaling in `options.scale`."""
    if mode == "per_pixel":
        return fit_preprocessor(frame, y, numeric=pixels, options=options, classification=True)
    base = fit_preprocessor(
        frame,
        y,
        numeric=pixels,
        options=replace(options, scale="none", select="none", pca=0, impute_numeric="zero"),
        classification=True,
    )
    peak = float(np.nanmax(frame[pixels].to_numpy(dtype=np.float64))) if len(frame) else 1.0
    peak = peak if np.isfinite(peak) and peak > 0 else 1.0
    return replace(base, center=[0.0] * len(base.selected), scale=[peak] * len(base.selected))


def augment_shifts(
    x: np.ndarray, y: np.ndarray, shape: list[int], copies: int, max_shift: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Append `copies` randomly shifted versions of each image (zeros fill the border)."""
    if copies <= 0 or max_shift <= 0:
        return x, y
    rng = np.random.default_rng(seed)
    images = x.reshape(-1, *shape)
    out_x, out_y = [x], [y]
    for _ in range(copies):
        shifted = np.zeros_like(images)
        dy = rng.integers(-max_shift, max_shift + 1, size=len(images))
        dx = rng.integers(-max_shift, max_shift + 1, size=len(images))
        h, w = shape[-2], shape[-1]
        for i, (sy, sx) in enumerate(zip(dy, dx, strict=True)):
            src = images[i, ..., max(0, -sy) : h - max(0, sy), max(0, -sx) : w - max(0, sx)]
            shifted[
                i,
                ...,
                max(0, sy) : max(0, sy) + src.shape[-2],
                max(0, sx) : max(0, sx) + src.shape[-1],
            ] = src
        out_x.append(shifted.reshape(len(images), -1))
        out_y.append(y)
    return np.concatenate(out_x).astype(x.dtype), np.concatenate(out_y)
