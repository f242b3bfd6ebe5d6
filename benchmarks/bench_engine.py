"""Training engine vs the usual ways of training the same MLP on the same data.

Task: ``make_classification(200_000, 30 features, 15 informative, random_state=0)``,
standardised, 80/20 split; MLP 30→256→256→2, ReLU, Adam lr 1e-3, batch 512, 3 epochs.

Contenders (each trains a fresh, identically seeded model; rounds are interleaved). Each runs in
a process of its own, kept for all its rounds: process-wide settings one of them makes (the
engine's deterministic mode, Lightning's) never reach another.
- ``neuroflow``: ``neuroflow.training.engine.fit`` (validates every epoch, keeps the best),
  eager (``cuda_graphs="off"``);
- ``neuroflow_cuda_graphs``: the same with the whole step replayed from one CUDA graph
  (``cuda_graphs="on"``); on CUDA only, recorded as skipped elsewhere;
- ``plain_loop``: a hand-written PyTorch loop that permutes and slices tensors;
- ``tutorial``: ``DataLoader(TensorDataset, batch_size=32, shuffle=True)``;
- ``lightning``: a ``LightningModule`` + ``Trainer`` with its defaults (checkpointing, logger,
  sanity check, per-epoch validation), progress bar and model summary off;
- ``sklearn``: ``MLPClassifier`` of the same shape (adam, lr 1e-3, batch 512, no L2).

Time to accuracy: this MLP to 98 % with the engine's defaults, and (`digits_time_to_97`) the digits
preset's CNN on scikit-learn's 8×8 digits to 97 %, eager and, on CUDA, with CUDA graphs.

The ceiling is measured in the same run: the forward + backward GEMMs of this network at batch
512 timed with ``torch.mm`` (every FLOP the model needs, none of the overhead).

Imports torch, numpy and scikit-learn only (Lightning when present), so it runs on a bare GPU box:
``PYTHONPATH=src python -m benchmarks.bench_engine --gpu --out engine_gpu.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import logging
import multiprocessing
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.common import (
    RESULTS_DIR,
    interleave,
    machine,
    median,
    summarise,
    within_round_ratios,
    write_json,
)

log = logging.getLogger("benchmarks.engine")

HIDDEN = (256, 256)
LR = 1e-3
BATCH = 512
EPOCHS = 3
TARGET_ACCURACY = 0.98
GOALS = {"sklearn": 2.0, "lightning": 4.0, "tutorial": 10.0}
CEILING_GOAL = 0.5
CUDA_GRAPHS_GOAL = 1_000_000  # samples/s of the captured step on the GPU

Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


# ------------------------------------------------------------------------------------ data


def make_data(n_samples: int) -> Data:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n_samples, n_features=30, n_informative=15, random_state=0)
    x = ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)
    cut = int(0.8 * n_samples)
    y = y.astype(np.int64)
    return (
        torch.from_numpy(x[:cut]),
        torch.from_numpy(y[:cut]),
        torch.from_numpy(x[cut:]),
        torch.from_numpy(y[cut:]),
    )


def new_model(seed: int = 0) -> nn.Module:
    from neuroflow.models.mlp import MLP

    torch.manual_seed(seed)
    return MLP(30, 2, list(HIDDEN), activation="relu")


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(x), 8192):
        out = model(x[start : start + 8192].to(device)).float()
        correct += int((out.argmax(1).cpu() == y[start : start + 8192]).sum())
    return correct / len(x)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _result(n: int, epochs: int, seconds: float, acc: float) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "samples_per_s": n * epochs / seconds,
        "val_accuracy": acc,
    }


@contextlib.contextmanager
def _default_torch_mode() -> Iterator[None]:
    """Others train with PyTorch's defaults; the engine turns deterministic mode on globally."""
    torch.use_deterministic_algorithms(False)
    yield


# ----------------------------------------------------------------------------- contenders


def run_neuroflow(
    data: Data, epochs: int, device: torch.device, amp: bool = False, cuda_graphs: str = "off"
) -> dict[str, Any]:
    from neuroflow.training.engine import TensorSplits, TrainSettings, fit

    x, y, xv, yv = data
    model = new_model()
    settings = TrainSettings(
        epochs=epochs,
        batch_size=BATCH,
        optimizer="adam",
        lr=LR,
        patience=epochs + 1,
        device=device.type,
        seed=0,
        amp=amp,
        cuda_graphs=cuda_graphs,
    )
    _sync(device)
    started = time.perf_counter()
    result = fit(model, TensorSplits(x, y, xv, yv), settings)
    _sync(device)
    seconds = time.perf_counter() - started
    out = _result(len(x), epochs, seconds, accuracy(model, xv, yv))
    out["engine_samples_per_s"] = result.samples_per_second
    if cuda_graphs != "off":
        out["cuda_graphs"] = result.extra["cuda_graphs"]
    return out


