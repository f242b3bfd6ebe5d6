"""Render RESULTS.md from every ``*.json`` in a results folder.

Known results (engine, pipeline, validation, inference) get their own tables; any other
benchmark's JSON is shown as its top-level numbers, or as a table when it carries
``{"table": {"columns": [...], "rows": [[...], ...]}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

HEADER = """# Benchmarks

Written by `make bench` (`python -m benchmarks.run`); the JSON behind every figure is in
`benchmarks/results/`. Every comparison is the **median of interleaved rounds** (each round runs
every contender once, in rotating order) and every ratio is taken **within a round**, then the
median of those ratios is shown. The development machine is shared (2 cores, other jobs running),
so its figures carry noise; the load average at the start of each benchmark is recorded. The
same engine comparison was also run on 2 cores pinned with `taskset` on an idle machine
(`engine_cpu2_device`) and on a GPU (`engine_gpu`). When the shared machine is oversubscribed
(load average far above its 2 cores), 2-thread PyTorch stalls on its thread barriers: one
3-epoch engine run measured 2,970 samples/s at load 9-12 against ~200,000 at load ~1; the
idle-machine figures are the ones to compare with the goals.
"""


def _f(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _machine(data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    versions = ", ".join(f"{k} {v}" for k, v in sorted(m.get("versions", {}).items()))
    gpu = f", GPU: {m['gpu']}" if m.get("gpu") else ""
    text = (
        f"_Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores{gpu}; "
        f"load avg at start {m.get('load_avg_1m_at_start', '?')}; {versions}._\n"
    )
    if data.get("conditions"):
        text += f"_Conditions: {data['conditions']}._\n"
    if data.get("smoke"):
        text += "_Smoke run: tiny sizes, the figures mean nothing._\n"
    return text


def _engine(data: dict[str, Any]) -> str:
    task = data["task"]
    out = [
        f"{task['train_rows']:,} training rows × {task['epochs']} epochs, batch {task['batch']}, "
        f"MLP 30→{'→'.join(map(str, task['hidden']))}→2, device `{data['device']}`, "
        f"{data.get('torch_threads')} torch threads, {data['rounds']} interleaved rounds.\n\n"
    ]
    ratios = data["ratios_vs_neuroflow"]
    rows = []
    for name, c in sorted(
        data["contenders"].items(), key=lambda kv: -kv[1]["median"]["samples_per_s"]
    ):
        med = c["median"]
        ratio = ratios[name]["median"] if name in ratios else 1.0
        rows.append([name, med["samples_per_s"], med["seconds"], med["val_accuracy"] * 100, ratio])
    out.append(
        _table(
            ["contender", "samples/s", "seconds", "val acc %", "neuroflow speed-up"],
            rows,
        )
    )
    ceiling = data["gemm_ceiling"]["used"]
    out.append(
        f"\nGEMM ceiling (this network's forward+backward GEMMs with `torch.mm`, batch "
        f"{ceiling['batch']}): {_f(ceiling['gflops'])} GFLOP/s = {_f(ceiling['samples_per_s'])} "
        f"samples/s. Device rates: "
        + ", ".join(f"{k} {_f(v)}" for k, v in data.get("device_rates", {}).items())
        + ".\n\n"
    )
    goal_rows = []
    for name, g in data["goals"].items():
        if "goal_ratio" in g:
            goal_rows.append([f"≥ {g['goal_ratio']}× {name}", f"{g['ratio']:.2f}×", g["met"]])
        elif "goal_samples_per_s" in g:
            goal_rows.append(
                [f"≥ {g['goal_samples_per_s']:,} samples/s, {name}", g["samples_per_s"], g["met"]]
            )
        elif "goal_fraction" in g:
            goal_rows.append(
                [f"≥ {g['goal_fraction']:.0%} of GEMM ceiling", f"{g['fraction']:.0%}", g["met"]]
            )
        else:
            goal_rows.append(
                ["val accuracy within 0.5 points", f"{g['max_gap_points']:.2f} points", g["met"]]
            )
    out.append(_table(["goal", "measured", "met"], goal_rows))
    tta = data.get("time_to_98", {}).get("defaults")
    if tta:
        run = tta["runs"][0]
        out.append(
            f"\nTime to {run['target']:.0%} validation accuracy with the engine's defaults "
            f"(batch {run['settings']['batch_size']}, {run['settings']['optimizer']} "
            f"lr {run['settings']['lr']}): median **{tta['median_seconds']:.2f} s** "
            f"(epochs: {[r['epoch'] for r in tta['runs']]}).\n"
        )
    out.append(_engine_extras(data))
    return "".join(out)


def _engine_extras(data: dict[str, Any]) -> str:
    """Eager beside CUDA graphs: time to accuracy (MLP, digits CNN) and what was skipped."""
    lines = []
    eager = data.get("time_to_98", {}).get("eager")
    if eager:
        lines.append(f"Eager (cuda_graphs off): median {eager['median_seconds']:.2f} s.")
    digits = data.get("digits_time_to_97")
    if digits:
        times = [
            f"{name} median {digits[name]['median_seconds']:.2f} s "
            f"(epochs: {[r['epoch'] for r in digits[name]['runs']]})"
            for name in ("eager", "cuda_graphs")
            if name in digits
        ]
        lines.append(
            f"Digits CNN to {digits['target']:.0%} validation accuracy: {'; '.join(times)}."
        )
    lines += [f"`{k}` skipped: {v}." for k, v in sorted(data.get("skipped", {}).items())]
    return "".join(f"\n{line}\n" for line in lines)


def _before_after(data: dict[str, Any]) -> str:
    rows = [
        [name, s["samples_per_s"], s["val_accuracy"] * 100] for name, s in data["summary"].items()
    ]
    speedups = ", ".join(
        f"after / {k}: {v['median']:.2f}×" for k, v in data["ratios_after_vs"].items()
    )
    return (
        f"Engine before vs after the training-loop changes (fused Adam, no disabled-autocast "
        f"context per step, per-epoch loss sum), device `{data['device']}`, torch "
        f"{data['torch']}, {data['threads']} threads; `after_unfused` = after with the "
        f"per-parameter Adam.\n\n"
        + _table(["engine", "samples/s", "val acc %"], rows)
        + f"\nWithin-round speed-ups: {speedups}.\n"
    )


_STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "export")


def _stage_order(stage: str) -> int:
    return _STAGES.index(stage) if stage in _STAGES else len(_STAGES)


def _heaviest(imports: dict[str, float], top: int) -> list[tuple[str, float]]:
    return sorted(imports.items(), key=lambda kv: -kv[1])[:top]


def _pipeline(data: dict[str, Any]) -> str:
    out = []
    if "goals" in data:
        rows = [[k, v["value"], v["goal"], v["met"]] for k, v in data["goals"].items()]
        out.append(_table(["measure", "seconds", "goal (s)", "met"], rows))
    if data.get("cold_runs"):
        out.append(
            "\nCold `dvc repro`, each in a fresh copy: "
            + ", ".join(f"{v:.2f}" for v in data["cold_runs"])
            + " s (median above).\n"
        )
    cli = data["cli_help"]
    out.append(
        f"\n`neuroflow --help`: {_f(cli['median_s'])} s (bare interpreter "
        f"{_f(cli['bare_python_s'])} s, imports {_f(cli['import_s'])} s: "
        + ", ".join(f"{k} {v:.2f}" for k, v in _heaviest(cli["heaviest"], 4))
        + ").\n\n"
    )
    if "stages" in data:
        rows = [
            [
                stage,
                s["wall_s"],
                s["startup_s"],
                s["import_s"],
                s["work_s"],
                ", ".join(f"{k} {v:.2f}" for k, v in _heaviest(s["heaviest"], 4)),
            ]
            for stage, s in sorted(data["stages"].items(), key=lambda kv: _stage_order(kv[0]))
        ]
        out.append(
            "Per stage (`python -X importtime neuroflow <stage>` after the cold run):\n\n"
            + _table(
                ["stage", "wall s", "start-up s", "imports s", "work s", "heaviest imports (s)"],
                rows,
            )
        )
    if "mlflow_store" in data:
        out.append(
            "\nMLflow store: "
            + ", ".join(f"{k} {_f(v)} s" for k, v in data["mlflow_store"].items())
            + ".\n"
        )
    return "".join(out)


def _validation(data: dict[str, Any]) -> str:
    rows = []
    for size, entry in data["sizes"].items():
        for name in ("neuroflow", "pandas"):
            e = entry[name]
            rows.append(
                [
                    f"{int(size):,}",
                    name,
                    e["seconds"],
                    e["import_seconds"],
                    e["peak_rss_mb"],
                    e["extra_rss_mb"],
                    entry["ratio_seconds"]["median"] if name == "neuroflow" else "",
                ]
            )
    g = data["goal"]
    return (
        f"{data['features']} float feature columns + target; peak RSS per fresh process, "
        "'extra' = above the peak after building the frame. Seconds exclude the import.\n\n"
        + _table(
            ["rows", "validator", "seconds", "import s", "peak RSS MB", "extra MB", "× pandas"],
            rows,
        )
        + f"\nGoal: within {g['goal_ratio']}× of pandas at {g['rows']:,} rows: "
        f"{g['ratio']:.1f}× ({'met' if g['met'] else 'not met'}).\n"
    )


def _presets(data: dict[str, Any]) -> str:
    by_preset: dict[str, list[dict[str, Any]]] = {}
    for row in data["results"]:
        by_preset.setdefault(row["preset"], []).append(row)
    rows = []
    for name, runs in by_preset.items():
        values = sorted(r["value"] for r in runs)
        failed = [r["seed"] for r in runs if not r["passed"]]
        rows.append(
            [
                name,
                f"{runs[0]['metric']} {runs[0]['bar']}",
                " ".join(str(r["seed"]) for r in runs),
                f"{values[0]:.4f}",
                f"{median_of(values):.4f}",
                f"{values[-1]:.4f}",
                "all" if not failed else f"failed seeds {failed}",
                median_of([r["seconds"] for r in runs]),
            ]
        )
    verdict = "every run reached its bar" if data.get("all_passed") else "NOT every run passed"
    return (
        "Each preset at its real params through ingest → validate → preprocess → train → "
        "evaluate, per seed; the bar is checked on the test metrics. Seconds: wall time of the "
        "five stages in one process, i.e. the time to reach the bar on this machine's CPU.\n\n"
        + _table(["preset", "bar", "seeds", "min", "median", "max", "passed", "median s"], rows)
        + f"\n{verdict}.\n"
    )


def _gan(data: dict[str, Any]) -> str:
    rows = [
        [
            r["seed"],
            f"{r['fid']:.3f}",
            f"{r['fid_real']:.3f}",
            f"{r['fid_ratio']:.2f}",
            r["classes_generated"],
            f"{r['inception_score']:.2f} / {r['inception_score_real']:.2f}",
            f"{r['baseline_fid_ratio']:.2f}",
            f"{r['baseline_inception_score']:.2f}",
            "yes" if r["passed"] else "no",
            r["best_epoch"],
            r["seconds"],
        ]
        for r in data["results"]
    ]
    verdict = "every seed reached the bar" if data.get("all_passed") else "NOT every seed passed"
    noise = "the noise baseline passed on some seed"
    if not data.get("baseline_any_passed"):
        noise = "the noise baseline never did"
    return (
        f"`{data['preset']}` at its real params through ingest → validate → preprocess → train → "
        "evaluate, per seed. A CNN trained on the real training split rates as many generated "
        "samples as the validation split has rows: Fréchet distance (FD) in its feature space to "
        "the test split, against the same for the real validation rows; Inception Score (IS) of "
        "the samples / of real rows. Noise: per-pixel Gaussian noise at the training pixels' mean "
        f"and variance, rated the same way. Bar: {data['bar']}.\n\n"
        + _table(
            [
                "seed",
                "FD",
                "FD real",
                "FD / real",
                "classes",
                "IS / real",
                "noise FD / real",
                "noise IS",
                "bar",
                "best epoch",
                "s",
            ],
            rows,
        )
        + f"\n{verdict}; {noise}.\n"
    )


def _inference(data: dict[str, Any]) -> str:
    big = next(k for k in data if k.startswith("batch") and k != "batch1")
    rows = [
        [name, v["p50_ms"], v["p99_ms"], data[big][name]["rows_per_s"]]
        for name, v in data["batch1"].items()
    ]
    return (
        f"{data['model']}; {data.get('torch_threads')} torch threads.\n\n"
        + _table(["path", "batch-1 p50 ms", "batch-1 p99 ms", f"{big} rows/s"], rows)
        + "\n"
        + ", ".join(f"{k}: {v:.1f}×" for k, v in data["ratios"].items())
        + ".\n"
    )


def _serving(data: dict[str, Any]) -> str:
    """`neuroflow serve` over HTTP beside onnxruntime in-process on the same model."""
    http, local = data["http"], data["in_process"]
    paths = [
        ("HTTP, batch 1", http["batch1"]),
        ("HTTP, batch 1024", http["batch1024"]),
        ("request path without HTTP, batch 1", local["request_path_no_http_batch1"]),
        ("onnxruntime in-process, batch 1", local["onnxruntime_batch1"]),
        ("onnxruntime in-process, batch 1024", local["onnxruntime_batch1024"]),
    ]
    rows = [[name, v["p50_ms"], v["p99_ms"], v.get("rows_per_s", "")] for name, v in paths]
    requests = data["requests"]
    return (
        f"{data['model']}; {requests['batch1']} batch-1 and {requests['batch1024']} "
        f"batch-1024 requests after {requests['warmup']} warm-up, sequential on one "
        f"keep-alive connection. Server start to first answer: {http['server_startup_s']:.2f} s."
        "\n\n" + _table(["path", "p50 ms", "p99 ms", "rows/s"], rows)
    )


def _experiments(data: dict[str, Any]) -> str:
    """Measured options for the engine that were not adopted (and why)."""
    cpu, gpu = data.get("cpu_torch_compile", {}), data.get("gpu_cuda_graph", {})
    nan = float("nan")
    variants = [  # (device, its measurements, the variant measured beside eager, its key)
        ("CPU", cpu, "CPU torch.compile", "compiled_samples_per_s"),
        ("GPU", gpu, "GPU whole step in one CUDA graph", "cuda_graph_samples_per_s"),
    ]
    notes = {
        "CPU": f"compile {cpu.get('compile_seconds', nan):.0f} s",
        "GPU": f"val acc {gpu.get('cuda_graph_val_acc', nan) * 100:.2f} %",
    }
    rows = []
    for device, measured, variant, key in variants:
        if measured:
            eager = median_of(measured.get("eager_fused_samples_per_s"))
            rows.append([f"{device} eager, fused Adam", eager, ""])
            rows.append([variant, median_of(measured.get(key)), notes[device]])
    text = _table(["plain loop variant", "samples/s", "note"], rows)
    if gpu:
        text += (
            f"\nGPU launch cost: {gpu.get('tiny_kernel_us_per_launch', 0):.1f} µs per tiny "
            f"kernel, {gpu.get('mm_512x256x256_us_per_call', 0):.1f} µs per 512×256×256 mm: "
            "at batch 512 the step is launch-bound.\n"
        )
    return text


def median_of(values: Any) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2)


def _scalars(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if isinstance(v, int | float | str | bool)}


def _goals(data: dict[str, Any]) -> str:
    goals = data.get("goals")
    if not isinstance(goals, dict) or not all(isinstance(g, dict) for g in goals.values()):
        return ""
    rows = [[k, g.get("value", ""), g.get("goal", ""), g.get("met", "")] for k, g in goals.items()]
    return "\n" + _table(["goal", "measured", "target", "met"], rows)


def _generic(data: dict[str, Any]) -> str:
    parts = [f"{data['note']}\n\n"] if isinstance(data.get("note"), str) else []
    table = data.get("table")
    if isinstance(table, dict) and "columns" in table and "rows" in table:
        parts.append(_table(list(table["columns"]), list(table["rows"])))
        return "".join(parts) + _goals(data)
    for key, value in data.items():  # lists of records: one table each (scalar fields only)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for row in value for k in _scalars(row)))
            rows = [[_scalars(row).get(c, "") for c in columns] for row in value]
            parts.append(f"{key}:\n\n{_table(columns, rows)}\n")
    parts.append(_goals(data))
    if len([p for p in parts if p]) > (1 if parts and isinstance(data.get("note"), str) else 0):
        return "".join(parts)
    rows = [
        [k, v]
        for k, v in sorted(data.items())
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    scalars = _table(["measure", "value"], rows[:40]) if rows else "_No scalar figures._\n"
    return "".join(parts) + scalars  # the note, if any, above the figures


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "engine": _engine,
    "engine_cpu2_device": _engine,
    "engine_gpu": _engine,
    "engine_before_after_cpu": _before_after,
    "engine_before_after_cuda": _before_after,
    "engine_experiments": _experiments,
    "pipeline": _pipeline,
    "validation": _validation,
    "inference": _inference,
    "presets": _presets,
    "gan": _gan,
    "serving": _serving,
}
TITLES = {
    "engine": "Training engine (this machine, CPU)",
    "engine_cpu2_device": "Training engine (2 pinned cores of an idle machine, CPU)",
    "engine_gpu": "Training engine (GPU)",
    "engine_before_after_cpu": "Engine before/after (CPU)",
    "engine_before_after_cuda": "Engine before/after (GPU)",
    "engine_experiments": "Engine options measured, not adopted",
    "pipeline": "Pipeline overhead",
    "validation": "Validation cost",
    "inference": "Inference",
    "presets": "Presets: quality bars across seeds",
    "gan": "GAN preset: generated digits rated by a trained classifier",
    "threads": "CPU training threads: one, every core, the engine's choice",
    "pipeline_before_after": "Pipeline before/after: a cold run and the iteration loop",
    "serving": "Serving: `neuroflow serve` over HTTP and in-process",
    "stage_costs": "Stage fixed costs: a small suite's validation, a new tracking store",
}


def render(results_dir: Path, skipped: dict[str, str], failed: dict[str, str]) -> str:
    parts = [HEADER]
    order = list(TITLES)
    files = sorted(
        results_dir.glob("*.json"),
        key=lambda p: (order.index(p.stem) if p.stem in TITLES else len(order), p.stem),
    )
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            parts.append(f"\n## {path.stem}\n\n_Unreadable: {exc}_\n")
            continue
        title = TITLES.get(path.stem, path.stem.replace("_", " ").capitalize())
        renderer = RENDERERS.get(path.stem, _generic)
        try:
            body = renderer(data)
        except (KeyError, TypeError, ValueError, StopIteration) as exc:
            body = f"_Could not render ({type(exc).__name__}: {exc}); see {path.name}._\n"
        if "machine" in data:
            machine = _machine(data)
        else:
            machine = f"_Conditions: {data['conditions']}._\n" if data.get("conditions") else ""
        parts.append(f"\n## {title}\n\n{machine}\n{body}")
    if skipped or failed:
        parts.append("\n## Not run\n\n")
        parts += [f"- `{k}` skipped: {v}\n" for k, v in sorted(skipped.items())]
        parts += [f"- `{k}` failed: {v}\n" for k, v in sorted(failed.items())]
    return "".join(parts)
