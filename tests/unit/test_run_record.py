"""Train's run record becomes one MLflow run, once: the record is built without MLflow, and
logging it twice (export run again after a failure) reuses the run instead of duplicating it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from neuroflow import tracking


def test_standard_tag_names_are_mlflows_own() -> None:
    from mlflow.utils import mlflow_tags

    assert tracking.MLFLOW_SOURCE_NAME == mlflow_tags.MLFLOW_SOURCE_NAME
    assert tracking.MLFLOW_SOURCE_TYPE == mlflow_tags.MLFLOW_SOURCE_TYPE
    assert tracking.MLFLOW_USER == mlflow_tags.MLFLOW_USER
    assert tracking.MLFLOW_GIT_COMMIT == mlflow_tags.MLFLOW_GIT_COMMIT
    assert tracking.MLFLOW_RUN_NOTE == mlflow_tags.MLFLOW_RUN_NOTE


def test_building_a_record_does_not_import_mlflow(tmp_path: Path) -> None:
    probe = (
        "import sys; from pathlib import Path; from neuroflow import tracking; "
        "r = tracking.new_record(Path(sys.argv[1]), experiment='e', run_name='n', "
        "params={'a': '1'}, tags={'t': 'v'}); "
        "print(len(r['run_key']), 'mlflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["32", "False"]


def test_a_record_is_logged_as_one_run_and_again_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    note = tmp_path / "spec.json"
    note.write_text("{}")
    record = tracking.new_record(
        tmp_path,
        experiment="records",
        run_name="mlp-classification",
        params={"train.lr": "0.001"},
        tags={"neuroflow.task": "classification"},
        source="dvc.yaml:train",
        note="a note",
    )
    record["metrics"] = [["val_loss", 0.5, 1], ["val_loss", 0.25, 2], ["best_epoch", 2, 0]]
    record["artifacts"] = [["spec.json", "model"]]
    record["end_time"] = record["start_time"] + 1000

    run_id = tracking.log_record(tmp_path, record)
    assert tracking.log_record(tmp_path, record) == run_id  # no second run, no second rows

    mlc = MlflowClient(tracking_uri=uri)
    runs = mlc.search_runs([mlc.get_experiment_by_name("records").experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]
    run = runs[0]
    assert run.info.start_time == record["start_time"]
    assert run.info.run_name == "mlp-classification"
    assert run.data.params == {"train.lr": "0.001"}
    assert run.data.tags["neuroflow.run_key"] == record["run_key"]
    assert run.data.tags["mlflow.source.name"] == "dvc.yaml:train"
    assert run.data.tags["mlflow.note.content"] == "a note"
    history = mlc.get_metric_history(run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.25)]
    assert [a.path for a in mlc.list_artifacts(run_id, "model")] == ["model/spec.json"]
    assert run.info.status == "RUNNING"  # export ends it, after the model

    assert tracking.log_record(tmp_path, record, status="FAILED") == run_id
    assert mlc.get_run(run_id).info.status == "FAILED"
