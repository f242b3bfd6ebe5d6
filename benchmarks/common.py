"""Shared benchmark plumbing: machine facts, interleaved timing, medians, JSON results.

Imports only the standard library at module level, so every benchmark (and the smoke test) can
use it on a bare machine that has torch/numpy but not the rest of the stack.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, MutableMapping
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger("benchmarks")

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(*packages: str) -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine(extra_packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Where a figure was measured: CPU, cores, load, and the versions that matter."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_avg_1m_at_start": round(load[0], 2),
        "versions": versions(
            "torch",
            "numpy",
            "scikit-learn",
            "pandas",
            "onnxruntime",
            "lightning",
            "pytorch-lightning",
            *extra_packages,
        ),
    }


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def interleave(
    contenders: dict[str, Callable[[], dict[str, Any]]], rounds: int
) -> dict[str, list[dict[str, Any]]]:
    """Run every contender once per round, in a rotating order, so load drifts hit all alike.

    Each contender returns a dict of measurements; the lists keep the rounds aligned, so a
    ratio can be taken between contenders *within* the same round.
    """
    names = list(contenders)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            started = time.perf_counter()
            result = contenders[name]()
            log.info("round %d %-12s %.2fs %s", r + 1, name, time.perf_counter() - started, result)
            out[name].append(result)
    return out


def within_round_ratios(
    runs: dict[str, list[dict[str, Any]]], key: str, ours: str
) -> dict[str, dict[str, Any]]:
    """Per other contender: `ours[key] / theirs[key]` in each round, and the median of those."""
    ratios: dict[str, dict[str, Any]] = {}
    for name, results in runs.items():
        if name == ours:
            continue
        per_round = [
            a[key] / b[key] for a, b in zip(runs[ours], results, strict=True) if b.get(key)
        ]
        ratios[name] = {"per_round": per_round, "median": median(per_round)}
    return ratios


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Median of every numeric measurement, plus the raw rounds."""
    out: dict[str, dict[str, Any]] = {}
    for name, results in runs.items():
        keys = [k for k, v in results[0].items() if isinstance(v, int | float)] if results else []
        out[name] = {
            "median": {
                k: median([float(r[k]) for r in results if r.get(k) is not None]) for k in keys
            },
            "rounds": results,
        }
    return out


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic: a temp file beside `path`, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, allow_nan=True, default=str)
            fh.write("\n")
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_python(
    code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> dict[str, Any]:
    """Run `code` in a fresh interpreter; it must print one JSON object as its last stdout line.

    A fresh process per measurement is what makes peak RSS (ru_maxrss) meaningful.
    """
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def call_seconds(fn: Callable[[], Any], calls: int, warmup: int = 0) -> list[float]:
    """Seconds of each of `calls` calls of `fn`, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    return [timed(fn)[0] for _ in range(calls)]


def free_port() -> int:
    """A free TCP port on loopback (the servers measured or tested bind 127.0.0.1 only)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> None:
    """Stop a process started here, by its PID: SIGTERM, SIGKILL after `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def breast_cancer_model(epochs: int) -> tuple[Any, Any, Any, Any]:
    """The default params' model on the bundled breast-cancer rows, as the export stage builds
    it: (raw feature frame, preprocessor fitted on those rows, spec, inference head).

    The network (30 → 32 → 16 → 2, tanh, dropout 0.1) trains `epochs` epochs on the same rows;
    with 0 it keeps its seeded initial weights.
    """
    import numpy as np
    import torch
    from sklearn.datasets import load_breast_cancer

    from neuroflow.features.transform import fit_preprocessor
    from neuroflow.models.factory import InferenceHead, build_model
    from neuroflow.models.spec import ModelSpec
    from neuroflow.training.engine import TensorSplits, TrainSettings, fit

    frame = load_breast_cancer(as_frame=True).frame
    features = frame.drop(columns=["target"])
    target = frame["target"]
    pre = fit_preprocessor(features, target, numeric=list(features.columns), classification=True)
    spec = ModelSpec(
        type="mlp",
        task="binary",
        input_dim=pre.output_dim,
        output_dim=2,
        hidden=[32, 16],
        activation="tanh",
        dropout=0.1,
        classes=[0, 1],
    )
    torch.manual_seed(0)
    network = build_model(spec)
    if epochs:
        x = torch.from_numpy(pre.transform(features))
        y = torch.from_numpy(target.to_numpy().astype(np.int64))
        fit(network, TensorSplits(x, y, x, y), TrainSettings(epochs=epochs, device="cpu"))
    return features, pre, spec, InferenceHead(network, spec).eval()


# Pipeline outputs and stores a checkout may hold untracked: a fresh clone has none of them.
_OUTPUTS = (
    "data/raw",
    "data/processed",
    "data/validated",
    "reports/",
    "artifacts/",
    "mlruns/",
    "benchmarks/results",
)


def project_env(root: Path) -> dict[str, str]:
    """The environment a benchmarked project runs in: the venv first, its own SQLite store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    for key in ("GIT_AUTHOR", "GIT_COMMITTER"):
        env[f"{key}_NAME"], env[f"{key}_EMAIL"] = "bench", "bench@example.com"
    return env


@contextlib.contextmanager
def own_warm_servers(env: MutableMapping[str, str], **settings: str) -> Iterator[Path]:
    """Warm stage servers that `env`'s stages start register in a new folder of their own (with
    `settings`, e.g. NEUROFLOW_WARM_IDLE_S), so a cold run starts cold and no other run's start
    evicts them; they are stopped, and `env` is as it was, after."""
    from neuroflow.warm import registry

    directory = Path(tempfile.mkdtemp(prefix="nfw-"))  # short: a socket path fits 108 bytes
    changed = {registry.DIR_ENV: str(directory), **settings}
    before = {key: env.get(key) for key in changed}
    env.update(changed)
    try:
        yield directory
    finally:
        for key, value in before.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        registry.stop_servers(registry.live_servers(directory), timeout_s=60.0)
        shutil.rmtree(directory, ignore_errors=True)


def copy_project(dest: Path, source: Path = ROOT) -> Path:
    """The tracked (and untracked, not ignored) files of the checkout at `source`, without
    pipeline outputs, as a fresh git repository at `dest`: what a new clone holds."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for rel in files:
        src = source / rel
        if not src.is_file() or rel.startswith(_OUTPUTS) or rel in ("dvc.lock", "mlflow.db"):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "init"],
    ):
        subprocess.run(cmd, cwd=dest, check=True, env=project_env(dest), capture_output=True)
    return dest
