"""`neuroflow` command line: one command per pipeline stage, plus profile and reporting.

Imports here are deliberately light (typer only): `neuroflow --help` must be instant. Each
command imports its stage module when it runs.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from neuroflow.commands import ParamsOpt, context, fail, guarded

app = typer.Typer(
    name="neuroflow",
    help="Raw data to a promoted, servable PyTorch network: the pipeline's stages and tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: rich's help renderer (markdown, tables) costs ~0.15 s of imports per call.
    rich_markup_mode=None,
)

log = logging.getLogger("neuroflow")

VERBOSE_ENV = "NEUROFLOW_VERBOSE"  # --verbose, for every stage a pipeline runs


def _setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, markup=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("neuroflow").setLevel(level)


def _stage(name: str, params_file: Path) -> Any:
    def go() -> Any:
        params, paths = context(params_file)
        module = importlib.import_module(f"neuroflow.stages.{name}")
        return module.run(params, paths)

    return guarded(go)


@app.callback()
def _main(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            envvar=VERBOSE_ENV,  # reaches the stages `dvc repro` runs
            help="Debug logging, with a line per training epoch.",
        ),
    ] = False,
) -> None:
    _setup_logging(verbose)


@app.command()
def check(params: ParamsOpt = Path("params.yaml")) -> None:
    """Validate params.yaml in full and the files it names (runs before any other stage)."""
    _stage("check", params)


@app.command()
def ingest(params: ParamsOpt = Path("params.yaml")) -> None:
    """Load the configured source into seeded train/val/test Parquet splits."""
    _stage("ingest", params)


@app.command()
def validate(
    params: ParamsOpt = Path("params.yaml"),
    batch: Annotated[
        Path | None,
        typer.Option("--batch", help="Check a later CSV/Parquet batch: suite, duplicates, drift."),
    ] = None,
) -> None:
    """Run the expectation suite, duplicate and drift checks on every split (or on --batch)."""
    if batch is None:
        _stage("validate", params)
        return

    def go() -> None:
        from neuroflow.stages.validate import validate_batch

        cfg, paths = context(params)
        validate_batch(cfg, paths, batch)

    guarded(go)


@app.command()
def preprocess(params: ParamsOpt = Path("params.yaml")) -> None:
    """Fit impute/encode/select/scale/PCA on train; apply to every split."""
    _stage("preprocess", params)


@app.command()
def train(
    params: ParamsOpt = Path("params.yaml"),
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc",
            min=1,
            help="Data-parallel processes on this machine (DDP via torchrun); 1 = plain.",
        ),
    ] = 1,
) -> None:
    """Train the network (resumes from the last checkpoint of the same config)."""
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        # Re-exec under torchrun: it starts the ranks, gives them a rendezvous and, if one
        # rank fails, stops the others.
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "neuroflow.cli",
            "train",
            "--params",
            str(params),
        ]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, cmd)
    _stage("train", params)


@app.command()
def evaluate(params: ParamsOpt = Path("params.yaml")) -> None:
    """Score the test split: DVC metrics, per-class metrics and plots."""
    _stage("evaluate", params)


@app.command()
def export(params: ParamsOpt = Path("params.yaml")) -> None:
    """Export one raw-rows ONNX graph, check parity, register it as @challenger."""
    _stage("export", params)


@app.command()
def profile(
    params: ParamsOpt = Path("params.yaml"),
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write the suite (default: validate.suite)."),
    ] = None,
    margin: Annotated[
        float,
        typer.Option(help="Widen each numeric range by this fraction of its train span."),
    ] = 1.0,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing suite at that path.")
    ] = False,
) -> None:
    """Propose an expectation suite from the train split, for a person to review.

    The configured source is split as `ingest` would split it, in a scratch folder: profiling
    needs no `dvc repro ingest` first and leaves the pipeline's data/raw alone.
    """

    def go() -> None:
        import tempfile
        from dataclasses import dataclass

        from neuroflow.config import Paths
        from neuroflow.data.sources import read_parquet
        from neuroflow.stages import ingest
        from neuroflow.validation.profile import propose_suite
        from neuroflow.validation.suite import save_suite

        cfg, paths = context(params)
        target = output or paths.root / cfg.validate_.suite
        if target.exists() and not force:
            raise fail(
                f"{target} exists: review or edit it, or replace it with --force "
                "(-o writes elsewhere)",
                1,
            )

        @dataclass(frozen=True)
        class ScratchPaths(Paths):
            scratch: Path = Path()

            @property
            def raw_dir(self) -> Path:
                return self.scratch

        with tempfile.TemporaryDirectory(prefix="neuroflow-profile-") as tmp:
            scratch = ScratchPaths(root=paths.root, scratch=Path(tmp))
            schema = ingest.run(cfg, scratch)
            train = read_parquet(scratch.raw_split("train"))
        suite = propose_suite(
            train,
            name=Path(cfg.validate_.suite).stem,
            target=schema["target"],
            range_margin=margin,
            smallest_split=min(schema["rows"].values()),
        )
        save_suite(suite, target)
        log.info("proposed suite written to %s: review it, commit it, then `dvc repro`", target)

    guarded(go)


@app.command()
def restore() -> None:
    """Put params.yaml, dvc.lock and every pipeline output back to the last commit.

    The one command after any failed run (a bad input, a bad param, a failed preset). Input
    files under data/ stay as you have them; the replaced versions of changed files are saved
    under .dvc/tmp/neuroflow-restore/.
    """

    def go() -> None:
        from neuroflow.workspace import restore_committed

        done = restore_committed(Path.cwd())
        if done.changed:
            log.info(
                "restored from HEAD: %s (previous versions in %s)",
                ", ".join(done.changed),
                done.backup,
            )
        log.info("pipeline outputs checked out as dvc.lock records them")
        for name in done.inputs_differ:
            log.warning(
                "kept your input %s, which differs from the last commit "
                "(`git checkout HEAD -- %s` to drop your changes)",
                name,
                name,
            )

    guarded(go)


@app.command()
def compare(
    dvc_args: Annotated[
        list[str] | None,
        typer.Argument(help="Passed to `dvc exp show`, e.g. -A or -n 3 (after `--`)."),
    ] = None,
) -> None:
    """DVC experiments: the params that differ and the test metrics, in the terminal's width."""
    from neuroflow import compare as experiments

    typer.echo(guarded(lambda: experiments.run(dvc_args or [])))


