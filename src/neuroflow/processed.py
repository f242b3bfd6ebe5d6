"""Reading the processed splits `preprocess` writes: one safetensors file per split.

Each holds `x` (features) and `y` (targets); forecast test splits also hold `naive` (the
seasonal-naive prediction). numpy arrays, no torch: evaluation and search read them too.
"""

from __future__ import annotations

import numpy as np

from neuroflow.config import Paths


def load_tensors(paths: Paths, split: str) -> dict[str, np.ndarray]:
    """Every array of one split, read once."""
    from safetensors.numpy import load_file

    return load_file(str(paths.processed_split(split)))


def load_split(paths: Paths, split: str) -> tuple[np.ndarray, np.ndarray]:
    tensors = load_tensors(paths, split)
    return tensors["x"], tensors["y"]
