"""Default params on the default dataset reach the quality bar for several seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroflow.config import Params, Paths, load_params
from neuroflow.stages import evaluate, ingest, preprocess, train

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tracking_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One store for all seeds: creating a fresh MLflow schema costs seconds each time.
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.mark.parametrize("seed", [42, 0, 1, 2024])
def test_default_params_reach_the_bar(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_db: str
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_db)
    base = load_params(REPO / "params.yaml").model_dump(by_alias=True)
    params = Params.model_validate(
        {**base, "seed": seed, "train": {**base["train"], "device": "cpu"}}
    )
    paths = Paths(root=tmp_path)
    for stage in (ingest, preprocess, train):
        stage.run(params, paths)
    metrics = evaluate.run(params, paths)["test"]
    assert metrics["accuracy"] >= 0.95, metrics
    assert metrics["roc_auc"] >= 0.98, metrics