@app.command("show-metrics")
def show_metrics(params: ParamsOpt = Path("params.yaml")) -> None:
    """Print the test metrics of the last pipeline run."""

    def go() -> None:
        from rich.console import Console
        from rich.table import Table

        from neuroflow.io import read_json

        _, paths = context(params)
        if not paths.metrics.exists():
            raise fail(f"{paths.metrics} not found: run the pipeline first (`make run`)", 1)
        metrics = read_json(paths.metrics)
        registration = read_json(paths.registration) if paths.registration.exists() else {}
        table = Table(title=f"test metrics (MLflow run {registration.get('run_id', '?')})")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in metrics.get("test", {}).items():
            table.add_row(key, "n/a" if value is None else f"{value:.4f}")
        Console().print(table)
        if registration:
            alias = registration["alias"]
            Console().print(f"registered: {registration['model_uri']} @{alias}")

    guarded(go)


# --- extension commands: each module adds its commands with `register(app)` -----------------
# Modules listed here import only typer at module level (heavy imports inside commands).
_EXTENSIONS: tuple[str, ...] = (
    "neuroflow.registry.cli",
    "neuroflow.serving.cli",
    "neuroflow.presets",
    "neuroflow.search.cli",
    "neuroflow.warm.cli",
)


def _register_extensions() -> None:
    for name in _EXTENSIONS:
        importlib.import_module(name).register(app)


def _exit_now(code: int | None) -> NoReturn:
    """End the process without the interpreter's module teardown.

    Tearing down torch, MLflow, Great Expectations and scikit-learn costs a stage process
    0.5-1.5 s of garbage collection that does nothing for its results: exit handlers still run
    (logging flushes its handlers, MLflow ends its runs), the standard streams are flushed, and
    every file a stage writes is closed by its writer. While another non-daemon thread is alive
    the normal exit (which waits for it) is kept.
    """
    import atexit
    import threading

    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        # A closed stream or a broken pipe: nothing is left to flush into.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code or 0)


def main() -> None:
    """The commands, run in this process (`neuroflow.warm.client.entry` decides first whether
    a warm server runs a stage instead)."""
    # Quiet third-party start-up chatter before any heavy import can emit it.
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    _register_extensions()
    try:
        app()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            _exit_now(exc.code)
        sys.stderr.write(f"{exc.code}\n")  # like the interpreter: a non-int code is a message
        _exit_now(1)
    _exit_now(0)


if __name__ == "__main__":
    main()  # torchrun's ranks: each rank is a process of its own, never a warm one
