"""Inference: the exported default model in onnxruntime vs eager PyTorch.

The model is built the way the export stage builds it: the default params' network
(30 → 32 → 16 → 2, tanh) trained briefly on the bundled breast-cancer data with the preprocessor
fitted on the same rows, then ``build_onnx_model`` (raw columns in, label + probabilities out).

Paths compared, each from the same raw rows (numeric columns as float64 arrays):
- ``onnx``: ``session.run`` on the per-column feeds (preprocessing is inside the graph);
- ``torch_eager``: ``head(torch.from_numpy(pre.transform(frame)))`` under ``inference_mode``,
  i.e. the same preprocessing done in NumPy/pandas and the network in eager PyTorch;
- ``torch_network_only``: the eager network on an already-transformed float32 tensor.

Batch 1: p50/p99 latency of single calls. Batch 4096: rows per second. Interleaved blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import breast_cancer_model, call_seconds, machine, median

log = logging.getLogger("benchmarks.inference")

BIG_BATCH = 4096


def build(epochs: int) -> dict[str, Any]:
    import onnxruntime
    import pandas as pd
    import torch

    from neuroflow.export.onnx_graph import build_onnx_model, onnx_feeds

    features, pre, spec, head = breast_cancer_model(epochs)
    model = build_onnx_model(pre, head, spec)
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    big = features.iloc[rng.integers(0, len(features), BIG_BATCH)].reset_index(drop=True)
    one = features.iloc[[0]].reset_index(drop=True)
    return {
        "pd": pd,
        "torch": torch,
        "session": session,
        "head": head,
        "pre": pre,
        "feeds": {1: onnx_feeds(session, one), BIG_BATCH: onnx_feeds(session, big)},
        "frames": {1: one, BIG_BATCH: big},
        "tensors": {
            1: torch.from_numpy(pre.transform(one)),
            BIG_BATCH: torch.from_numpy(pre.transform(big)),
        },
    }


def _paths(m: dict[str, Any], batch: int) -> dict[str, Callable[[], Any]]:
    torch = m["torch"]
    session, head, pre = m["session"], m["head"], m["pre"]
    feeds, frame, tensor = m["feeds"][batch], m["frames"][batch], m["tensors"][batch]
    outputs = [o.name for o in session.get_outputs()]

    def onnx() -> Any:
        return session.run(outputs, feeds)

    def torch_eager() -> Any:
        with torch.inference_mode():
            return head(torch.from_numpy(pre.transform(frame)))

    def torch_network_only() -> Any:
        with torch.inference_mode():
            return head(tensor)

    return {"onnx": onnx, "torch_eager": torch_eager, "torch_network_only": torch_network_only}


def run(smoke: bool) -> dict[str, Any]:
    import torch

    m = build(epochs=2 if smoke else 20)
    calls, rounds, big_calls = (20, 1, 2) if smoke else (1000, 3, 20)
    single = _paths(m, 1)
    batched = _paths(m, BIG_BATCH)
    for fn in (*single.values(), *batched.values()):  # warm-up
        fn()
    lat: dict[str, list[float]] = {name: [] for name in single}
    thr: dict[str, list[float]] = {name: [] for name in batched}
    for _ in range(rounds):  # interleaved blocks
        for name, fn in single.items():
            lat[name] += call_seconds(fn, calls)
        for name, fn in batched.items():
            seconds = call_seconds(fn, big_calls)
            thr[name].append(BIG_BATCH / median(seconds))
    result: dict[str, Any] = {
        "name": "inference",
        "machine": machine(("onnx",)),
        "torch_threads": torch.get_num_threads(),
        "model": "default params: MLP 30→32→16→2 tanh, preprocessing inside the ONNX graph",
        "batch1": {
            name: {
                "p50_ms": float(np.percentile(v, 50) * 1e3),
                "p99_ms": float(np.percentile(v, 99) * 1e3),
                "calls": len(v),
            }
            for name, v in lat.items()
        },
        f"batch{BIG_BATCH}": {
            name: {"rows_per_s": median(v), "rounds": v} for name, v in thr.items()
        },
    }
    o1, e1 = result["batch1"]["onnx"], result["batch1"]["torch_eager"]
    ob, eb = result[f"batch{BIG_BATCH}"]["onnx"], result[f"batch{BIG_BATCH}"]["torch_eager"]
    result["ratios"] = {
        "batch1_p50_torch_eager_over_onnx": e1["p50_ms"] / o1["p50_ms"],
        f"batch{BIG_BATCH}_onnx_over_torch_eager": ob["rows_per_s"] / eb["rows_per_s"],
    }
    return result
