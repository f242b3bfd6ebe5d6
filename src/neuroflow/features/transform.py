"""Fit-on-train preprocessing: impute, one-hot encode, select, scale, project.

The fitted state is plain numbers and strings (`FittedPreprocessor.to_json`) so it is stored
without pickle and rebuilt, operation for operation, inside the exported ONNX graph. Order:

    raw columns ─► impute numeric (train statistic) ─► one-hot categoricals (train vocabulary;
    unseen and missing → all zeros) ─► select columns ─► affine scale ─► optional PCA

Selection scores are computed on the imputed, unscaled matrix, so scaling never changes which
features are kept; scaling applies to numeric-derived columns only (one-hot stays 0/1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

ScaleKind = Literal["standard", "minmax", "robust", "none"]
SelectKind = Literal["none", "kbest_f", "kbest_chi2", "kbest_mi", "variance"]

MISSING_CATEGORY = ""  # how a missing categorical value is spelled at the model boundary


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

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Impute and one-hot encode raw rows into the float64 encoded matrix."""
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise KeyError(f"input is missing column(s) {missing}")
        parts: list[np.ndarray] = []
        if self.numeric:
            num = frame[self.numeric].to_numpy(dtype=np.float64, na_value=np.nan)
            fill = np.asarray(self.impute_values, dtype=np.float64)
            parts.append(np.where(np.isnan(num), fill, num))
        for col in self.categorical:
            values = categorical_values(frame[col])
            vocab = np.asarray(self.categories[col], dtype=object)
            parts.append((values[:, None] == vocab[None, :]).astype(np.float64))
        if not parts:
            return np.zeros((len(frame), 0))
        return np.concatenate(parts, axis=1)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw rows → model-ready float32 features (computed in float64, like the ONNX graph)."""
        encoded = self.encode(frame)[:, self.selected]
        out = (encoded - np.asarray(self.center)) / np.asarray(self.scale)
        if self.pca_components:
            out = (out - np.asarray(self.pca_mean)) @ np.asarray(self.pca_components).T
        return out.astype(np.float32)


def categorical_values(series: pd.Series) -> np.ndarray:
    """Categorical column as an object array of strings, missing spelled MISSING_CATEGORY."""
    return series.astype("string").fillna(MISSING_CATEGORY).to_numpy(dtype=object)


def fit_preprocessor(
    frame: pd.DataFrame,
    target: pd.Series,
    *,
    numeric: list[str],
    categorical: list[str],
    options: PreprocessOptions,
    classification: bool,
) -> FittedPreprocessor:
    """Fit every step on the training rows only."""
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
    encoded = draft.encode(frame)
    selected = _select(encoded, target.to_numpy(), options, classification)
    is_numeric = np.array([i < len(numeric) for i in selected], dtype=bool)
    center, scale = _affine(encoded[:, selected], options.scale, is_numeric)
    fitted = FittedPreprocessor(
        numeric=numeric,
        categorical=categorical,
        impute_values=impute,
        categories=categories,
        selected=selected,
        center=center,
        scale=scale,
        encoded_names=names,
    )
    if options.pca > 0:
        from sklearn.decomposition import PCA

        scaled = (encoded[:, selected] - np.asarray(center)) / np.asarray(scale)
        n_components = min(options.pca, scaled.shape[0], scaled.shape[1])
        pca = PCA(n_components=n_components, svd_solver="full").fit(scaled)
        fitted = FittedPreprocessor(
            **{
                **asdict(fitted),
                "pca_mean": pca.mean_.tolist(),
                "pca_components": pca.components_.tolist(),
            }
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
    encoded: np.ndarray, y: np.ndarray, options: PreprocessOptions, classification: bool
) -> list[int]:
    n_cols = encoded.shape[1]
    if options.select == "none" or n_cols == 0:
        return list(range(n_cols))
    if options.select == "variance":
        keep = np.flatnonzero(encoded.var(axis=0) > options.variance_threshold)
        if keep.size == 0:
            raise ValueError(
                f"preprocess.variance_threshold={options.variance_threshold} removes every feature"
            )
        return keep.tolist()

    from sklearn import feature_selection as fs

    if options.select == "kbest_chi2":
        if not classification:
            raise ValueError("preprocess.select=kbest_chi2 needs a classification task")
        # chi² needs non-negative inputs; a per-column shift keeps the ranking meaningful.
        scores, _ = fs.chi2(encoded - encoded.min(axis=0), y)
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
    matrix: np.ndarray, kind: ScaleKind, is_numeric: np.ndarray
) -> tuple[list[float], list[float]]:
    n = matrix.shape[1]
    center = np.zeros(n)
    scale = np.ones(n)
    if kind == "standard":
        center, scale = matrix.mean(axis=0), matrix.std(axis=0)
    elif kind == "minmax":
        center, scale = matrix.min(axis=0), matrix.max(axis=0) - matrix.min(axis=0)
    elif kind == "robust":
        q25, q50, q75 = np.percentile(matrix, [25, 50, 75], axis=0)
        center, scale = q50, q75 - q25
    scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0)
    center = np.where(is_numeric, center, 0.0)
    scale = np.where(is_numeric, scale, 1.0)
    return center.astype(np.float64).tolist(), scale.astype(np.float64).tolist()
