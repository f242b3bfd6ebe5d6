"""Device choice, seeding and deterministic mode."""

from __future__ import annotations

import os
import random
import time

import numpy as np
import torch
from torch import nn

# Above this forward time a network is big enough that every core pays off: skip the probe.
_PROBE_SKIP_S = 0.05
_PROBE_REPS = 7
# Every core must beat one thread by this factor: a loss to one thread is at most this margin,
# a loss to barrier stalls under contention can be 10x or more.
_PARALLEL_GAIN = 0.75


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


def pick_cpu_threads(model: nn.Module, batch: torch.Tensor, requested: int = 0) -> int:
    """Intra-op threads for training on CPU: `requested` if > 0, else 1 unless all are much faster.

    Small networks run faster on one thread: their GEMMs are too small to split, and when the
    machine has fewer idle cores than threads (a busy CI runner, parallel sweeps), MKL's OpenMP
    team waits at a barrier for a descheduled thread, so a 10 µs GEMM takes milliseconds. Big
    networks gain from every core. The probe times the model's forward pass on `batch` in eval
    mode without gradients, so it changes no weights, statistics or random state; the fastest
    of a few repetitions is the network's own cost, and every core must win clearly.
    """
    default = torch.get_num_threads()
    if requested > 0:
        return requested
    if default == 1:
        return 1
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            wide = _forward_seconds(model, batch, default)
            if wide > _PROBE_SKIP_S:
                return default
            single = _forward_seconds(model, batch, 1)
    finally:
        torch.set_num_threads(default)
        model.train(was_training)
    return default if wide < _PARALLEL_GAIN * single else 1


def _forward_seconds(model: nn.Module, batch: torch.Tensor, threads: int) -> float:
    torch.set_num_threads(threads)
    model(batch)  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(_PROBE_REPS):
        started = time.perf_counter()
        model(batch)
        times.append(time.perf_counter() - started)
    return min(times)
