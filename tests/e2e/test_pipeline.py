"""`dvc repro` of the real pipeline in a fresh copy of the project (shrunken epochs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
from tests.conftest import clean_env, run

pytestmark = pytest.mark.slow


def mlflow_client(root: Path):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    uri = clean_env(root)["MLFLOW_TRACKING_URI"]
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_outputs_metrics_and_plots(pipeline_done: Path) -> None:
    root = pipeline_done
    metrics = json.loads((root / "artifacts/metrics.json").read_text())
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "log_loss"):
        assert 0 <= metrics["test"][key] <= (1 if key != "log_loss" else 10)
    assert set(metrics["per_class"]) == {"0", "1"}
    assert len(metrics["run_key"]) == 32
    for rel in (
        "data/raw/train.parquet",
        "data/raw/schema.json",
        "data/validated/summary.json",
        "reports/data_docs/index.html",
        "data/processed/preprocessor.json",
        "artifacts/model/model.safetensors",
        "artifacts/model/model_spec.json",
        "artifacts/plots/history.json",
        "artifacts/plots/test/confusion/confusion.json",
        "artifacts/plots/test/roc/roc.json",
        "artifacts/export/model.onnx",
        "artifacts/export/MODEL_CARD.md",
        "artifacts/checkpoints/last.safetensors",
    ):
        assert (root / rel).is_file(), rel
    onnx.checker.check_model(str(root / "artifacts/export/model.onnx"), full_check=True)
    card = (root / "artifacts/export/MODEL_CARD.md").read_text()
    assert "sha256" in card and "Intended use" in card and "Limits" in card
    schema = json.loads((root / "data/raw/schema.json").read_text())
    assert schema["rows"] == {"train": 369, "val": 86, "test": 114}


def test_mlflow_run_carries_lineage_params_and_history(pipeline_done: Path) -> None:
    root = pipeline_done
    run_id = json.loads((root / "artifacts/export/registration.json").read_text())["run_id"]
    mlc = mlflow_client(root)
    data = mlc.get_run(run_id).data
    # The run is the one train recorded (export logged it): DVC's metrics carry its key.
    run_key = json.loads((root / "artifacts/metrics.json").read_text())["run_key"]
    assert data.tags["neuroflow.run_key"] == run_key
    assert data.tags["git.revision"] != "unknown"
    assert any(k.startswith("dvc.ingest.data/raw") for k in data.tags)
    for key in ("env.torch", "env.device", "env.cuda", "env.cudnn"):
        assert key in data.tags
    assert data.params["train.lr"] == "0.001" and data.params["model.type"] == "mlp"
    assert "test_accuracy" in data.metrics and "test_roc_auc" in data.metrics
    history = mlc.get_metric_history(run_id, "val_loss")
    epochs = json.loads((root / "artifacts/plots/history.json").read_text())
    assert [m.step for m in history] == [e["epoch"] for e in epochs]
    assert mlc.get_run(run_id).info.status == "FINISHED"
    artifacts = {a.path for a in mlc.list_artifacts(run_id, "plots")}
    assert {"plots/confusion_matrix.png", "plots/roc.png", "plots/history.png"} <= artifacts


def test_registered_version_is_challenger_and_points_to_its_run(pipeline_done: Path) -> None:
    root = pipeline_done
    reg = json.loads((root / "artifacts/export/registration.json").read_text())
    mlc = mlflow_client(root)
    version = mlc.get_model_version_by_alias(reg["model_name"], "challenger")
    assert str(version.version) == reg["version"]
    assert version.run_id == reg["run_id"]
    assert version.tags["run_id"] == reg["run_id"]
    assert reg["parity_max_abs_diff"] <= 1e-5


def test_registered_model_scores_raw_rows_through_pyfunc(pipeline_done: Path) -> None:
    import mlflow
    import numpy as np
    import pandas as pd

    root = pipeline_done
    reg = json.loads((root / "artifacts/export/registration.json").read_text())
    uri = clean_env(root)["MLFLOW_TRACKING_URI"]
    # Both process-wide: an earlier in-process test on this worker may have set another registry.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{reg['model_name']}@challenger")
    raw = pd.read_parquet(root / "data/raw/test.parquet").drop(columns=["target"])
    out = model.predict(raw)
    assert out["probabilities"].shape == (len(raw), 2)
    assert np.allclose(out["probabilities"].sum(axis=1), 1, atol=1e-5)


def test_second_repro_is_a_noop(pipeline_done: Path) -> None:
    proc = run(pipeline_done, "dvc", "repro")
    assert "Running stage" not in proc.stdout
    status = run(pipeline_done, "dvc", "status")
    assert "up to date" in status.stdout


def test_metrics_plots_and_experiments_commands(pipeline_done: Path) -> None:
    shown = run(pipeline_done, "dvc", "metrics", "show", "--json")
    assert "accuracy" in shown.stdout
    run(pipeline_done, "dvc", "metrics", "diff")
    plots = run(pipeline_done, "dvc", "plots", "show", "--json")
    assert "confusion" in plots.stdout.lower()
    run(pipeline_done, "dvc", "exp", "show", "--no-pager")


def test_exp_run_with_new_train_params_reruns_only_training_stages(
    pipeline_done: Path, tmp_path: Path
) -> None:
    """Also the streamed data path through the real stage: rows read from disk in chunks."""
    root = tmp_path / "copy"
    shutil.copytree(pipeline_done, root, symlinks=True)
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "baseline")
    proc = run(
        root,
        "dvc",
        "exp",
        "run",
        *("-S", "train.lr=0.003", "-S", "train.streaming=always"),
        *("-S", "train.stream_chunk_rows=64"),
    )
    ran = {line.split("'")[1] for line in proc.stdout.splitlines() if "Running stage" in line}
    # check re-validates the edited params.yaml first; of the pipeline, training onwards re-runs
    assert ran == {"check", "train", "evaluate", "export"}, proc.stdout
    summary = json.loads((root / "artifacts/train_summary.json").read_text())
    assert summary["training_data"] == "streamed"
    metrics = json.loads((root / "artifacts/metrics.json").read_text())["test"]
    assert metrics["accuracy"] > 0.9  # a few streamed epochs still learn the task
    shown = run(root, "dvc", "exp", "show", "--json")
    assert "0.003" in shown.stdout
    reg = json.loads((root / "artifacts/export/registration.json").read_text())
    assert int(reg["version"]) >= 2  # a new version, now the challenger
