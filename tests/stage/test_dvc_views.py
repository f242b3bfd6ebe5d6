"""What a DVC user sees: metrics, plots, experiment comparison, stage logs, the pyfunc output.

A copy of the session's shared shrunken `dvc repro` (its log as printed), committed, runs two
experiments; every DVC view is captured right then, then training runs again verbose (through
DVC) and on a terminal (a pseudo-terminal). The tests only read what was captured, so their order
does not matter.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import FAST_TRAIN, REPO, SharedRun, clean_env, combined, run

from neuroflow.training.engine import PLAIN_LINES_PER_RUN

pytestmark = pytest.mark.slow

STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "export")
EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+) loss=")
TERMINAL_COLUMNS = 120


def in_terminal(root: Path, *args: str, timeout: float = 300) -> str:
    """Run on a pseudo-terminal (stdout and stderr are ttys), return what it drew."""
    import pty

    master, slave = pty.openpty()
    env = clean_env(root, TERM="xterm-256color", COLUMNS=str(TERMINAL_COLUMNS))
    proc = subprocess.Popen(
        list(args), cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-4000:]
    return b"".join(chunks).decode(errors="replace")


def stage_sections(log: str) -> dict[str, str]:
    parts = re.split(r"Running stage '([\w-]+)':", log)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.fixture(scope="module")
def views(shared_run: SharedRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # The session's shared cold `dvc repro` (shrunken params) is this project's first run.
    root = Path(shutil.copytree(shared_run.root, tmp_path_factory.mktemp("views") / "project"))
    out: dict[str, Any] = {"root": root, "repro": shared_run.log}
    summary = json.loads((root / "artifacts/train_summary.json").read_text())
    out["epochs_run"] = int(summary["epochs_run"])  # the same params train as long every time
    out["summary"] = summary
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "fast params and a pipeline run")
    out["status"] = run(root, "dvc", "status").stdout
    out["tracked"] = run(root, "git", "ls-files", "artifacts/plots").stdout.split()
    out["metrics"] = json.loads(run(root, "dvc", "metrics", "show", "--json").stdout)
    out["metrics_table"] = run(root, "dvc", "metrics", "show").stdout
    out["plots"] = json.loads(run(root, "dvc", "plots", "show", "--json").stdout)
    out["plots_show"] = run(root, "dvc", "plots", "show", "-o", str(root / "dvc_plots"))
    for flags in (["-S", "train.lr=0.003"], ["-S", "train.lr=0.0005", "-S", "model.dropout=0.2"]):
        run(root, "dvc", "exp", "run", *flags, timeout=600)
    # `make compare` as a user runs it (the copy has no .venv: tools come from PATH).
    out["compare"] = run(
        root, "make", "-s", "-o", ".venv/.installed", "compare", COLUMNS=str(TERMINAL_COLUMNS)
    ).stdout
    out["compare_80"] = run(root, "neuroflow", "compare", COLUMNS="80").stdout
    out["only_changed"] = run(
        root, "dvc", "exp", "show", "--only-changed", "--no-pager", COLUMNS=str(TERMINAL_COLUMNS)
    ).stdout
    out["pyfunc"] = run(root, "python", "-c", PYFUNC_PROBE).stdout
    out["verbose"] = combined(root, "dvc", "repro", "-f", "-s", "train", NEUROFLOW_VERBOSE="1")
    out["terminal"] = in_terminal(root, "neuroflow", "train")
    return out


def test_repro_log_is_one_summary_per_stage_and_few_epoch_lines(views: dict[str, Any]) -> None:
    sections = stage_sections(views["repro"])
    assert set(STAGES) <= sections.keys(), views["repro"][-3000:]
    for stage in STAGES:
        ours = [line for line in sections[stage].splitlines() if " neuroflow." in line]
        assert ours and f": {stage}: " in ours[-1], (stage, ours)  # ends with its summary
    epochs = [EPOCH_LINE.search(line) for line in sections["train"].splitlines()]
    reported = [int(m.group(1)) for m in epochs if m]
    # Not a line per epoch off a terminal: every few epochs, and where training ended.
    assert 0 < len(reported) <= PLAIN_LINES_PER_RUN + 1
    assert len(reported) < views["epochs_run"] and reported[-1] == views["epochs_run"]


def test_verbose_brings_back_a_line_per_epoch(views: dict[str, Any]) -> None:
    train = stage_sections(views["verbose"])["train"]
    reported = [int(m.group(1)) for m in map(EPOCH_LINE.search, train.splitlines()) if m]
    assert reported == list(range(1, views["epochs_run"] + 1)), train[-3000:]


def test_terminal_shows_a_rich_bar_not_epoch_lines(views: dict[str, Any]) -> None:
    drawn = views["terminal"]
    assert "━" in drawn and f"{views['epochs_run']}/{FAST_TRAIN['epochs']}" in drawn, drawn
    assert not EPOCH_LINE.search(drawn)  # the bar replaces the plain lines
    assert "train: best epoch" in drawn  # and the stage still ends with its summary


def test_train_summary_says_how_the_steps_ran(views: dict[str, Any]) -> None:
    graphs = views["summary"]["cuda_graphs"]
    assert graphs["mode"] == "auto"
    assert graphs["reason"].startswith("training eagerly: "), graphs  # this machine has no GPU


def test_dvc_metrics_hold_test_quality_only(views: dict[str, Any]) -> None:
    (workspace,) = views["metrics"].values()  # keyed by revision: the workspace's is ""
    files = workspace["data"]
    assert set(files) == {"artifacts/metrics.json"}, files  # not train_summary, not history
    test = files["artifacts/metrics.json"]["data"]["test"]
    assert {"accuracy", "roc_auc", "log_loss"} <= test.keys()
    for noise in ("samples_per_second", "threads", "seconds", "train_loss", "epochs_run"):
        assert noise not in views["metrics_table"]


def test_dvc_plots_are_the_ones_that_fit_a_classifier(views: dict[str, Any]) -> None:
    shown = views["plots"]
    assert "errors" not in shown or not shown["errors"], shown.get("errors")
    plot_files = {Path(name).relative_to("artifacts/plots").as_posix() for name in shown["data"]}
    assert plot_files == {
        "history.json",
        "test/confusion/confusion.json",
        "test/roc/roc.json",
        "test/pr/pr.json",
        "test/calibration/calibration.json",
    }
    assert "failed" not in views["plots_show"].stderr.lower()  # no empty kind reported
    # Git keeps the empty kinds (the placeholder), DVC ignores it: nothing looks changed.
    assert "artifacts/plots/test/residuals/.gitkeep" in views["tracked"]
    assert "up to date" in views["status"], views["status"]


def test_compare_shows_changed_params_and_test_metrics_in_120_columns(
    views: dict[str, Any],
) -> None:
    table = views["compare"].splitlines()
    assert max(map(len, table)) <= TERMINAL_COLUMNS, views["compare"]
    header = table[0].split()
    assert header[:3] == ["experiment", "model.dropout", "train.lr"], header
    assert {"accuracy", "f1_macro", "roc_auc", "log_loss"} <= set(header)
    assert len(table) == 4  # the baseline and two experiments
    assert {"0.003", "0.0005"} <= {row.split()[2] for row in table[1:]}
    for noise in ("run_key", "per_class", "seed", "artifacts/"):
        assert noise not in views["compare"]
    narrow = views["compare_80"].splitlines()  # transposed when rows would not fit
    assert max(map(len, narrow)) <= 80 and narrow[1].startswith("model.dropout"), narrow
    # What it replaces: DVC's own table squeezed into 120 columns hides every test metric.
    assert "…" in views["only_changed"] and "test.accuracy" not in views["only_changed"]


PYFUNC_PROBE = """
import json, mlflow, pandas as pd
name = json.load(open("artifacts/export/registration.json"))["model_name"]
model = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
rows = pd.read_parquet("data/raw/test.parquet").drop(columns=["target"]).head(3)
out = model.predict(rows)
df = pd.DataFrame(out["probabilities"]).add_prefix("p_").assign(label=out["label"])
print(json.dumps({"keys": sorted(out), "label": list(out["label"].shape),
                  "probabilities": list(out["probabilities"].shape), "columns": list(df.columns)}))
"""


def test_pyfunc_output_is_what_the_readme_says(views: dict[str, Any]) -> None:
    seen = json.loads(views["pyfunc"].strip().splitlines()[-1])
    assert seen["keys"] == ["label", "probabilities"]
    assert seen["label"] == [3] and seen["probabilities"] == [3, 2]
    assert seen["columns"] == ["p_0", "p_1", "label"]
    readme = (REPO / "README.md").read_text()
    assert (
        'pd.DataFrame(out["probabilities"]).add_prefix("p_").assign(label=out["label"])' in readme
    )
