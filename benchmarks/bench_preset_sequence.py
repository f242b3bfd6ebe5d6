"""Every preset in sequence in one clone, through `neuroflow run-preset`, as a user runs them.

Each preset must start from the committed params.yaml, not from what the previous experiment
left in the workspace (a forecast's `data.source: series` under the anomaly preset), and still
reach its bar. bench_presets checks the bars over eleven seeds in scratch projects; this one
checks the user's path: one checkout, `dvc exp run` after `dvc exp run`, the default seed.

    python -m benchmarks.bench_preset_sequence           # every preset, full params
    python -m benchmarks.bench_preset_sequence --smoke   # three presets, a few epochs each
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_presets import BARS
from benchmarks.common import copy_project, machine, project_env

log = logging.getLogger("benchmarks.preset_sequence")

# Smoke: across task and data source, so a leftover key from one would break the next.
SMOKE = ("forecast", "anomaly", "iris")


def _preset_file(root: Path, name: str, smoke: bool) -> Path:
    if not smoke:
        return root / "presets" / f"{name}.yaml"
    import yaml

    preset = yaml.safe_load((root / "presets" / f"{name}.yaml").read_text())
    preset.setdefault("train", {}).update({"epochs": 3, "patience": 3})
    path = root / f"smoke_{name}.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


def run(smoke: bool) -> dict[str, Any]:
    names = SMOKE if smoke else tuple(BARS)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="neuroflow-preset-seq-") as tmp:
        root = copy_project(Path(tmp) / "project")
        env = project_env(root)
        for name in names:
            started = time.perf_counter()
            proc = subprocess.run(
                ["neuroflow", "run-preset", "--file", str(_preset_file(root, name, smoke))],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            seconds = time.perf_counter() - started
            if proc.returncode != 0:
                raise RuntimeError(f"preset {name} failed:\n{proc.stderr[-3000:]}")
            test = json.loads(proc.stdout[proc.stdout.index("{") :])["test"]
            metric, op, bar = BARS[name]
            value = float(test[metric])
            passed = value >= bar if op == ">=" else value <= bar
            rows.append(
                {
                    "preset": name,
                    "metric": metric,
                    "value": round(value, 4),
                    "bar": f"{op} {bar}",
                    "passed": bool(passed),
                    "seconds": round(seconds, 1),
                }
            )
            log.info("%s: %s = %.4f (bar %s %s) in %.1f s", name, metric, value, op, bar, seconds)
    return {
        "benchmark": "preset_sequence",
        "smoke": smoke,
        "machine": machine(("torch",)),
        "note": "one clone, every preset in turn through `neuroflow run-preset` (default seed)",
        "results": rows,
        "all_passed": all(r["passed"] for r in rows) if not smoke else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(run(args.smoke), indent=2))


if __name__ == "__main__":
    main()
