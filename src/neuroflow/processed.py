"""Reading the processed splits `preprocess` writes: one safetensors file per split.

Each holds `x` (features) and `y` (targets); forecast test splits also hold `naive` (the
seasonal-naive prediction). numpy arrays, no torch: evaluation and search read them too.
"""

from __future__ import annotations

import numpy as np

from neuroflow.config import Paths


def load_split(paths: Paths, split: str) -> tuple[np.ndarray, np.ndarray]:
    from safetensors.numpy import load_file

    tensors = load_file(str(paths.processed_split(split)))
    return tensors["x"], tensors["y"]


def load_tensor(paths: Paths, split: str, name: str) -> np.ndarray:
    from safetensors.numpy import load_file

    return load_file(str(paths.processed_split(split)))[name]
