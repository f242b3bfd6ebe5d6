"""The flow plumbing without Prefect: DVC's stage order, overrides, streaming, the checkout lock."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path

import pytest
import yaml
from pipelines import dag
from tests.conftest import REPO, copy_project

from neuroflow.config import ParamsError


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("dag") / "project")


def test_stage_order_is_dvc_yamls_dag(checkout: Path) -> None:
    declared = list(yaml.safe_load((checkout / "dvc.yaml").read_text())["stages"])
    order = dag.stage_order(checkout)
    assert sorted(order) == sorted(declared)
    # Every stage comes after the stages producing its deps (DVC's graph, not a copy of it).
    assert order.index("ingest") < order.index("validate") < order.index("preprocess")
    assert order.index("train") < order.index("evaluate") < order.index("export")


def test_repro_command_runs_one_stage_through_dvc() -> None:
    assert dag.repro_command("train") == ["dvc", "repro", "--single-item", "train"]
    assert dag.repro_command("train", force=True)[-1] == "--force"


def test_output_is_handed_over_line_by_line_while_the_command_runs(tmp_path: Path) -> None:
    # The child prints a line, then waits for a file that only the line handler creates:
    # it can finish in time only if the first line is delivered before it exits.
    sentinel = tmp_path / "seen"
    child = (
        "import pathlib, sys, time\n"
        "print('first', flush=True)\n"
        f"p = pathlib.Path({str(sentinel)!r})\n"
        "deadline = time.monotonic() + 20\n"
        "while not p.exists() and time.monotonic() < deadline: time.sleep(0.05)\n"
        "print('second' if p.exists() else 'never saw the handler', flush=True)\n"
        "sys.exit(3)\n"
    )
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "first":
            sentinel.touch()

    result = dag.stream([sys.executable, "-c", child], tmp_path, on_line)
    assert lines == ["first", "second"]
    assert result.returncode == 3
    assert result.tail == lines


def test_stage_commands_share_the_shells_warm_server_under_a_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prefect's runner puts a deployment's working folder on PYTHONPATH for the flow run: the
    commands DVC runs from it leave that out (and keep the rest), so their stages go to the
    warm server that a `dvc repro` typed in the checkout uses, not to a second one."""
    from neuroflow.warm import registry

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    shell = dag.venv_env()
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{tmp_path / 'sub' / '..'}")
    deployed = dag.venv_env()
    assert "PYTHONPATH" not in deployed
    assert registry.server_key(deployed) == registry.server_key(shell)
    monkeypatch.setenv("PYTHONPATH", f"/opt/own{os.pathsep}{tmp_path}")
    assert dag.venv_env()["PYTHONPATH"] == "/opt/own"  # the user's own entries stay


def test_overrides_go_through_dvcs_set_param_and_keep_the_file(tmp_path: Path) -> None:
    shutil.copy2(REPO / "params.yaml", tmp_path / "params.yaml")
    specs = dag.apply_overrides(
        tmp_path, {"train.lr": 0.0003, "model.hidden": [8, 4], "train.optimizer": "sgd"}
    )
    assert specs == ["train.lr=0.0003", "model.hidden=[8, 4]", 'train.optimizer="sgd"']
    text = (tmp_path / "params.yaml").read_text()
    params = yaml.safe_load(text)
    assert params["train"]["lr"] == 0.0003
    assert params["model"]["hidden"] == [8, 4]
    assert params["train"]["optimizer"] == "sgd"
    assert "# Pipeline parameters" in text  # comments and layout survive


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [({"train.lr": -1}, "train.lr"), ({"train.nope": 1}, "nope"), ({"nosuch.lr": 1}, "nosuch")],
)
def test_bad_overrides_fail_before_anything_runs(
    tmp_path: Path, overrides: dict[str, dag.ParamValue], needle: str
) -> None:
    shutil.copy2(REPO / "params.yaml", tmp_path / "params.yaml")
    before = (tmp_path / "params.yaml").read_text()
    with pytest.raises(ParamsError, match=needle):
        dag.apply_overrides(tmp_path, overrides)
    assert (tmp_path / "params.yaml").read_text() == before


