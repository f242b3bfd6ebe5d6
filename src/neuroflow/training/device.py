"""Device choice, seeding and deterministic mode."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def resolve_device(requested: str = "auto") -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is available")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace for reproducible GEMMs; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True


def describe_device(device: torch.device) -> dict[str, str]:
    """Versions recorded with every run, so a result can be traced to its hardware and stack."""
    info = {
        "device": str(device),
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda or "none"),
        "cudnn": str(torch.backends.cudnn.version() or "none"),
        "threads": str(torch.get_num_threads()),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
