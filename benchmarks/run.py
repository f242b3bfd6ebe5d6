"""Run every ``benchmarks/bench_*.py`` and write ``results/<name>.json`` plus ``RESULTS.md``.

    python -m benchmarks.run            # full run: benchmarks/results/*.json + RESULTS.md
    python -m benchmarks.run --smoke    # a tiny run of each, into a temp dir (CI)
    python -m benchmarks.run --only engine --only validation

Each module exposes ``run(smoke: bool) -> dict``. A module that fails to import is skipped with
the reason logged (it may need an optional dependency); one whose run raises is reported and
makes the exit status non-zero. RESULTS.md is rendered from every JSON in the output folder, so
results brought back from another machine (``engine_gpu.json``) appear beside this run's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, write_json, write_text
from benchmarks.report import render

log = logging.getLogger("benchmarks")

BENCH_DIR = Path(__file__).resolve().parent


def _logger_levels() -> dict[str, int]:
    loggers = logging.root.manager.loggerDict.items()
    return {name: lg.level for name, lg in loggers if isinstance(lg, logging.Logger)}


@contextlib.contextmanager
def _isolated() -> Iterator[None]:
    """Undo what a benchmark changes process-wide (env vars, torch threads, logger levels) for
    the next one."""
    env = dict(os.environ)
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    levels = _logger_levels()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(env)
        for name in _logger_levels():
            logging.getLogger(name).setLevel(levels.get(name, logging.NOTSET))
        torch = sys.modules.get("torch")
        if torch is not None:
            if threads is not None:
                torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(False)


def discover() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))


def run_all(
    out_dir: Path, smoke: bool, only: list[str] | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, str]]:
    """Run the benchmarks; returns (results by name, skipped: reason, failed: error)."""
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    for stem in discover():
        name = stem.removeprefix("bench_")
        if only and name not in only:
            continue
        try:
            module = importlib.import_module(f"benchmarks.{stem}")
        except Exception as exc:  # an optional dependency missing: skip, don't crash
            skipped[name] = f"import failed: {type(exc).__name__}: {exc}"
            log.warning("skipping %s: %s", stem, skipped[name])
            continue
        if not callable(getattr(module, "run", None)):
            skipped[name] = "no run(smoke) function"
            log.warning("skipping %s: %s", stem, skipped[name])
            continue
        log.info("running %s (smoke=%s)", stem, smoke)
        started = time.perf_counter()
        try:
            with _isolated():
                result = module.run(smoke=smoke)
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
            log.error("%s failed:\n%s", stem, traceback.format_exc())
            continue
        result.setdefault("name", name)
        result.setdefault("smoke", smoke)
        result["wall_seconds"] = time.perf_counter() - started
        results[name] = result
        write_json(out_dir / f"{result['name']}.json", result)
        log.info("%s done in %.1f s", stem, result["wall_seconds"])
    return results, skipped, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks.")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check they work")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--only", action="append", help="benchmark name, e.g. engine")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    out_dir: Path = args.out or (
        Path(tempfile.mkdtemp(prefix="neuroflow-bench-")) if args.smoke else RESULTS_DIR
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    _, skipped, failed = run_all(out_dir, args.smoke, args.only)
    # The table lives beside the code, the JSON under results/; a smoke run keeps both in out.
    table = BENCH_DIR / "RESULTS.md" if out_dir == RESULTS_DIR else out_dir / "RESULTS.md"
    write_text(table, render(out_dir, skipped, failed))
    log.info("results in %s", out_dir)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
