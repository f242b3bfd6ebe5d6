"""Distribution drift of a split or batch against the train reference, per feature.

- numeric columns: the Population Stability Index (PSI) over train-quantile bins, or the
  two-sample Kolmogorov–Smirnov statistic (``method: ks``); missing values are a bin of their
  own for PSI, so a jump in the missing rate is drift too;
- categorical columns (and a classification target): the total variation distance between the
  category frequencies (½·Σ|p − q|, 0 = same mix, 1 = disjoint), with missing and unseen
  categories counted as categories.

A column drifts only when its statistic exceeds the threshold *and* a homogeneity test (χ² on
the same bins / categories, or the KS test) says the difference is unlikely to be sampling noise
(p below ``max_p_value``). The second condition keeps small val/test splits from tripping the
gate by chance: with ten bins and 60 rows, PSI's own noise floor is about 0.15.

Pure numpy/scipy/pandas: no Great Expectations import, so a batch check is quick. Those are
imported inside the functions. Its settings (`DriftConfig`) live in config.py with the rest.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from neuroflow.config import DriftConfig

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MISSING = "<missing>"
UNSEEN = "<unseen>"


@dataclass(frozen=True)
class FeatureDrift:
    """The drift of one column of one split against train."""

    split: str
    column: str
    kind: Literal["numeric", "categorical"]
    statistic: str  # psi | ks | tvd
    value: float
    threshold: float
    p_value: float
    drifted: bool
    reference: dict[str, float]  # train: bin/category -> share
    current: dict[str, float]  # this split: bin/category -> share
    summary: str  # one line for a person: what moved

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "column": self.column,
            "kind": self.kind,
            "statistic": self.statistic,
            "value": _finite(self.value),
            "threshold": self.threshold,
            "p_value": _finite(self.p_value),
            "drifted": self.drifted,
            "reference": {k: round(v, 6) for k, v in self.reference.items()},
            "current": {k: round(v, 6) for k, v in self.current.items()},
            "summary": self.summary,
        }

    def describe(self, source: str) -> str:
        return (
            f"drift in {source}: split {self.split!r}, column {self.column!r}: "
            f"{self.statistic}={self.value:.3g} > validate.drift threshold {self.threshold:g} "
            f"(p={self.p_value:.2g}) — {self.summary}"
        )


@dataclass(frozen=True)
class DriftReport:
    splits: dict[str, dict[str, Any]]  # split -> {"rows", "judged", "drifted"}
    features: list[FeatureDrift]

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.drifted]

    def to_json(self) -> dict[str, Any]:
        return {
            "drifted": [f"{f.split}:{f.column}" for f in self.drifted],
            "splits": self.splits,
            "features": [f.to_json() for f in self.features],
        }

    def describe(self, source: str) -> str:
        return "\n".join(f.describe(source) for f in self.drifted)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def compute_drift(
    reference: pd.DataFrame,
    current: Mapping[str, pd.DataFrame],
    *,
    numeric: list[str],
    categorical: list[str],
    config: DriftConfig,
) -> DriftReport:
    """Drift of every split/batch in `current` against `reference` (train), column by column.

    Each current frame is looked at once, in turn (`current` may load them lazily); the
    reference side of a column (bins, counts, summary) is computed once and reused for every
    split. Columns missing from a current frame are skipped here: the suite reports them.
    """
    numeric_refs: dict[str, _NumericReference] = {}
    categorical_refs: dict[str, _CategoricalReference] = {}
    features: list[FeatureDrift] = []
    splits: dict[str, dict[str, Any]] = {}
    for split, frame in current.items():
        judged = len(frame) >= config.min_rows and len(reference) >= config.min_rows
        found: list[FeatureDrift] = []
        if judged:
            for column in numeric:
                if column in frame.columns and column in reference.columns:
                    if column not in numeric_refs:
                        numeric_refs[column] = _NumericReference.of(reference[column], config.bins)
                    ref = numeric_refs[column]
                    found.append(
                        _numeric(split, column, ref, reference[column], frame[column], config)
                    )
            for column in categorical:
                if column in frame.columns and column in reference.columns:
                    if column not in categorical_refs:
                        categorical_refs[column] = _CategoricalReference.of(reference[column])
                    cats = categorical_refs[column]
                    found.append(_categorical(split, column, cats, frame[column], config))
        features.extend(found)
        splits[split] = {
            "rows": len(frame),
            "judged": judged,
            "drifted": [f.column for f in found if f.drifted],
        }
    return DriftReport(splits=splits, features=features)


# --- numeric --------------------------------------------------------------------------------

_SUMMARY_QUANTILES = (0.05, 0.5, 0.95)


def _as_float(series: pd.Series) -> np.ndarray:
    import numpy as np
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin: len(edges)+1 value bins, then one bin for missing (NaN)."""
    import numpy as np

    missing = np.isnan(values)
    index = np.searchsorted(edges, values[~missing], side="right")
    counts = np.bincount(index, minlength=len(edges) + 1).astype("float64")
    return np.append(counts, float(missing.sum()))


