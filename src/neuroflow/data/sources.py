"""Load the configured source into one DataFrame: feature columns plus the target column."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroflow.data import bundled
from neuroflow.errors import DataError

# scikit-learn datasets that ship inside the package: nothing is downloaded.
BUNDLED = tuple(bundled.FEATURE_NAMES)


class SourceError(DataError):
    """The source cannot be read or is structurally unusable; the message names the file."""


def load_bundled(name: str, target: str) -> pd.DataFrame:
    if name not in BUNDLED:
        raise SourceError(f"data.name={name!r} is not a bundled dataset; choose one of {BUNDLED}")
    frame = bundled.load(name)
    return frame.rename(columns={"target": target}) if target != "target" else frame


def read_table(path: Path, kind: str, delimiter: str = ",") -> pd.DataFrame:
    if not path.exists():
        raise SourceError(f"{path}: file not found (data.path is relative to the project root)")
    if not path.is_file():
        raise SourceError(f"{path}: not a file (data.path must name a {kind} file)")
    if path.stat().st_size == 0:  # Parquet's reader would call it corrupt
        raise SourceError(f"{path}: the file is empty (0 bytes: no header, no rows)")
    try:
        if kind == "parquet":
            return read_parquet(path)
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


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file as a DataFrame, holding the data about once rather than three times.

    Plain ``pd.read_parquet`` buffers the whole file, keeps the whole Arrow table alive until the
    pandas copy is built and then consolidates the columns into one block (a third copy). Here
    column chunks are read as decoded, each Arrow column is released once converted, and the
    columns stay separate blocks: at 3·10⁶ × 32 float32 the peak is 1.5× the data, not 2.5×, and
    what is left afterwards is the data (+0.15×).
    """
    import pyarrow as pa

    frame = pd.read_parquet(
        path,
        engine="pyarrow",
        pre_buffer=False,
        to_pandas_kwargs={"self_destruct": True, "split_blocks": True},
    )
    # Arrow's allocator keeps the pages it decoded into for reuse; numpy never reuses them.
    pa.default_memory_pool().release_unused()
    return frame


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
    """Numeric features become floats and the rest strings, so every source has one schema.

    float32 and float64 columns keep their width (float32 halves the memory of a large table,
    and the network trains in float32 anyway); other numeric columns (integers, nullable and
    float16 ones) become float64; bools count as categorical. Columns that already have their
    final type are not copied: the result shares their data, and `frame` is left as it is.

    Returns the frame and the numeric / categorical feature names in column order.
    """
    changed: dict[str, pd.Series] = {}
    numeric: list[str] = []
    cats: list[str] = []
    for col in frame.columns:
        if col == target:
            continue
        series = frame[col]
        if col not in categorical and (
            pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        ):
            numeric.append(col)
            if series.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
                changed[col] = series.astype(np.float64)
        else:
            cats.append(col)
            changed[col] = series.astype("string")
    out = frame.copy(deep=False)  # copy-on-write: shares every column until one is replaced
    for col, values in changed.items():
        out[col] = values
    return out, numeric, cats


# A column in which at least this share of the filled cells are numbers is numeric, and its
# other cells are mistakes (a typo, "?" or "-" for a missing value) to be fixed, not a reason to
# read the whole column as text. Below it, the column is categorical.
NUMERIC_SHARE = 0.95
EXAMPLES = 5  # offending cells quoted in a message
_SAMPLE = 2000  # cells a first look reads before parsing a whole text column


@dataclass(frozen=True)
class RowLocator:
    """Names a row of the loaded frame as a person opening the source file finds it.

    A CSV row is named by its 1-based line in the file, the header being line 1, counted as
    pandas reads the file: blank lines are skipped and a quoted field may span lines. Any other
    row (Parquet, bundled data) by its 1-based position among the data rows.
    """

    csv: Path | None = None
    delimiter: str = ","

    def names(self, positions: Sequence[int]) -> list[str]:
        """'line 27' (CSV) or 'row 26' for each 0-based position in the frame as read."""
        if self.csv is None:
            return [f"row {p + 1}" for p in positions]
        lines = csv_lines(self.csv, self.delimiter, positions)
        return [f"line {lines[p]}" if p in lines else f"row {p + 1}" for p in positions]


def csv_lines(path: Path, delimiter: str, positions: Sequence[int]) -> dict[int, int]:
    """The 1-based file line on which each 0-based data row starts (read only on failures)."""
    wanted, found = set(positions), {}
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        end, row = 0, -1  # row -1 is the header: the first non-blank record
        for record in reader:
            start, end = end + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # pandas skips blank and whitespace-only lines
            if row in wanted:
                found[row] = start
                if len(found) == len(wanted):
                    break
            row += 1
    return found


def quote_cells(locator: RowLocator, positions: Sequence[int], values: Sequence[object]) -> str:
    """'line 27 'twelve', line 52 '?', …' for the first few cells."""
    shown = list(positions[:EXAMPLES])
    names = locator.names(shown)
    text = ", ".join(f"{name} {value!r}" for name, value in zip(names, values, strict=False))
    return text + (", …" if len(positions) > EXAMPLES else "")


def name_rows(locator: RowLocator, positions: Sequence[int]) -> str:
    """'line 5, line 273, …' for the first few rows."""
    names = locator.names(list(positions[:EXAMPLES]))
    return ", ".join(names) + (", …" if len(positions) > EXAMPLES else "")


def text_cells(series: pd.Series) -> tuple[pd.Series, int]:
    """The filled cells of `series` that are not numbers, and how many cells are filled."""
    text = series.dropna().astype(str).str.strip()
    filled = text[text != ""]
    return filled[pd.to_numeric(filled, errors="coerce").isna()], len(filled)


def text_in_numeric_columns(
    frame: pd.DataFrame, *, origin: str, locator: RowLocator, skip: Sequence[str]
) -> None:
    """Refuse a column that is numeric but for a few cells, naming each cell's line and value.

    Otherwise the reader makes the whole column text, and every split fails its type rule far
    from the cause. A column is numeric when at least NUMERIC_SHARE of its filled cells parse as
    numbers; columns in `skip` (the target, data.categorical) are never judged.
    """
    problems: list[str] = []
    for col in frame.columns:
        series = frame[col]
        if col in skip or pd.api.types.is_numeric_dtype(series):
            continue
        sample = series.dropna()
        sample = sample.sample(_SAMPLE, random_state=0) if len(sample) > _SAMPLE else sample
        bad, filled = text_cells(sample)
        if not filled or len(bad) > 0.2 * filled:  # plainly text: skip the full pass
            continue
        bad, filled = text_cells(series)
        if not bad.size or filled - len(bad) < NUMERIC_SHARE * filled:
            continue
        positions = frame.index.get_indexer(bad.index).tolist()
        problems.append(
            f"{origin}, column {col!r}: {len(bad)} cell(s) are not numbers in a numeric column "
            f"({filled - len(bad)} of {filled} filled cells are): "
            f"{quote_cells(locator, positions, bad.tolist())}. Fix these cells, leave missing "
            f"values empty (or NA), or list {col!r} in data.categorical if it is not numeric"
        )
    if problems:
        raise SourceError("\n".join(problems))