@pytest.mark.parametrize(
    ("output", "transient"),
    [
        ("ERROR: Unable to acquire lock. Most likely another DVC process is running", True),
        ("MLflow at http://127.0.0.1:5000 failed: ... Connection refused", True),
        ("validate failed for data/raw: split 'train', column 'x': expect_...", False),
        ("ERROR: failed to reproduce 'train': exited 1", False),
    ],
)
def test_only_outside_faults_count_as_transient(output: str, transient: bool) -> None:
    result = dag.CommandResult(1, [output])
    error = dag.stage_error("train", result, Path("/nonexistent"))
    assert isinstance(error, dag.TransientStageError) is transient


def test_a_validation_failure_carries_the_stages_message() -> None:
    line = "18:00:01 ERROR neuroflow: validate failed for data/raw: split 'val', column 'a': e()"
    error = dag.stage_error("validate", dag.CommandResult(1, [line]), Path("/nonexistent"))
    assert isinstance(error, dag.PipelineValidationError)
    assert str(error) == "validate failed for data/raw: split 'val', column 'a': e()"


def test_checkout_lock_refuses_a_second_holder_then_lets_a_waiter_in(tmp_path: Path) -> None:
    with dag.workspace_lock(tmp_path, owner="flow run A") as path:
        assert path == tmp_path / ".dvc" / "tmp" / dag.LOCK_NAME
        with (
            pytest.raises(dag.WorkspaceBusyError, match="flow run A"),
            dag.workspace_lock(tmp_path, owner="flow run B"),
        ):
            pass

    release = threading.Event()
    held = threading.Event()

    def first() -> None:
        with dag.workspace_lock(tmp_path, owner="flow run A"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(10)
    threading.Timer(1.0, release.set).start()
    with dag.workspace_lock(tmp_path, wait_s=30, owner="flow run B"):  # waits for A
        assert "flow run B" in dag.lock_path(tmp_path).read_text()
    thread.join(10)


def test_a_fresh_checkout_plans_every_stage_and_force_does_too(checkout: Path) -> None:
    plan = dag.plan(checkout)  # no dvc.lock yet: nothing has run
    assert plan.order == dag.stage_order(checkout)
    assert plan.stale == set(plan.order) == dag.plan(checkout, force=True).stale


@pytest.mark.slow
def test_a_changed_dep_plans_its_stage_and_everything_downstream(
    pipeline_done: Path, tmp_path: Path
) -> None:
    root = Path(shutil.copytree(pipeline_done, tmp_path / "project", symlinks=True))
    assert dag.plan(root).stale == set()  # as `dvc repro` left it: every stage up to date
    with (root / "src" / "neuroflow" / "stages" / "train.py").open("a") as source:
        source.write("\n# edited\n")  # a dep of train only
    plan = dag.plan(root)
    assert (
        plan.stale
        == set(plan.order[plan.order.index("train") :])
        == {"train", "evaluate", "export"}
    )


def test_metrics_rows_put_the_challenger_beside_the_champion() -> None:
    from pipelines.results import metrics_rows

    rows = metrics_rows(
        {"accuracy": 0.95, "log_loss": 0.12}, {"accuracy": 0.93, "log_loss": 0.10}, ("4", "3")
    )
    assert rows == [
        {
            "metric": "accuracy",
            "challenger v4": "0.9500",
            "champion v3": "0.9300",
            "difference": "+0.0200",
            "better": "challenger",
        },
        {
            "metric": "log_loss",
            "challenger v4": "0.1200",
            "champion v3": "0.1000",
            "difference": "+0.0200",
            "better": "champion",  # lower is better for a loss
        },
    ]
    first = metrics_rows({"accuracy": 0.95}, {}, ("1", None))
    assert first == [
        {
            "metric": "accuracy",
            "challenger v1": "0.9500",
            "champion (none)": "",
            "difference": "",
            "better": "",
        }
    ]


def test_mlflow_links_point_at_the_tracking_server_or_the_local_ui(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipelines import results

    monkeypatch.delenv(results.MLFLOW_UI_ENV, raising=False)
    assert results.mlflow_ui_base("http://mlflow.internal:5000/") == "http://mlflow.internal:5000"
    assert results.mlflow_ui_base("sqlite:///mlflow.db") == results.DEFAULT_MLFLOW_UI
    monkeypatch.setenv(results.MLFLOW_UI_ENV, "http://127.0.0.1:5123")
    base = results.mlflow_ui_base("sqlite:///mlflow.db")
    assert results.run_url(base, "1", "abc") == "http://127.0.0.1:5123/#/experiments/1/runs/abc"
    assert results.version_url(base, "my model", "2").endswith("/#/models/my%20model/versions/2")