def _bin_labels(edges: np.ndarray) -> list[str]:
    bounds = ["-inf", *(f"{e:.4g}" for e in edges), "inf"]
    return [f"({lo}, {hi}]" for lo, hi in itertools.pairwise(bounds)] + [MISSING]


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Population Stability Index with +0.5 smoothing (an empty bin would make it infinite)."""
    import numpy as np

    p = (ref_counts + 0.5) / (ref_counts.sum() + 0.5 * len(ref_counts))
    q = (cur_counts + 0.5) / (cur_counts.sum() + 0.5 * len(cur_counts))
    return float(np.sum((q - p) * np.log(q / p)))


def _chi2_p(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """p-value of the χ² homogeneity test on the 2×k table (empty columns dropped)."""
    import numpy as np
    from scipy.stats import chi2_contingency

    table = np.vstack([ref_counts, cur_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(chi2_contingency(table, correction=False).pvalue)


@dataclass(frozen=True)
class _NumericReference:
    """What every split of one numeric column is compared with: train's bins and summary."""

    edges: np.ndarray
    counts: np.ndarray
    summary: str

    @classmethod
    def of(cls, series: pd.Series, bins: int) -> _NumericReference:
        """Bin cut points at train's inner quantiles (ties merged; ±inf fall in the outer
        bins), found with the summary's quantiles in one partial sort."""
        import numpy as np

        values = _as_float(series)
        finite = values[np.isfinite(values)]
        inner = np.linspace(0, 1, bins + 1)[1:-1]
        edges = np.array([], dtype="float64")
        quantiles = None
        if finite.size:
            cuts = np.quantile(finite, [*inner, *_SUMMARY_QUANTILES])
            edges, quantiles = np.unique(cuts[: inner.size]), cuts[inner.size :]
        return cls(edges, _bin_counts(values, edges), _describe(values, finite, quantiles))


def _numeric(
    split: str,
    column: str,
    ref: _NumericReference,
    ref_series: pd.Series,
    cur: pd.Series,
    config: DriftConfig,
) -> FeatureDrift:
    import numpy as np

    cur_values = _as_float(cur)
    cur_counts = _bin_counts(cur_values, ref.edges)
    labels = _bin_labels(ref.edges)
    if config.numeric_method == "ks":
        from scipy.stats import ks_2samp

        ref_values = _as_float(ref_series)
        a, b = ref_values[~np.isnan(ref_values)], cur_values[~np.isnan(cur_values)]
        if a.size and b.size:
            result = ks_2samp(a, b)
            value, p_value = float(result.statistic), float(result.pvalue)
        else:
            value, p_value = 0.0, 1.0
        statistic, threshold = "ks", config.ks_threshold
    else:
        value, p_value = psi(ref.counts, cur_counts), _chi2_p(ref.counts, cur_counts)
        statistic, threshold = "psi", config.psi_threshold
    drifted = value > threshold and p_value < config.max_p_value
    return FeatureDrift(
        split=split,
        column=column,
        kind="numeric",
        statistic=statistic,
        value=value,
        threshold=threshold,
        p_value=p_value,
        drifted=drifted,
        reference=_shares(labels, ref.counts),
        current=_shares(labels, cur_counts),
        summary=f"train {ref.summary}; now {_describe(cur_values)}",
    )


def _describe(
    values: np.ndarray, finite: np.ndarray | None = None, quantiles: np.ndarray | None = None
) -> str:
    """Median, p05–p95 and missing share, for a person reading what moved."""
    import numpy as np

    finite = values[np.isfinite(values)] if finite is None else finite
    missing = float(np.isnan(values).mean()) if values.size else 0.0
    if finite.size == 0:
        return f"no finite values, {missing:.0%} missing"
    if quantiles is None:
        quantiles = np.quantile(finite, _SUMMARY_QUANTILES)  # one partial sort for all three
    p05, median, p95 = quantiles
    return f"median {median:.4g}, p05–p95 {p05:.4g}–{p95:.4g}, {missing:.0%} missing"


