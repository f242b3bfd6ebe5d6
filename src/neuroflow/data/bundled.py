"""scikit-learn's bundled tables, read from the files scikit-learn ships, without importing it.

`import sklearn` costs ~1.5 s (it loads its whole estimator machinery); the ingest stage only
needs five small files that sit inside the installed package. They are found with
`importlib.util.find_spec`, which locates a package without running it, and parsed exactly as
scikit-learn's `load_*(as_frame=True)` does (same columns, dtypes and values, bit for bit:
tests/unit/test_bundled.py compares every table with scikit-learn's own loader).
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

_BREAST_CANCER_MEASURES = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave points",
    "symmetry",
    "fractal dimension",
)
# Feature names as scikit-learn's loaders define them (they are not in the data files).
FEATURE_NAMES: dict[str, list[str]] = {
    "breast_cancer": [f"mean {m}" for m in _BREAST_CANCER_MEASURES]
    + [f"{m} error" for m in _BREAST_CANCER_MEASURES]
    + [f"worst {m}" for m in _BREAST_CANCER_MEASURES],
    "iris": ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"],
    "wine": [
        "alcohol",
        "malic_acid",
        "ash",
        "alcalinity_of_ash",
        "magnesium",
        "total_phenols",
        "flavanoids",
        "nonflavanoid_phenols",
        "proanthocyanins",
        "color_intensity",
        "hue",
        "od280/od315_of_diluted_wines",
        "proline",
    ],
    "diabetes": ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"],
    "digits": [f"pixel_{row}_{col}" for row in range(8) for col in range(8)],
}
_CSV_FILES = {"breast_cancer": "breast_cancer.csv", "iris": "iris.csv", "wine": "wine_data.csv"}


def data_dir() -> Path:
    """sklearn/datasets/data of the installed scikit-learn (located, not imported)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-learn is not installed: its bundled datasets are missing")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _counted_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's `load_csv_data`: a `n_samples,n_features,names...` header, then rows of
    features with an integer class last."""
    with path.open("r", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        header = next(rows)
        n_samples, n_features = int(header[0]), int(header[1])
        data = np.empty((n_samples, n_features))
        target = np.empty((n_samples,), dtype=int)
        for i, row in enumerate(rows):
            data[i] = np.asarray(row[:-1], dtype=np.float64)
            target[i] = np.asarray(row[-1], dtype=int)
    return data, target


def _gzip_table(path: Path, delimiter: str | None = None) -> np.ndarray:
    with gzip.open(path, mode="rt", encoding="utf-8") as handle:
        return np.loadtxt(handle, delimiter=delimiter)


def _scaled(data: np.ndarray) -> np.ndarray:
    """`load_diabetes(scaled=True)`: centred, unit variance, then divided by sqrt(n_samples)."""
    mean, spread = np.nanmean(data, axis=0), np.nanstd(data, axis=0)  # of the raw values
    spread[spread < 10 * np.finfo(spread.dtype).eps] = 1.0  # a constant column stays 0
    data -= mean
    data /= spread
    data /= data.shape[0] ** 0.5
    return data


def load(name: str) -> pd.DataFrame:
    """The table as `sklearn.datasets.load_<name>(as_frame=True).frame`: features, `target`."""
    folder = data_dir()
    if name in _CSV_FILES:
        data, target = _counted_csv(folder / _CSV_FILES[name])
    elif name == "digits":
        table = _gzip_table(folder / "digits.csv.gz", delimiter=",")
        data, target = table[:, :-1], table[:, -1].astype(int, copy=False)
    elif name == "diabetes":
        data = _scaled(_gzip_table(folder / "diabetes_data_raw.csv.gz"))
        target = _gzip_table(folder / "diabetes_target.csv.gz")
    else:
        raise KeyError(name)
    features = pd.DataFrame(data, columns=FEATURE_NAMES[name], copy=False)
    return pd.concat([features, pd.DataFrame(target, columns=["target"])], axis=1)
