"""Fit-on-train preprocessing: impute, one-hot encode, select, scale, project.

The fitted state is plain numbers and strings (`FittedPreprocessor.to_json`) so it is stored
without pickle and rebuilt, operation for operation, inside the exported ONNX graph. Order:

    raw columns ─► impute numeric (train statistic) ─► one-hot categoricals (train vocabulary;
    unseen and missing → all zeros) ─► select columns ─► affine scale ─► optional PCA

Selection scores are computed on the imputed, unscaled matrix, so scaling never changes which
features are kept; scaling applies to numeric-derived columns only (one-hot stays 0/1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from neuroflow.config import Paths

ScaleKind = Literal["standard", "minmax", "robust", "none"]
SelectKind = Literal["none", "kbest_f", "kbest_chi2", "kbest_mi", "variance"]

MISSING_CATEGORY = ""  # how a missing categorical value is spelled at the model boundary
TRANSFORM_ROWS = 65_536  # rows per block in transform: ~16 MB of float64 per 32 columns


@dataclass(frozen=True)
class PreprocessOptions:
    impute_numeric: Literal["mean", "median", "zero"] = "median"
    scale: ScaleKind = "standard"
    select: SelectKind = "none"
    k: int = 20
    variance_threshold: float = 0.0
    pca: int = 0
    max_categories: int = 50
    seed: int = 0


@dataclass(frozen=True)
class FittedPreprocessor:
    """Everything needed to transform raw rows; JSON round-trips exactly."""

    numeric: list[str]
    categorical: list[str]
    impute_values: list[float]  # one per numeric column
    categories: dict[str, list[str]]  # one-hot vocabulary per categorical column
    selected: list[int]  # indices into the encoded matrix, in order
    center: list[float]  # per selected column
    scale: list[float]  # per selected column, never 0
    pca_mean: list[float] = field(default_factory=list)
    pca_components: list[list[float]] = field(default_factory=list)  # (k, n_selected)
    encoded_names: list[str] = field(default_factory=list)

    @property
    def input_columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def output_dim(self) -> int:
        return len(self.pca_components) if self.pca_components else len(self.selected)

    @property
    def feature_names(self) -> list[str]:
        if self.pca_components:
            return [f"pc{i}" for i in range(len(self.pca_components))]
        return [self.encoded_names[i] for i in self.selected]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FittedPreprocessor:
        return cls(**data)

    @property
    def encoded_width(self) -> int:
        return len(self.numeric) + sum(len(self.categories[c]) for c in self.categorical)

    def encoded_columns(self, frame: pd.DataFrame) -> Iterator[np.ndarray]:
        """The float64 encoded matrix one column at a time: imputed numerics, then one-hots.

        Statistics over the encoded columns are computed from this, so fitting never holds a
        float64 copy of the whole table.
        """
        self._require_columns(frame)
        for col, fill in zip(self.numeric, self.impute_values, strict=True):
            values = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
            yield np.where(np.isnan(values), fill, values)
        for col in self.categorical:
            values = categorical_values(frame[col])
            for category in self.categories[col]:
                yield (values == category).astype(np.float64)

    def _require_columns(self, frame: pd.DataFrame) -> None:
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise KeyError(f"input is missing column(s) {missing}")

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Impute and one-hot encode raw rows into the float64 encoded matrix."""
        self._require_columns(frame)
        out = np.empty((len(frame), self.encoded_width), dtype=np.float64)
        for j, column in enumerate(self.encoded_columns(frame)):
            out[:, j] = column
        return out

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw rows → model-ready float32 features (computed in float64, like the ONNX graph).

        Rows are independent, so the float64 work is done a block of rows at a time: the
        temporaries stay a few MB however long the table is.
        """
        self._require_columns(frame)
        out = np.empty((len(frame), self.output_dim), dtype=np.float32)
        center, scale = np.asarray(self.center), np.asarray(self.scale)
        for start in range(0, len(frame), TRANSFORM_ROWS):
            block = self.encode(frame.iloc[start : start + TRANSFORM_ROWS])[:, self.selected]
            block -= center
            block /= scale
            if self.pca_components:
                block = (block - np.asarray(self.pca_mean)) @ np.asarray(self.pca_components).T
            out[start : start + len(block)] = block
        return out


def load_preprocessor(paths: Paths) -> FittedPreprocessor:
    """The preprocessor the preprocess stage fitted on the training split."""
    from neuroflow.io import read_json

    return FittedPreprocessor.from_json(read_json(paths.preprocessor))


def categorical_values(series: pd.Series) -> np.ndarray:
    """Categorical column as an object array of strings, missing spelled MISSING_CATEGORY."""
    return series.astype("string").fillna(MISSING_CATEGORY).to_numpy(dtype=object)


def fit_preprocessor(
    frame: pd.DataFrame,
    target: pd.Series,
    *,
    numeric: list[str],
    categorical: list[str] | None = None,
    options: PreprocessOptions | None = None,
    classification: bool,
) -> FittedPreprocessor:
    """Fit every step on the training rows only; no categorical columns and default options
    unless given."""
    categorical = [] if categorical is None else categorical
    options = PreprocessOptions() if options is None else options
    impute = _impute_values(frame, numeric, options.impute_numeric)
    categories: dict[str, list[str]] = {}
    names = list(numeric)
    for col in categorical:
        counts = pd.Series(categorical_values(frame[col])).value_counts(sort=False)
        # Most frequent first (ties by name) so a width cap drops the rarest.
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        vocab = sorted(str(v) for v, _ in ordered[: options.max_categories])
        categories[col] = vocab
        names.extend(f"{col}={v}" for v in vocab)

    draft = FittedPreprocessor(
        numeric=numeric,
        categorical=categorical,
        impute_values=impute,
        categories=categories,
        selected=list(range(len(names))),
        center=[0.0] * len(names),
        scale=[1.0] * len(names),
        encoded_names=names,
    )
    selected = _select(draft, frame, target.to_numpy(), options, classification)
    keep = set(selected)
    columns = (c for j, c in enumerate(draft.encoded_columns(frame)) if j in keep)
    center, scale = _affine(columns, options.scale, [i < len(numeric) for i in selected])
    fitted = replace(draft, selected=selected, center=center, scale=scale)
    if options.pca > 0:
        from sklearn.decomposition import PCA

        # The one step that needs the whole matrix: the scaled, selected columns (float64).
        scaled = draft.encode(frame)[:, selected]
        scaled -= np.asarray(center)
        scaled /= np.asarray(scale)
        n_components = min(options.pca, scaled.shape[0], scaled.shape[1])
        pca = PCA(n_components=n_components, svd_solver="full").fit(scaled)
        fitted = replace(
            fitted, pca_mean=pca.mean_.tolist(), pca_components=pca.components_.tolist()
        )
    return fitted


def _impute_values(frame: pd.DataFrame, numeric: list[str], how: str) -> list[float]:
    values: list[float] = []
    for col in numeric:
        series = pd.to_numeric(frame[col], errors="coerce").astype("float64")
        stat = 0.0 if how == "zero" else float(getattr(series, how)())
        values.append(0.0 if np.isnan(stat) else stat)  # an all-missing column imputes 0
    return values


def _select(
    draft: FittedPreprocessor,
    frame: pd.DataFrame,
    y: np.ndarray,
    options: PreprocessOptions,
    classification: bool,
) -> list[int]:
    n_cols = draft.encoded_width
    if options.select == "none" or n_cols == 0:
        return list(range(n_cols))
    if options.select == "variance":
        variances = np.array([column.var() for column in draft.encoded_columns(frame)])
        keep = np.flatnonzero(variances > options.variance_threshold)
        if keep.size == 0:
            raise ValueError(
                f"preprocess.variance_threshold={options.variance_threshold} removes every feature"
            )
        return keep.tolist()

    from sklearn import feature_selection as fs

    encoded = draft.encode(frame)  # the scores below need the whole matrix
    if options.select == "kbest_chi2":
        if not classification:
            raise ValueError("preprocess.select=kbest_chi2 needs a classification task")
        # chi² needs non-negative inputs; a per-column shift keeps the ranking meaningful.
        encoded -= encoded.min(axis=0)
        scores, _ = fs.chi2(encoded, y)
    elif options.select == "kbest_f":
        scores, _ = (fs.f_classif if classification else fs.f_regression)(encoded, y)
    else:
        mi = fs.mutual_info_classif if classification else fs.mutual_info_regression
        scores = mi(encoded, y, random_state=options.seed)
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    k = min(options.k, n_cols)
    # Stable ranking (ties by column index) keeps the selection reproducible.
    order = np.lexsort((np.arange(n_cols), -scores))[:k]
    return sorted(order.tolist())


def _affine(
    columns: Iterable[np.ndarray], kind: ScaleKind, is_numeric: list[bool]
) -> tuple[list[float], list[float]]:
    """Per-column centre and scale, one column at a time (one-hot columns stay 0/1)."""
    center: list[float] = []
    scale: list[float] = []
    for column, numeric in zip(columns, is_numeric, strict=True):
        c, s = 0.0, 1.0
        if numeric and column.size:
            if kind == "standard":
                c, s = float(column.mean()), float(column.std())
            elif kind == "minmax":
                low, high = float(column.min()), float(column.max())
                c, s = low, high - low
            elif kind == "robust":
                q25, q50, q75 = np.percentile(column, [25, 50, 75])
                c, s = float(q50), float(q75 - q25)
        center.append(c)
        scale.append(s if np.isfinite(s) and s > 1e-12 else 1.0)
    return center, scale
