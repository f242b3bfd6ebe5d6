"""`neuroflow train --nproc 2`: two gloo ranks on CPU match the single-process run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.conftest import run

pytestmark = pytest.mark.slow

# Test accuracy of the DDP run vs one process on the same data and params: the ranks see the
# same rows in a different order, so the curves differ slightly (2 of the 114 test rows).
ACCURACY_TOLERANCE = 0.02


def test_two_gloo_ranks_train_like_one_process(pipeline_done: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    # The single-process run: the session's shared shrunken pipeline, the same params.
    project = Path(shutil.copytree(pipeline_done, tmp_path / "project", symlinks=True))
    metrics = project / "artifacts" / "metrics.json"
    single = json.loads(metrics.read_text())["test"]["accuracy"]

    proc = run(project, "neuroflow", "train", "--nproc", "2", timeout=400)
    for rank in (0, 1):
        assert f"rank {rank}/2 on cpu, 184 training rows, batch 16 per rank" in proc.stderr
    summary = json.loads((project / "artifacts" / "train_summary.json").read_text())
    assert (summary["world_size"], summary["backend"]) == (2, "gloo")
    assert summary["epochs_run"] == 12

    # Rank 0 alone recorded the run; export logs it: one new MLflow run (not two), tagged with
    # the world size.
    run(project, "neuroflow", "evaluate")
    run(project, "neuroflow", "export")
    client = MlflowClient(
        tracking_uri=f"sqlite:///{project / 'mlflow.db'}",
        registry_uri=f"sqlite:///{project / 'mlflow.db'}",
    )
    runs = client.search_runs(
        [client.get_experiment_by_name("neuroflow").experiment_id], order_by=["start_time ASC"]
    )
    assert len(runs) == 2
    assert "train.world_size" not in runs[0].data.tags
    assert runs[1].data.tags["train.world_size"] == "2"
    registration = json.loads((project / "artifacts" / "export" / "registration.json").read_text())
    assert registration["run_id"] == runs[1].info.run_id
    run_key = json.loads((project / "artifacts" / "run.json").read_text())["run_key"]
    assert runs[1].data.tags["neuroflow.run_key"] == run_key

    ddp = json.loads(metrics.read_text())["test"]["accuracy"]
    assert abs(ddp - single) <= ACCURACY_TOLERANCE, (single, ddp)
    assert ddp >= 0.9