def run_plain_loop(data: Data, epochs: int, device: torch.device) -> dict[str, Any]:
    x, y, xv, yv = data
    with _default_torch_mode():
        model = new_model().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        loss_fn = nn.CrossEntropyLoss()
        _sync(device)
        started = time.perf_counter()
        xd, yd = x.to(device), y.to(device)
        n = len(xd)
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(n, device=device)
            xs, ys = xd[perm], yd[perm]
            for start in range(0, n, BATCH):
                optimizer.zero_grad()
                loss = loss_fn(model(xs[start : start + BATCH]), ys[start : start + BATCH])
                loss.backward()
                optimizer.step()
        _sync(device)
        seconds = time.perf_counter() - started
    return _result(n, epochs, seconds, accuracy(model, xv, yv))


def run_tutorial(data: Data, epochs: int, device: torch.device) -> dict[str, Any]:
    from torch.utils.data import DataLoader, TensorDataset

    x, y, xv, yv = data
    with _default_torch_mode():
        model = new_model().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        loss_fn = nn.CrossEntropyLoss()
        loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
        _sync(device)
        started = time.perf_counter()
        model.train()
        for _ in range(epochs):
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                optimizer.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                optimizer.step()
        _sync(device)
        seconds = time.perf_counter() - started
    return _result(len(x), epochs, seconds, accuracy(model, xv, yv))


def _lightning() -> Any:
    try:
        import lightning.pytorch as pl
    except ImportError:
        import pytorch_lightning as pl
    return pl


