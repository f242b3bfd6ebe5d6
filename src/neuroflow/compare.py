"""`neuroflow compare` (`make compare`): DVC experiments as a table a terminal can hold.

`dvc exp show` lists every param, metric and dependency hash (well over a hundred columns);
even with `--only-changed`, per-class metrics, the MLflow run id and the hashes of changed
dependencies push the test metrics off the screen, and its `--drop`/`--keep` still leave six
long `test.*` headers beside the params. This reads `dvc exp show --json` and keeps what a
comparison needs: the params that differ between the experiments shown and the test metrics.
When the experiments-as-rows table is wider than the terminal, it is printed transposed (one
column per experiment, in groups that fit).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from neuroflow.errors import NeuroflowError

METRICS_FILE = "artifacts/metrics.json"
PARAMS_FILE = "params.yaml"
GAP = "  "


class CompareError(NeuroflowError):
    """`dvc exp show` failed or printed something that is not its JSON."""


@dataclass(frozen=True)
class Experiment:
    name: str
    baseline: bool  # a commit (DVC's baseline row), not an experiment derived from it
    params: dict[str, Any]
    metrics: dict[str, Any]


def _flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], data


def _file_data(section: dict[str, Any] | None, name: str) -> dict[str, Any]:
    entry = (section or {}).get(name) or {}
    return dict(_flatten(entry.get("data") or {}))


def _experiment(entry: dict[str, Any], name: str, baseline: bool) -> Experiment:
    data = entry.get("data") or {}
    metrics = _file_data(data.get("metrics"), METRICS_FILE)
    return Experiment(
        name=name,
        baseline=baseline,
        params=_file_data(data.get("params"), PARAMS_FILE),
        metrics={k: v for k, v in metrics.items() if k.startswith("test.")},
    )


def parse(exp_show: list[dict[str, Any]]) -> list[Experiment]:
    """Baselines and their experiments, in `dvc exp show` order; the workspace row is left out
    (after `dvc exp run` it repeats the last experiment)."""
    out: list[Experiment] = []
    for base in exp_show:
        if base.get("rev") == "workspace":
            continue
        out.append(_experiment(base, base.get("name") or str(base.get("rev", ""))[:7], True))
        for exp in base.get("experiments") or []:
            for rev in exp.get("revs") or []:
                name = exp.get("name") or rev.get("name") or str(rev.get("rev", ""))[:7]
                out.append(_experiment(rev, name, False))
    return out


def _cell(value: Any, digits: int | None = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.0f}"
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(experiments: list[Experiment]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: experiment, the params that differ between them, every test metric."""
    params = list(dict.fromkeys(k for e in experiments for k in e.params))
    changed = [k for k in params if len({json.dumps(e.params.get(k)) for e in experiments}) > 1]
    metrics = list(dict.fromkeys(k for e in experiments for k in e.metrics))
    header = ["experiment", *changed, *(m.removeprefix("test.") for m in metrics)]
    rows = [
        [
            e.name if e.baseline else f"  {e.name}",
            *(_cell(e.params.get(k), digits=None) for k in changed),  # as written
            *(_cell(e.metrics.get(m)) for m in metrics),
        ]
        for e in experiments
    ]
    return header, rows


def _lines(rows: list[list[str]], right_from: int) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        GAP.join(
            cell.rjust(w) if i >= right_from else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def render(header: list[str], rows: list[list[str]], width: int) -> str:
    """Experiments as rows when that fits in `width`; else transposed, in groups that fit."""
    if not rows:
        return "no experiments: run one with `dvc exp run -S train.lr=0.003`"
    wide = _lines([header, *rows], right_from=1)
    if max(map(len, wide)) <= width:
        return "\n".join(wide)
    columns = [[h, *(r[i] for r in rows)] for i, h in enumerate(header)]  # transposed
    label = max(len(c[0]) for c in columns)
    blocks: list[str] = []
    start = 1
    while start < len(columns[0]):  # add experiments while the block still fits
        end, used = start, label
        while end < len(columns[0]):
            cell = max(len(c[end].strip()) for c in columns)
            if end > start and used + len(GAP) + cell > width:
                break
            used, end = used + len(GAP) + cell, end + 1
        part = [[c[0], *(x.strip() for x in c[start:end])] for c in columns]
        blocks.append("\n".join(_lines(part, right_from=1)))
        start = end
    return "\n\n".join(blocks)


def exp_show(dvc_args: list[str]) -> list[dict[str, Any]]:
    proc = subprocess.run(
        ["dvc", "exp", "show", "--json", *dvc_args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise CompareError(f"dvc exp show failed: {proc.stderr.strip() or proc.stdout.strip()}")
    try:
        return list(json.loads(proc.stdout))
    except json.JSONDecodeError as exc:
        raise CompareError(f"dvc exp show --json printed no JSON: {exc}") from None


def run(dvc_args: list[str], width: int | None = None) -> str:
    if width is None:  # $COLUMNS, else the terminal's width; 120 where there is none (a pipe)
        width = shutil.get_terminal_size((120, 24)).columns
    return render(*table(parse(exp_show(dvc_args))), width)
