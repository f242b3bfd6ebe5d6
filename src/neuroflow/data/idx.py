"""MNIST-format IDX files (images + labels) a user supplies, read without any download.

Format (big-endian): two zero bytes, a type code, the number of dimensions, one uint32 per
dimension, then the values. Images are (N, H, W) or (N, C, H, W) uint8; labels (N,). Files may be
gzip-compressed (`.gz`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from neuroflow.data.sources import SourceError

_TYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: Path) -> np.ndarray:
    if not path.is_file():
        raise SourceError(f"{path}: IDX file not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise SourceError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise SourceError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_TYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise SourceError(
            f"{path}: IDX header says {dims} ({expected} bytes) but {len(raw) - header} follow"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))
    )


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write `array` as IDX (uint8, int32 or float64); used to build fixtures and exports."""
    codes = {np.dtype("uint8"): 0x08, np.dtype("int32"): 0x0C, np.dtype("float64"): 0x0E}
    if array.dtype not in codes:
        raise ValueError(f"cannot write dtype {array.dtype} as IDX")
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    big = array.astype(array.dtype.newbyteorder(">"))
    path.write_bytes(header + big.tobytes())


def pixel_columns(shape: tuple[int, ...]) -> list[str]:
    """`pixel_<r>_<c>` (one channel) or `pixel_<ch>_<r>_<c>`, in C order."""
    if len(shape) == 2:
        return [f"pixel_{r}_{c}" for r in range(shape[0]) for c in range(shape[1])]
    return [
        f"pixel_{ch}_{r}_{c}"
        for ch in range(shape[0])
        for r in range(shape[1])
        for c in range(shape[2])
    ]


def load_idx(images: Path, labels: Path, target: str) -> tuple[pd.DataFrame, list[int]]:
    """Images + labels → one row per image (pixel columns + target) and the [C, H, W] shape."""
    x = read_idx(images)
    y = read_idx(labels)
    if x.ndim not in (3, 4):
        raise SourceError(f"{images}: expected (N, H, W) or (N, C, H, W) images, got {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise SourceError(f"{labels}: {y.shape} labels for {len(x)} images in {images}")
    frame = pd.DataFrame(
        x.reshape(len(x), -1).astype(np.float64), columns=pixel_columns(x.shape[1:])
    )
    frame[target] = y.astype(np.int64)
    shape = [1, *x.shape[1:]] if x.ndim == 3 else list(x.shape[1:])
    return frame, [int(s) for s in shape]
