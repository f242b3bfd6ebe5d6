from pathlib import Path

import pytest

from neuroflow.config import Params, ParamsError, Paths, load_params

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_load_and_match_defaults_for_the_task() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.task == "binary"
    assert params.data.source == "sklearn" and params.data.name == "breast_cancer"
    assert params.validate_.suite == "data/suites/breast_cancer.json"
    assert (REPO / params.validate_.suite).is_file()


def test_typo_in_params_is_refused_with_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("train:\n  lrr: 0.1\n")
    with pytest.raises(ParamsError) as info:
        load_params(bad)
    assert str(bad) in str(info.value) and "lrr" in str(info.value)


def test_invalid_value_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("train:\n  optimizer: adagrad\n")
    with pytest.raises(ParamsError, match="optimizer"):
        load_params(bad)


def test_file_sources_need_a_path() -> None:
    with pytest.raises(ValueError, match=r"data\.path is required"):
        Params.model_validate({"data": {"source": "csv"}})


def test_flat_lists_every_resolved_param() -> None:
    flat = Params().flat()
    assert flat["train.lr"] == "0.001"
    assert flat["validate.suite"].endswith(".json")
    assert "model.hidden" in flat and "promotion.thresholds.binary.accuracy" in flat


def test_paths_are_rooted_and_distinct(tmp_path: Path) -> None:
    paths = Paths(root=tmp_path)
    files = [
        paths.raw_split("train"),
        paths.schema,
        paths.validation_summary,
        paths.preprocessor,
        paths.weights,
        paths.model_spec,
        paths.history,
        paths.run_info,
        paths.metrics,
        paths.onnx,
        paths.model_card,
        paths.registration,
        paths.train_summary,
    ]
    assert len(set(files)) == len(files)
    assert all(tmp_path in f.parents for f in files)


def test_runtime_settings_are_read_but_no_stage_depends_on_them() -> None:
    # Changing how a stage runs (checkpoint cadence) must not re-run it under DVC.
    import yaml

    params = load_params(REPO / "params.yaml")
    assert params.runtime.checkpoint_every_s > 0
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    listed = [str(key) for stage in stages.values() for key in stage.get("params", [])]
    assert listed and not [key for key in listed if key.split(".")[0] == "runtime"]
    with pytest.raises(ValueError, match="checkpoint_every_s"):
        Params.model_validate({"train": {"checkpoint_every_s": 1.0}})
