"""The benchmarks keep working: a tiny run of each through the harness, and the result shape.

No timing is asserted; the figures of a smoke run mean nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

# benchmarks/ is a top-level package beside src/, importable from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import run as harness
from benchmarks.common import interleave, within_round_ratios
from benchmarks.report import render

pytestmark = pytest.mark.slow  # GE import, ONNX export, a Lightning fit: ~30-60 s together

OURS = ("engine", "pipeline", "validation", "inference", "threads")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict, dict]:
    out = tmp_path_factory.mktemp("bench")
    # The other modules' smokes run pipelines and servers already covered by e2e tests; CI runs
    # every smoke with `make bench-smoke`.
    results, skipped, failed = harness.run_all(out, smoke=True, only=list(OURS))
    return out, results, skipped, failed


def test_every_benchmark_module_is_discovered() -> None:
    found = {stem.removeprefix("bench_") for stem in harness.discover()}
    assert set(OURS) <= found


def test_smoke_runs_without_failures(smoke: tuple[Path, dict[str, Any], dict, dict]) -> None:
    _, results, skipped, failed = smoke
    assert failed == {}
    assert set(OURS) <= set(results), f"skipped: {skipped}"
    for name, result in results.items():
        assert result["smoke"] is True, name


def test_engine_result_structure(smoke: tuple[Path, dict[str, Any], dict, dict]) -> None:
    out, results, _, _ = smoke
    engine = json.loads((out / "engine.json").read_text())
    assert engine == json.loads(json.dumps(results["engine"], default=str))
    contenders = engine["contenders"]
    assert {"neuroflow", "plain_loop", "tutorial", "sklearn", "lightning"} <= set(contenders)
    for c in contenders.values():
        assert c["median"]["samples_per_s"] > 0
        assert 0.0 <= c["median"]["val_accuracy"] <= 1.0
        assert len(c["rounds"]) == engine["rounds"]
    assert set(engine["ratios_vs_neuroflow"]) == set(contenders) - {"neuroflow"}
    assert {"sklearn", "lightning", "tutorial", "gemm_ceiling"} <= set(engine["goals"])
    assert engine["gemm_ceiling"]["used"]["samples_per_s"] > 0
    assert engine["machine"]["versions"]["torch"]
    assert "seconds" in engine["time_to_98"]["defaults"]["runs"][0]


def test_other_result_structures(smoke: tuple[Path, dict[str, Any], dict, dict]) -> None:
    _, results, _, _ = smoke
    cli = results["pipeline"]["cli_help"]
    assert cli["median_s"] > 0 and cli["import_s"] > 0 and cli["heaviest"]
    (size,) = results["validation"]["sizes"].values()
    # Both validators apply the same rules, so they find the same failing expectations.
    assert size["neuroflow"]["failures"] == size["pandas"]["failures"] > 0
    assert size["neuroflow"]["peak_rss_mb"] > 0
    inference = results["inference"]
    assert set(inference["batch1"]) == {"onnx", "torch_eager", "torch_network_only"}
    assert all(v["p99_ms"] >= v["p50_ms"] > 0 for v in inference["batch1"].values())


def test_results_table_renders_every_result(
    smoke: tuple[Path, dict[str, Any], dict, dict],
) -> None:
    out, _, skipped, failed = smoke
    text = render(out, skipped, failed)
    for title in ("Training engine", "Pipeline overhead", "Validation cost", "Inference"):
        assert f"## {title}" in text
    assert "Could not render" not in text
    assert "neuroflow speed-up" in text


def test_import_failure_is_skipped_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "discover", lambda: ["bench_does_not_exist"])
    results, skipped, failed = harness.run_all(tmp_path, smoke=True)
    assert results == {} and failed == {}
    assert "import failed" in skipped["does_not_exist"]


def test_ratios_are_taken_within_each_round() -> None:
    speeds = iter([10.0, 2.0, 30.0, 3.0])  # round 1: ours 10, theirs 2; round 2: 30 vs 3
    runs = interleave(
        {"ours": lambda: {"v": next(speeds)}, "theirs": lambda: {"v": next(speeds)}}, rounds=2
    )
    # Round 2 runs "theirs" first (rotating order), so it gets 30 and "ours" gets 3.
    assert [r["v"] for r in runs["ours"]] == [10.0, 3.0]
    ratios = within_round_ratios(runs, "v", "ours")["theirs"]
    assert ratios["per_round"] == [5.0, 0.1]
