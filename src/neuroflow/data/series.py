"""Univariate time series: bundled or file sources, fixed-length windows, chronological splits.

A window row holds the `window` past values as columns `lag_<k>` (k steps back, oldest first)
and the next value as the target. Those raw windows are what the pipeline validates, what the
network reads (after train-fitted scaling) and what the exported graph takes as input.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from neuroflow.data.sources import SourceError, read_table

# name -> (file inside neuroflow/data/bundled, time column, value column)
BUNDLED_SERIES: dict[str, tuple[str, str, str]] = {
    "airline": ("airline_passengers.csv", "month", "passengers"),
}
TIME = "time"


def load_series(
    name: str, path: Path | None = None, value_column: str = "value", delimiter: str = ","
) -> pd.DataFrame:
    """The series as a frame with columns `time` (as read) and `value` (float64), in order."""
    if path is None:
        if name not in BUNDLED_SERIES:
            raise SourceError(
                f"data.name={name!r} is not a bundled series; choose one of {list(BUNDLED_SERIES)}"
            )
        fname, time_col, value_col = BUNDLED_SERIES[name]
        with resources.as_file(resources.files("neuroflow.data") / "bundled" / fname) as f:
            frame = pd.read_csv(f)
        origin = f"series:{name}"
    else:
        kind = "parquet" if path.suffix == ".parquet" else "csv"
        frame = read_table(path, kind, delimiter)
        time_col, value_col, origin = "", value_column, str(path)
    if value_col not in frame.columns:
        raise SourceError(
            f"{origin}: value column {value_col!r} not found in {list(frame.columns)}"
        )
    values = pd.to_numeric(frame[value_col], errors="coerce").astype("float64")
    if values.isna().any():
        rows = values.index[values.isna()].tolist()[:5]
        raise SourceError(
            f"{origin}: column {value_col!r} has missing/non-numeric values, rows {rows}"
        )
    times = (
        frame[time_col].astype("string")
        if time_col
        else pd.Series([str(i) for i in range(len(frame))], dtype="string")
    )
    return pd.DataFrame({TIME: times.to_numpy(), "value": values.to_numpy()})


def lag_columns(window: int) -> list[str]:
    return [f"lag_{k}" for k in range(window, 0, -1)]


def make_windows(series: pd.DataFrame, window: int, target: str) -> pd.DataFrame:
    """One row per forecastable step: the `window` previous values and the value itself."""
    values = series["value"].to_numpy(dtype=np.float64)
    if len(values) <= window:
        raise SourceError(f"series of {len(values)} values is too short for data.window={window}")
    stacked = np.lib.stride_tricks.sliding_window_view(values, window + 1)
    frame = pd.DataFrame(stacked[:, :window], columns=lag_columns(window))
    frame[target] = stacked[:, window]
    frame.insert(0, TIME, series[TIME].to_numpy()[window:])
    return frame


def chronological_indices(
    rows: int, *, val_fraction: float, test_fraction: float
) -> dict[str, np.ndarray]:
    """Row positions of each split: train on the past, validate on what follows, test on the
    most recent horizon."""
    n_test = max(1, round(rows * test_fraction))
    n_val = max(1, round(rows * val_fraction))
    if rows - n_test - n_val < 2:
        raise SourceError(
            f"{rows} windows are too few for val/test fractions {val_fraction}/{test_fraction}"
        )
    cut_val, cut_test = rows - n_test - n_val, rows - n_test
    return {
        "train": np.arange(cut_val),
        "val": np.arange(cut_val, cut_test),
        "test": np.arange(cut_test, rows),
    }
