"""Presets: `presets/<name>.yaml` holds the params that differ from params.yaml.

`neuroflow run-preset NAME` turns the file into `dvc exp run -S ++key=value` overrides (one per
leaf), so a preset runs as a DVC experiment on the real pipeline and params.yaml is never edited
by hand; then it prints the experiment's test metrics. `neuroflow tune` writes its best values
in the same format, so `neuroflow run-preset --file artifacts/tune/best_params.yaml` applies them.

This module registers the `run-preset` command (cli.py's `_EXTENSIONS` hook);
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


def committed_params(root: Path) -> str | None:
    """params.yaml as of git's HEAD (None outside a git checkout or before the first commit)."""
    proc = subprocess.run(
        ["git", "show", "HEAD:params.yaml"], cwd=root, capture_output=True, text=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else None


def resolve(root: Path, overrides: dict[str, Any], origin: str, base: str | None = None) -> Any:
    """params.yaml (or `base`, its text) with the overrides applied, validated before DVC runs."""
    from neuroflow.config import ParamsError, load_params

    try:
        return load_params(root / "params.yaml", overrides, text=base)
    except ParamsError as exc:
        detail = str(exc).split("\n", 1)[-1]  # the key lines, without params.yaml's path
        raise PresetError(f"{origin}: the preset does not give valid params:\n{detail}") from exc


def run_preset(
    root: Path, path: Path, *, name: str | None = None, dry_run: bool = False
) -> list[str]:
    """Run a preset over the committed params.yaml; a failed run puts the workspace back.

    `dvc exp run` leaves its params in the workspace, so the next preset would be merged over
    the last one's (a forecast's `data.source: series` under an anomaly preset). Each preset
    therefore starts from git's HEAD version of params.yaml; a workspace version that differs
    is saved first and the log says where.
    """
    from neuroflow.workspace import Snapshot, save_aside

    overrides = load_overrides(path)
    base = committed_params(root)
    params = resolve(root, overrides, str(path), base)
    suite = root / params.validate_.suite
    if not suite.is_file():
        raise PresetError(
            f"{path}: validate.suite {params.validate_.suite} not found; propose one with "
            f"`neuroflow profile -o {params.validate_.suite}`, review it, and save it there"
        )
    cmd = ["dvc", "exp", "run", *set_param_args(overrides)]
    if name:
        cmd += ["--name", name]
    if dry_run:
        return cmd
    snapshot = Snapshot.take(root)
    params_file = root / "params.yaml"
    if base is not None and params_file.read_text(encoding="utf-8") != base:
        saved = save_aside(root, ["params.yaml"]) / "params.yaml"
        log.info(
            "the preset starts from the committed params.yaml; the workspace's is in %s", saved
        )
        from neuroflow.io import write_text

        write_text(params_file, base)
    log.info("running %s", " ".join(cmd))
    code, output = _run_streamed(cmd, root)
    if code != 0:
        changed = snapshot.restore()
        stage, cause = failure_of(output)
        kept = "params.yaml, dvc.lock and the pipeline outputs are as they were before the run" + (
            f" (put back: {', '.join(changed)})" if changed else ""
        )
        raise PresetError(f"{path}: `dvc exp run` failed at stage {stage!r}: {cause}\n{kept}")
    return cmd


def failure_of(output: list[str]) -> tuple[str, str]:
    """(stage, cause) from a failed DVC run's output: DVC names the stage, the stage the cause."""
    import re

    stage, cause = "?", ""
    for i, line in enumerate(output):
        if match := re.search(r"failed to reproduce '([^']+)'", line):
            stage = match.group(1)
        if match := re.search(r" ERROR neuroflow[\w.]*: (.*)", line):
            cause = match.group(1)
            cause += "".join(f"\n{more}" for more in _continuation(output[i + 1 :]))
    if not cause:
        errors = [line for line in output if line.startswith("ERROR")]
        cause = errors[-1] if errors else (output[-1] if output else "no output")
    return stage, cause.strip()


def _continuation(lines: list[str]) -> list[str]:
    more = []
    for line in lines:
        if not line.startswith("  "):
            break
        more.append(line.rstrip())
    return more


def _run_streamed(cmd: list[str], root: Path) -> tuple[int, list[str]]:
    """Run `cmd`, echoing its output as it comes, and keep the output to explain a failure."""
    import sys

    lines: list[str] = []
    with subprocess.Popen(
        cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stderr.write(line)
            lines.append(line.rstrip("\n"))
    return proc.returncode, lines


def register(app: typer.Typer) -> None:
    from neuroflow.commands import guarded

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

        guarded(go)


def _stamp() -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S")
