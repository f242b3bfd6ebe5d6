"""What every `neuroflow` command module shares: the params option, the error guard, the context.

Command modules (cli.py, presets.py, registry/cli.py, serving/cli.py, search/cli.py) import
from here, never from each other, so no command module imports another. Only typer at module
level: `neuroflow --help` must stay instant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from neuroflow.config import Params, Paths

log = logging.getLogger("neuroflow")
T = TypeVar("T")

ParamsOpt = Annotated[
    Path, typer.Option("--params", "-p", help="Parameters file (DVC's params.yaml).")
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Registered model name (default: registry.model_name)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def fail(message: str, code: int) -> typer.Exit:
    """Log `message` as the command's one error line; raise the result to exit with `code`."""
    log.error("%s", message)
    return typer.Exit(code)


def guarded(func: Callable[[], T]) -> T:
    """User-caused errors become one logged message and a non-zero exit, no traceback."""
    from neuroflow.config import ParamsError
    from neuroflow.errors import NeuroflowError

    try:
        return func()
    except (NeuroflowError, ParamsError) as exc:
        raise fail(str(exc), exc.exit_code) from None


def load(params_file: Path) -> tuple[Params, Path]:
    """The validated params and the project root (the current directory)."""
    params, paths = context(params_file)
    return params, paths.root


def context(params_file: Path) -> tuple[Params, Paths]:
    """The validated params and the project's paths (the current directory is the root)."""
    from neuroflow.config import Paths, load_params

    return load_params(params_file), Paths(root=Path.cwd())