# --- categorical ----------------------------------------------------------------------------


def _categories(series: pd.Series) -> pd.Series:
    return series.astype("string").fillna(MISSING)


@dataclass(frozen=True)
class _CategoricalReference:
    """Train's categories of one column and their counts (unseen values get their own slot)."""

    known: list[str]
    counts: np.ndarray  # per [*known, UNSEEN]

    @property
    def labels(self) -> list[str]:
        return [*self.known, UNSEEN]

    @classmethod
    def of(cls, series: pd.Series) -> _CategoricalReference:
        cats = _categories(series)
        known = sorted(set(cats.unique()))
        counts = cats.value_counts().reindex([*known, UNSEEN], fill_value=0)
        return cls(known, counts.to_numpy("float64"))


def _categorical(
    split: str, column: str, ref: _CategoricalReference, cur: pd.Series, config: DriftConfig
) -> FeatureDrift:
    import numpy as np

    cur_cats = _categories(cur)
    seen = cur_cats.isin(ref.known)
    labels = ref.labels
    ref_counts = ref.counts
    cur_counts = (
        cur_cats.where(seen, UNSEEN)
        .value_counts()
        .reindex(labels, fill_value=0)
        .to_numpy("float64")
    )
    p, q = ref_counts / max(ref_counts.sum(), 1.0), cur_counts / max(cur_counts.sum(), 1.0)
    value = float(0.5 * np.abs(p - q).sum())
    p_value = _chi2_p(ref_counts, cur_counts)
    drifted = value > config.categorical_threshold and p_value < config.max_p_value
    order = np.argsort(-np.abs(q - p))[:3]
    moves = ", ".join(f"{labels[i]!r} {p[i]:.0%}→{q[i]:.0%}" for i in order if p[i] != q[i])
    unseen = sorted(set(cur_cats[~seen]))[:5]
    summary = f"largest shifts {moves or 'none'}" + (f"; unseen values {unseen}" if unseen else "")
    return FeatureDrift(
        split=split,
        column=column,
        kind="categorical",
        statistic="tvd",
        value=value,
        threshold=config.categorical_threshold,
        p_value=p_value,
        drifted=drifted,
        reference=_shares(labels, ref_counts),
        current=_shares(labels, cur_counts),
        summary=summary,
    )


def _shares(labels: list[str], counts: np.ndarray) -> dict[str, float]:
    total = max(float(counts.sum()), 1.0)
    return {label: float(c) / total for label, c in zip(labels, counts, strict=True)}


# --- HTML page beside the Data Docs index ---------------------------------------------------


def render_html(report: DriftReport, *, source: str, config: DriftConfig) -> str:
    """A self-contained drift page (no scripts, no external assets) for reports/data_docs."""
    esc = html.escape
    rows = []
    for f in sorted(report.features, key=lambda f: (not f.drifted, f.split, -f.value)):
        status = "DRIFT" if f.drifted else "ok"
        rows.append(
            f"<tr class='{'bad' if f.drifted else ''}'><td>{esc(f.split)}</td>"
            f"<td>{esc(f.column)}</td><td>{f.kind}</td><td>{f.statistic}</td>"
            f"<td>{f.value:.4f}</td><td>{f.threshold:g}</td><td>{f.p_value:.2g}</td>"
            f"<td>{status}</td><td>{esc(f.summary)}</td></tr>"
        )
    skipped = [s for s, info in report.splits.items() if not info["judged"]]
    note = (
        f"<p>Not judged (fewer than {config.min_rows} rows): {esc(', '.join(skipped))}</p>"
        if skipped
        else ""
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Drift against train — {esc(source)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}tr.bad{{background:#fdd}}</style>
</head><body>
<h1>Drift against the train split</h1>
<p>Source {esc(source)}. Numeric: {config.numeric_method} (threshold
{config.psi_threshold if config.numeric_method == "psi" else config.ks_threshold:g});
categorical: total variation distance (threshold {config.categorical_threshold:g}); a column
drifts only if its p-value is also below {config.max_p_value:g}.
<a href="index.html">Expectation results</a></p>
{note}
<p>{len(report.drifted)} drifted column(s) of {len(report.features)} judged.</p>
<table><tr><th>split</th><th>column</th><th>kind</th><th>statistic</th><th>value</th>
<th>threshold</th><th>p</th><th>status</th><th>what moved</th></tr>
{"".join(rows)}
</table></body></html>
"""
