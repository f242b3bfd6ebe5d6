"""Presets: `presets/<name>.yaml` holds the params that differ from params.yaml.

`neuroflow run-preset NAME` turns the file into `dvc exp run -S ++key=value` overrides (one per
leaf), so a preset runs as a DVC experiment on the real pipeline and params.yaml is never edited
by hand; then it prints the experiment's test metrics. `neuroflow tune` writes its best values
in the same format, so `neuroflow run-preset --file artifacts/tune/best_params.yaml` applies them.

This module registers the `run-preset`, `cv` and `tune` commands (cli.py's `_EXTENSIONS` hook);
it imports only typer at module level.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer

from neuroflow.errors import ConfigError

log = logging.getLogger(__name__)

PRESET_DIR = "presets"
ParamsOpt = Annotated[
    Path, typer.Option("--params", "-p", help="Parameters file (DVC's params.yaml).")
]


class PresetError(ConfigError):
    """A preset is missing, unreadable or does not validate against params.yaml."""


def preset_path(root: Path, name: str) -> Path:
    return root / PRESET_DIR / f"{name}.yaml"


def list_presets(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / PRESET_DIR).glob("*.yaml"))


def load_overrides(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        names = list_presets(path.parent.parent) if path.parent.name == PRESET_DIR else []
        hint = f"; presets: {', '.join(names)}" if names else ""
        raise PresetError(f"{path}: preset not found{hint}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PresetError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PresetError(
            f"{path}: a preset is a mapping of params keys, got {type(data).__name__}"
        )
    return data


def flatten(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → `dotted.key: value` leaves (lists and empty mappings are leaves)."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and value and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar (what `dvc exp run -S` parses)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def set_param_args(overrides: dict[str, Any]) -> list[str]:
    """`-S ++key=value` per leaf: `++` sets the key whether or not params.yaml has it."""
    args: list[str] = []
    for key, value in flatten(overrides).items():
        args += ["-S", f"++{key}={_hydra_value(value)}"]
    return args


def resolve(root: Path, overrides: dict[str, Any], origin: str) -> Any:
    """params.yaml with the overrides applied, validated (a typo fails before DVC runs)."""
    import yaml

    from neuroflow.config import Params

    base = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) or {}
    try:
        return Params.model_validate(merge(base, overrides))
    except ValueError as exc:
        raise PresetError(f"{origin}: the preset does not give valid params:\n{exc}") from exc


def run_preset(
    root: Path, path: Path, *, name: str | None = None, dry_run: bool = False
) -> list[str]:
    overrides = load_overrides(path)
    params = resolve(root, overrides, str(path))
    suite = root / params.validate_.suite
    if not suite.is_file():
        raise PresetError(
            f"{path}: validate.suite {params.validate_.suite} not found; propose one with "
            "`neuroflow profile` after `dvc exp run ... ingest`, review it, and save it there"
        )
    cmd = ["dvc", "exp", "run", *set_param_args(overrides)]
    if name:
        cmd += ["--name", name]
    if dry_run:
        return cmd
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=root, check=False)
    if proc.returncode != 0:
        raise PresetError(f"{path}: `dvc exp run` exited {proc.returncode}")
    return cmd


def register(app: typer.Typer) -> None:
    from neuroflow.cli import _context, _run

    @app.command("run-preset")
    def run_preset_cmd(
        name: Annotated[str, typer.Argument(help="Preset name: presets/NAME.yaml.")] = "",
        file: Annotated[
            Path | None, typer.Option("--file", "-f", help="A preset-format YAML file instead.")
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print the dvc command only.")
        ] = False,
    ) -> None:
        """Run a preset as a DVC experiment (`dvc exp run -S ...`) and print its test metrics."""

        def go() -> None:
            root = Path.cwd()
            if file is None and not name:
                raise PresetError(f"name a preset: {', '.join(list_presets(root))}")
            path = file if file is not None else preset_path(root, name)
            exp_name = f"{path.stem}-{_stamp()}"
            cmd = run_preset(root, path, name=exp_name, dry_run=dry_run)
            if dry_run:
                typer.echo(" ".join(cmd))
                return
            metrics = json.loads((root / "artifacts" / "metrics.json").read_text())
            typer.echo(
                json.dumps({"preset": name or str(file), "test": metrics.get("test")}, indent=2)
            )

        _run(go)

    @app.command("cv")
    def cv_cmd(params: ParamsOpt = Path("params.yaml")) -> None:
        """k-fold cross-validation on train+val (needs `preprocess`): mean ± std per metric."""

        def go() -> None:
            from neuroflow.search.cv import cross_validate

            cfg, paths = _context(params)
            report = cross_validate(cfg, paths)
            for key, stats in report["summary"].items():
                typer.echo(f"{key:>18}: {stats['mean']:.4f} ± {stats['std']:.4f}")

        _run(go)

    @app.command("tune")
    def tune_cmd(
        params: ParamsOpt = Path("params.yaml"),
        trials: Annotated[int | None, typer.Option(help="Override tune.trials.")] = None,
    ) -> None:
        """Hyperparameter search (TPE / grid / random), each trial a nested MLflow run."""

        def go() -> None:
            from neuroflow.search.tune import tune

            cfg, paths = _context(params)
            result = tune(cfg, paths, trials=trials)
            typer.echo(json.dumps(result["best"], indent=2))
            typer.echo(f"apply with: neuroflow run-preset --file {result['output']}")

        _run(go)


def _stamp() -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S")
