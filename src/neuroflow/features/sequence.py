"""Sequence preprocessing: one affine scaling for every lag, fitted on the train windows only.

Each window is a row of `lag_<k>` columns; all lags are the same quantity, so they share one
centre and scale (fitted on the train split's values, which all precede validation and test).
The result is a plain `FittedPreprocessor`, so the exported graph scales raw windows itself.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from neuroflow.features.transform import FittedPreprocessor, PreprocessOptions, fit_preprocessor


def fit_sequence_preprocessor(
    frame: pd.DataFrame, y: pd.Series, lags: list[str], options: PreprocessOptions
) -> FittedPreprocessor:
    base = fit_preprocessor(
        frame,
        y,
        numeric=lags,
        options=replace(options, scale="none", select="none", pca=0),
        classification=False,
    )
    values = frame[lags].to_numpy(dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    center, scale = 0.0, 1.0
    if values.size and options.scale == "standard":
        center, scale = float(values.mean()), float(values.std())
    elif values.size and options.scale == "minmax":
        center, scale = float(values.min()), float(values.max() - values.min())
    elif values.size and options.scale == "robust":
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        center, scale = float(q50), float(q75 - q25)
    scale = scale if np.isfinite(scale) and scale > 1e-12 else 1.0
    n = len(base.selected)
    return replace(base, center=[center] * n, scale=[scale] * n)


def seasonal_naive(frame: pd.DataFrame, season: int) -> np.ndarray:
    """The seasonal-naive forecast of each window's target: the value one season back."""
    return frame[f"lag_{season}"].to_numpy(dtype=np.float64)
