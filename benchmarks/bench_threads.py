"""CPU training threads: one, every core, and the engine's choice, on an idle and a busy machine.

The default pipeline's network (30 → 32 → 16 → 2, tanh, dropout, AdamW, batch 32) on as many
rows as the bundled breast-cancer train split. "Busy" runs one spinning process per core beside
the training, as a CI runner or parallel sweeps do. Contenders are interleaved per round.

    python -m benchmarks.bench_threads [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from benchmarks import common

ROWS, VAL_ROWS, FEATURES = 369, 86, 30
ROUNDS = 3


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """`count` processes spinning on the CPU; stopped (by PID) on exit."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def train_once(threads: int, epochs: int) -> dict[str, Any]:
    import torch

    from neuroflow.models.factory import build_model
    from neuroflow.models.spec import ModelSpec
    from neuroflow.training.engine import TensorSplits, TrainSettings, fit

    g = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS + VAL_ROWS, FEATURES, generator=g)
    y = (x[:, :5].sum(1) + 0.5 * torch.randn(len(x), generator=g) > 0).long()
    data = TensorSplits(x[:ROWS], y[:ROWS], x[ROWS:], y[ROWS:])
    spec = ModelSpec(
        type="mlp",
        task="binary",
        input_dim=FEATURES,
        output_dim=2,
        hidden=[32, 16],
        activation="tanh",
        dropout=0.1,
    )
    torch.manual_seed(0)
    settings = TrainSettings(
        epochs=epochs,
        batch_size=32,
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.01,
        scheduler="plateau",
        grad_clip=1.0,
        patience=epochs + 1,
        device="cpu",
        threads=threads,
    )
    result = fit(build_model(spec), data, settings)
    return {"samples_per_s": result.samples_per_second, "threads_used": result.threads}


def run(smoke: bool) -> dict[str, Any]:
    logging.getLogger("neuroflow").setLevel(logging.WARNING)
    cores = os.cpu_count() or 1
    epochs, rounds = (2, 1) if smoke else (40, ROUNDS)
    contenders = {
        "auto": lambda: train_once(0, epochs),
        "one_thread": lambda: train_once(1, epochs),
        f"{cores}_threads": lambda: train_once(cores, epochs),
    }
    out: dict[str, Any] = {
        "name": "threads",
        "machine": common.machine(),
        "smoke": smoke,
        "rows": ROWS,
        "epochs": epochs,
        "rounds": rounds,
    }
    table = []
    for condition, hogs in (("idle", 0), ("busy", cores)):
        with busy_cores(hogs):
            runs = common.interleave(contenders, rounds)
        summary = common.summarise(runs)
        ratios = common.within_round_ratios(runs, "samples_per_s", "auto")
        out[condition] = {"runs": summary, "auto_vs": ratios}
        for name in contenders:
            table.append(
                [
                    condition,
                    name,
                    round(summary[name]["median"]["samples_per_s"]),
                    sorted({r["threads_used"] for r in runs[name]}),
                    "1.00" if name == "auto" else f"{ratios[name]['median']:.2f}",
                ]
            )
    out["table"] = {
        "columns": ["machine", "threads", "samples/s (median)", "threads used", "auto ÷ this"],
        "rows": table,
    }
    out["auto_vs_all_cores_busy"] = out["busy"]["auto_vs"][f"{cores}_threads"]["median"]
    out["auto_vs_one_thread_idle"] = out["idle"]["auto_vs"]["one_thread"]["median"]
    out["note"] = (
        f"{epochs} epochs of the default network on {ROWS} rows, {rounds} interleaved rounds per "
        f"machine state; busy = {cores} spinning processes beside the training. The last column "
        "is the median within-round ratio of samples/s."
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    result = run(args.smoke)
    if not args.smoke:
        common.write_json(common.RESULTS_DIR / "threads.json", result)
    print(result["table"])


if __name__ == "__main__":
    main()