def run_lightning(data: Data, epochs: int, device: torch.device) -> dict[str, Any]:
    from torch.utils.data import DataLoader, TensorDataset

    pl = _lightning()
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class Module(pl.LightningModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = new_model()
            self.loss_fn = nn.CrossEntropyLoss()

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            xb, yb = batch
            return self.loss_fn(self.net(xb), yb)

        def validation_step(self, batch: Any, _: int) -> None:
            xb, yb = batch
            self.log("val_loss", self.loss_fn(self.net(xb), yb))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=LR)

    x, y, xv, yv = data
    with _default_torch_mode(), tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = Module()
        trainer = pl.Trainer(
            max_epochs=epochs,
            default_root_dir=root,
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        train = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
        val = DataLoader(TensorDataset(xv, yv), batch_size=BATCH)
        _sync(device)
        started = time.perf_counter()
        trainer.fit(module, train, val)
        _sync(device)
        seconds = time.perf_counter() - started
    return _result(len(x), epochs, seconds, accuracy(module.net.to(device), xv, yv))


def run_sklearn(data: Data, epochs: int, _device: torch.device) -> dict[str, Any]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x, y, xv, yv = (t.numpy() for t in data)
    clf = MLPClassifier(
        hidden_layer_sizes=HIDDEN,
        activation="relu",
        solver="adam",
        learning_rate_init=LR,
        batch_size=BATCH,
        max_iter=epochs,
        alpha=0.0,
        shuffle=True,
        random_state=0,
        n_iter_no_change=epochs + 1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        clf.fit(x, y)
        seconds = time.perf_counter() - started
    return _result(len(x), epochs, seconds, float(clf.score(xv, yv)))


# -------------------------------------------------------------------------------- ceilings


def _layer_dims() -> list[tuple[int, int]]:
    widths = [30, *HIDDEN, 2]
    return list(itertools.pairwise(widths))


def model_flops_per_sample() -> int:
    """Forward (1 GEMM per layer) + backward (2 per layer, none for the input's gradient)."""
    dims = _layer_dims()
    forward = sum(2 * i * o for i, o in dims)
    return 3 * forward - 2 * dims[0][0] * dims[0][1]


def gemm_ceiling(device: torch.device, batch: int = BATCH, reps: int = 200) -> dict[str, Any]:
    """Time exactly this network's forward + backward GEMMs with torch.mm at `batch` rows."""
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device)

    dims = _layer_dims()
    weights = [rand(o, i) for i, o in dims]
    acts = [rand(batch, i) for i, _ in dims]  # each layer's input
    grads = [rand(batch, o) for _, o in dims]  # each layer's output gradient

    def step() -> None:
        for w, a in zip(weights, acts, strict=True):
            torch.mm(a, w.t())
        for k, (w, a, g) in enumerate(zip(weights, acts, grads, strict=True)):
            torch.mm(g.t(), a)  # weight gradient
            if k > 0:
                torch.mm(g, w)  # input gradient

    for _ in range(20):
        step()
    times = []
    for _ in range(5 if reps > 5 else 1):
        _sync(device)
        started = time.perf_counter()
        for _ in range(reps):
            step()
        _sync(device)
        times.append((time.perf_counter() - started) / reps)
    best = min(times)  # the ceiling is what the hardware can do, so the fastest repeat
    flops = model_flops_per_sample() * batch
    return {
        "batch": batch,
        "seconds_per_step": best,
        "gflops": flops / best / 1e9,
        "samples_per_s": batch / best,
    }


def square_gemm_rate(device: torch.device, size: int, dtype: torch.dtype) -> float:
    """GFLOP/s of a large square matmul: the device's peak-ish rate for `dtype`."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    reps = 20 if device.type == "cuda" else 3
    best = float("inf")
    for _ in range(3):
        _sync(device)
        started = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        _sync(device)
        best = min(best, (time.perf_counter() - started) / reps)
    return 2 * size**3 / best / 1e9


def copy_bandwidth(device: torch.device) -> dict[str, float]:
    """GB/s for device→device copies and pinned host→device transfers."""
    nbytes = 256 * 2**20
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    out: dict[str, float] = {}
    reps = 20
    dst.copy_(src)
    _sync(device)
    started = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    _sync(device)
    # A copy reads and writes every byte.
    out["device_to_device_gb_s"] = 2 * nbytes * reps / (time.perf_counter() - started) / 1e9
    if device.type == "cuda":
        host = torch.empty(nbytes, dtype=torch.uint8).pin_memory()
        dst.copy_(host)
        torch.cuda.synchronize(device)
        started = time.perf_counter()
        for _ in range(reps):
            dst.copy_(host, non_blocking=True)
        torch.cuda.synchronize(device)
        out["host_to_device_gb_s"] = nbytes * reps / (time.perf_counter() - started) / 1e9
    return out


# ---------------------------------------------------------------------------- time to 98 %


class _ReachedError(Exception):
    pass


def time_to_accuracy(
    data: Data,
    device: torch.device,
    max_epochs: int,
    model: Callable[[], nn.Module] = new_model,
    target: float = TARGET_ACCURACY,
    **overrides: Any,
) -> dict[str, Any]:
    """Wall seconds from calling fit until a validation epoch reaches `target`.

    Uses the engine's own TrainSettings defaults (batch 64, Adam 1e-3, ...) unless overridden.
    """
    from neuroflow.training.engine import EpochRecord, TensorSplits, TrainSettings, fit

    x, y, xv, yv = data
    settings = TrainSettings(
        **{"epochs": max_epochs, "device": device.type, "seed": 0, **overrides}
    )
    started = time.perf_counter()
    reached: dict[str, Any] = {}

    def on_epoch(record: EpochRecord) -> None:
        if record.val_accuracy is not None and record.val_accuracy >= target:
            reached.update(
                epoch=record.epoch,
                seconds=time.perf_counter() - started,
                val_accuracy=record.val_accuracy,
            )
            raise _ReachedError

    with contextlib.suppress(_ReachedError):
        fit(model(), TensorSplits(x, y, xv, yv), settings, on_epoch=on_epoch)
    return {
        "settings": {
            "batch_size": settings.batch_size,
            "optimizer": settings.optimizer,
            "lr": settings.lr,
            "amp": settings.amp,
            "cuda_graphs": settings.cuda_graphs,
        },
        "target": target,
        "reached": bool(reached),
        **(reached or {"seconds": time.perf_counter() - started, "epoch": None}),
    }


# The digits preset's network and training settings (presets/digits.yaml over params.yaml),
# without its shift augmentation; its promotion bar is the target.
DIGITS_TARGET = 0.97
DIGITS_SETTINGS = {
    "batch_size": 64,
    "optimizer": "adamw",
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "scheduler": "plateau",
    "grad_clip": 1.0,
    "patience": 10,
}


def digits_data() -> Data:
    """scikit-learn's 8×8 digits, pixels / 16, a seeded 80/20 split."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = (x[order] / 16.0).astype(np.float32), y[order].astype(np.int64)
    cut = int(0.8 * len(x))
    splits = [torch.from_numpy(a) for a in (x[:cut], y[:cut], x[cut:], y[cut:])]
    return splits[0], splits[1], splits[2], splits[3]


def digits_cnn() -> nn.Module:
    from neuroflow.models.factory import build_model
    from neuroflow.models.spec import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(
        type="cnn",
        task="multiclass",
        input_dim=64,
        output_dim=10,
        input_shape=[1, 8, 8],
        channels=[16, 32],
        hidden=[64],
        dropout=0.2,
        batch_norm=True,
    )
    return build_model(spec)


def digits_time_to_accuracy(device: torch.device, smoke: bool, rounds: int) -> dict[str, Any]:
    """The digits CNN to 97 % validation accuracy: eager, and on CUDA with CUDA graphs too."""
    data = digits_data()
    modes = ("off", "on") if device.type == "cuda" else ("off",)
    out: dict[str, Any] = {"target": DIGITS_TARGET, "settings": DIGITS_SETTINGS}
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for _ in range(rounds):  # interleaved: each round runs every mode once
        for mode in modes:
            runs[mode].append(
                time_to_accuracy(
                    data,
                    device,
                    1 if smoke else 40,
                    model=digits_cnn,
                    target=DIGITS_TARGET,
                    cuda_graphs=mode,
                    **DIGITS_SETTINGS,
                )
            )
    for mode, name in (("off", "eager"), ("on", "cuda_graphs")):
        if mode in runs:
            seconds = median([r["seconds"] for r in runs[mode]])
            out[name] = {"median_seconds": seconds, "runs": runs[mode]}
    if device.type != "cuda":
        out["skipped"] = {"cuda_graphs": f"CUDA graphs need a CUDA device; this run is on {device}"}
    return out


# ------------------------------------------------------------------------------------- run


RUNNERS: dict[str, Callable[[Data, int, torch.device], dict[str, Any]]] = {
    "neuroflow": run_neuroflow,
    "neuroflow_amp": functools.partial(run_neuroflow, amp=True),
    "neuroflow_cuda_graphs": functools.partial(run_neuroflow, cuda_graphs="on"),
    "plain_loop": run_plain_loop,
    "tutorial": run_tutorial,
    "sklearn": run_sklearn,
    "lightning": run_lightning,
}
_child_data: Data | None = None
# What the contenders' processes import; a module that is missing is skipped by the forkserver.
_FORKSERVER_PRELOAD = [
    "benchmarks.bench_engine",
    "sklearn.datasets",
    "sklearn.neural_network",
    "neuroflow.training.engine",
    "lightning.pytorch",
    "pytorch_lightning",
]


def _child_setup(n_samples: int) -> None:
    global _child_data
    logging.getLogger().setLevel(logging.WARNING)
    _child_data = make_data(n_samples)


def _child_run(name: str, epochs: int, device: str, warm_up: bool = False) -> dict[str, Any]:
    assert _child_data is not None
    data = tuple(t[:1_000] for t in _child_data) if warm_up else _child_data
    return RUNNERS[name](data, 1 if warm_up else epochs, torch.device(device))  # type: ignore[arg-type]


@contextlib.contextmanager
def _contender_process(
    name: str, n_samples: int, epochs: int, device: str
) -> Iterator[Callable[[], dict[str, Any]]]:
    """A fresh process holding `name`'s data, warmed up once (thread pools, allocator, kernels)
    outside the measured rounds; yields one measured run. Forked from a forkserver that only
    imported the contenders' libraries (once for all of them, not once each), so no process-wide
    setting reaches it, and no OpenMP pool: forking after one ran can hang."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_FORKSERVER_PRELOAD)  # a no-op once the forkserver runs
    with ProcessPoolExecutor(
        1, mp_context=context, initializer=_child_setup, initargs=(n_samples,)
    ) as pool:
        pool.submit(_child_run, name, epochs, device, True).result()
        yield lambda: pool.submit(_child_run, name, epochs, device).result()


def run(smoke: bool, device: str = "cpu", rounds: int = 3) -> dict[str, Any]:
    """The comparison; `smoke` shrinks it to a few thousand rows and one epoch, one round."""
    dev = torch.device(device)
    n_samples, epochs = (2_000, 1) if smoke else (200_000, EPOCHS)
    gemm_reps, square = (5, 256) if smoke else (200, 8192 if dev.type == "cuda" else 1024)
    rounds = 1 if smoke else rounds
    data = make_data(n_samples)

    names = ["neuroflow", "plain_loop", "tutorial", "sklearn"]
    skipped: dict[str, str] = {}
    if dev.type == "cuda":
        names += ["neuroflow_amp", "neuroflow_cuda_graphs"]
    else:
        skipped["neuroflow_cuda_graphs"] = f"CUDA graphs need a CUDA device; this run is on {dev}"
    try:
        _lightning()
        names.append("lightning")
    except ImportError as exc:
        skipped["lightning"] = f"not installed: {exc}"

    with contextlib.ExitStack() as stack:
        workers = {
            name: stack.enter_context(_contender_process(name, n_samples, epochs, device))
            for name in names
        }
        ceiling_before = gemm_ceiling(dev, reps=gemm_reps)
        runs = interleave(workers, rounds)
    ceiling_after = gemm_ceiling(dev, reps=gemm_reps)
    ceiling = max((ceiling_before, ceiling_after), key=lambda c: c["samples_per_s"])
    summary = summarise(runs)
    ratios = within_round_ratios(runs, "samples_per_s", "neuroflow")
    ours = summary["neuroflow"]["median"]
    accuracy_gap = {
        name: abs(s["median"]["val_accuracy"] - ours["val_accuracy"]) * 100
        for name, s in summary.items()
    }
    goals: dict[str, Any] = {
        name: {
            "goal_ratio": goal,
            "ratio": ratios[name]["median"],
            "met": ratios[name]["median"] >= goal,
        }
        for name, goal in GOALS.items()
        if name in ratios
    }
    ceiling_fraction = ours["samples_per_s"] / ceiling["samples_per_s"]
    goals["gemm_ceiling"] = {
        "goal_fraction": CEILING_GOAL,
        "fraction": ceiling_fraction,
        "met": ceiling_fraction >= CEILING_GOAL,
    }
    if "neuroflow_cuda_graphs" in summary:
        rate = summary["neuroflow_cuda_graphs"]["median"]["samples_per_s"]
        goals["neuroflow_cuda_graphs"] = {
            "goal_samples_per_s": CUDA_GRAPHS_GOAL,
            "samples_per_s": rate,
            "met": rate >= CUDA_GRAPHS_GOAL,
        }
    goals["accuracy_within_0.5_points"] = {
        "max_gap_points": max(accuracy_gap.values()),
        "met": max(accuracy_gap.values()) <= 0.5,
    }
    extra_packages = ("safetensors",)
    result: dict[str, Any] = {
        "name": "engine_gpu" if dev.type == "cuda" else "engine",
        "smoke": smoke,
        "machine": machine(extra_packages),
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "task": {
            "n_samples": n_samples,
            "train_rows": len(data[0]),
            "epochs": epochs,
            "batch": BATCH,
            "hidden": list(HIDDEN),
            "flops_per_sample": model_flops_per_sample(),
        },
        "rounds": rounds,
        "contenders": summary,
        "ratios_vs_neuroflow": ratios,
        "accuracy_gap_points": accuracy_gap,
        "gemm_ceiling": {"before": ceiling_before, "after": ceiling_after, "used": ceiling},
        "goals": goals,
        "skipped": skipped,
    }
    if dev.type == "cuda":
        result["machine"]["gpu"] = torch.cuda.get_device_name(dev)
        result["device_rates"] = {
            "fp32_gemm_gflops": square_gemm_rate(dev, square, torch.float32),
            "bf16_gemm_gflops": square_gemm_rate(dev, square, torch.bfloat16),
            "tf32_enabled": torch.backends.cuda.matmul.allow_tf32,
            **copy_bandwidth(dev),
        }
    else:
        result["device_rates"] = {
            "fp32_gemm_gflops": square_gemm_rate(dev, square, torch.float32),
            **copy_bandwidth(dev),
        }
    max_epochs = 1 if smoke else 10
    tta = [time_to_accuracy(data, dev, max_epochs) for _ in range(1 if smoke else rounds)]
    result["time_to_98"] = {
        "defaults": {"median_seconds": median([t["seconds"] for t in tta]), "runs": tta},
    }
    if dev.type == "cuda":  # the defaults capture the step there (cuda_graphs auto): eager too
        tta = [time_to_accuracy(data, dev, max_epochs, cuda_graphs="off") for _ in tta]
        result["time_to_98"]["eager"] = {
            "median_seconds": median([t["seconds"] for t in tta]),
            "runs": tta,
        }
    result["digits_time_to_97"] = digits_time_to_accuracy(dev, smoke, 1 if smoke else rounds)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--gpu", action="store_true", help="train on cuda:0")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.gpu:
        # Deterministic cuBLAS needs this before the first GEMM of the process.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    result = run(args.smoke, "cuda" if args.gpu else "cpu", args.rounds)
    out = args.out or RESULTS_DIR / f"{result['name']}.json"
    write_json(out, result)
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
