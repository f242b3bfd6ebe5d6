"""MLflow runs tell their story, read back through the stock `MlflowClient`.

A run is named after its DVC experiment (`dvc exp run -n`), or `<model>-<task>-<short rev>`
outside one; it carries MLflow's standard source/commit/user tags, the train/val/test splits as
dataset inputs whose digests are their DVC hashes, the Prefect flow run that started it, and the
test metrics; the experiment and the registered model are described from the model card.
"""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import clean_env, run

from neuroflow.tracking import PREFECT_RUN_ENV

pytestmark = pytest.mark.slow


def mlflow_client(root: Path) -> Any:
    from mlflow.tracking import MlflowClient

    uri = clean_env(root)["MLFLOW_TRACKING_URI"]
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def head(root: Path) -> str:
    out = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def run_id_of(root: Path) -> str:
    return str(json.loads((root / "artifacts/export/registration.json").read_text())["run_id"])


def lock_md5(root: Path, stage: str, path: str) -> str:
    deps = yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]["deps"]
    return str(next(d["md5"] for d in deps if d["path"] == path))


def test_run_outside_an_experiment_is_named_model_task_revision(pipeline_done: Path) -> None:
    root = pipeline_done
    run = mlflow_client(root).get_run(run_id_of(root))
    rev = head(root)
    assert run.info.run_name == f"mlp-binary-{rev[:7]}"
    assert run.data.tags["mlflow.source.git.commit"] == rev
    assert run.data.tags["mlflow.source.name"] == "dvc.yaml:train"
    assert run.data.tags["mlflow.user"] == getpass.getuser()
    assert not any(tag.startswith("prefect.") for tag in run.data.tags)


def test_experiment_run_tells_its_story(pipeline_done: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(pipeline_done, tmp_path / "project", symlinks=True))
    baseline = head(root)
    flow_run = {
        "prefect.flow_run_id": "0b7c3a52-7f0e-4d55-9a43-2c1d5e6f7a80",
        "prefect.flow_run_name": "brave-otter",
        "prefect.flow_run_url": "http://127.0.0.1:4200/runs/flow-run/0b7c3a52",
    }
    env: dict[str, Any] = {PREFECT_RUN_ENV[tag]: value for tag, value in flow_run.items()}
    run(root, "dvc", "exp", "run", "-n", "story-exp", "-S", "train.lr=0.002", **env)

    mlc = mlflow_client(root)
    run_ = mlc.get_run(run_id_of(root))
    tags = run_.data.tags
    assert run_.info.run_name == "story-exp"
    assert run_.info.status == "FINISHED"
    assert tags["mlflow.source.git.commit"] == baseline
    assert tags["mlflow.source.name"] == "dvc.yaml:train"
    assert tags["mlflow.user"] == getpass.getuser()
    assert {k: tags[k] for k in flow_run} == flow_run
    note = tags["mlflow.note.content"]  # the run's description in the UI
    assert "fresh start from seed 42" in note and "DVC experiment `story-exp`" in note
    assert "Prefect flow run [brave-otter](http://127.0.0.1:4200/runs/flow-run/0b7c3a52)" in note
    assert run_.data.params["train.lr"] == "0.002"
    # The runs list's metric columns: the test metrics are on the run itself.
    assert {"test_accuracy", "test_roc_auc", "best_val_loss"} <= set(run_.data.metrics)

    inputs = {
        next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset
        for d in run_.inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "validation", "testing"}
    for context, stage, split in [
        ("training", "train", "train"),
        ("validation", "train", "val"),
        ("testing", "evaluate", "test"),
    ]:
        path = f"data/processed/{split}.safetensors"
        dataset = inputs[context]
        assert dataset.name == split
        assert dataset.digest == lock_md5(root, stage, path)
        assert json.loads(dataset.source) == {"uri": path}
        assert json.loads(dataset.profile)["num_rows"] > 0

    params = yaml.safe_load((root / "params.yaml").read_text())
    expected = {
        "task": "binary",
        "metric": params["promotion"]["metric"] or "roc_auc",  # the gate's default for binary
        "data_source": tags["neuroflow.source"],
    }
    experiment = mlc.get_experiment_by_name(params["registry"]["experiment"])
    assert experiment.tags["mlflow.note.content"].startswith("# Model card:")
    assert "## Intended use" in experiment.tags["mlflow.note.content"]
    assert {k: experiment.tags[k] for k in expected} == expected
    name = params["registry"]["model_name"]
    model = mlc.get_registered_model(name)
    assert model.description.startswith(f"# Model card: {name}")
    assert "## Parameters" not in model.description  # per-version detail stays on the version
    assert {k: model.tags[k] for k in expected} == expected
    version = mlc.get_model_version_by_alias(name, "challenger")
    assert version.run_id == run_.info.run_id
    assert "## Test metrics" in version.description
