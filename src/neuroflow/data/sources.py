"""Load the configured source into one DataFrame: feature columns plus the target column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neuroflow.errors import DataError

# scikit-learn datasets that ship inside the package: nothing is downloaded.
BUNDLED = ("breast_cancer", "iris", "wine", "diabetes", "digits")


class SourceError(DataError):
    """The source cannot be read or is structurally unusable; the message names the file."""


def load_bundled(name: str, target: str) -> pd.DataFrame:
    from sklearn import datasets

    if name not in BUNDLED:
        raise SourceError(f"data.name={name!r} is not a bundled dataset; choose one of {BUNDLED}")
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    return frame.rename(columns={"target": target}) if target != "target" else frame


def read_table(path: Path, kind: str, delimiter: str = ",") -> pd.DataFrame:
    if not path.is_file():
        raise SourceError(f"{path}: file not found")
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=delimiter, encoding="utf-8", encoding_errors="strict")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path}: not valid UTF-8 at byte {exc.start} ({exc.reason}); "
            "re-encode the file as UTF-8"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise SourceError(f"{path}: the file is empty (no header, no rows)") from exc
    except (pd.errors.ParserError, OSError, ValueError) as exc:
        raise SourceError(f"{path}: cannot be read as {kind}: {exc}") from exc
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        if type(exc).__module__.startswith("pyarrow"):
            raise SourceError(f"{path}: corrupt or truncated {kind} file: {exc}") from exc
        raise


def check_structure(frame: pd.DataFrame, *, origin: str, target: str, max_rows: int) -> None:
    """Refuse what no expectation suite can meaningfully judge."""
    if target not in frame.columns:
        cols = list(frame.columns)[:10]
        hint = " (one column only: wrong data.csv_delimiter?)" if frame.shape[1] == 1 else ""
        raise SourceError(f"{origin}: target column {target!r} not found{hint}; columns are {cols}")
    if frame.empty:
        raise SourceError(f"{origin}: no data rows (header only)")
    if len(frame) > max_rows:
        raise SourceError(
            f"{origin}: {len(frame)} rows exceeds data.max_rows={max_rows}; raise the limit "
            "if this is intended"
        )


def normalise_types(
    frame: pd.DataFrame, *, target: str, categorical: list[str]
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Numeric features become float64 and the rest strings, so every source has one schema.

    Returns the frame and the numeric / categorical feature names in column order.
    """
    out = frame.copy()
    numeric: list[str] = []
    cats: list[str] = []
    for col in out.columns:
        if col == target:
            continue
        series = out[col]
        if col not in categorical and (
            pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        ):
            out[col] = series.astype(np.float64)
            numeric.append(col)
        else:
            out[col] = series.astype("string")
            cats.append(col)
    return out, numeric, cats
