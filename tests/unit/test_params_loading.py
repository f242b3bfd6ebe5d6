"""params.yaml is parsed, overridden and validated in one place, and its errors read as keys."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from neuroflow import config
from neuroflow.config import ParamsError, load_params

REPO = Path(__file__).resolve().parents[2]


def _message(overrides: dict[str, Any]) -> str:
    with pytest.raises(ParamsError) as info:
        load_params(REPO / "params.yaml", overrides)
    return str(info.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"train.lr_": 0.1}, "unknown key 'train.lr_' (did you mean 'train.lr'?)"),
        ({"trian": {"lr": 0.1}}, "unknown key 'trian' (did you mean 'train'?)"),
        ({"train.lr": "fast"}, "train.lr: got 'fast'; input should be a valid number"),
        ({"train.lr": -1}, "train.lr: got -1; input should be greater than 0"),
        ({"train.optimizer": "adamm"}, "train.optimizer: got 'adamm'; allowed: 'adam', 'adamw'"),
        ({"validate.drift.bins": 1}, "validate.drift.bins: got 1"),
        ({"promotion.thresholds.regression.r2": "x"}, "promotion.thresholds.regression.r2"),
        ({"model.type": "autoencoder"}, "params: model.type=autoencoder is for task=anomaly"),
    ],
)
def test_an_invalid_param_names_its_key_what_was_given_and_what_is_allowed(
    overrides: dict[str, Any], expected: str
) -> None:
    message = _message(overrides)
    assert expected in message
    assert "pydantic" not in message and "For further information" not in message


def test_overrides_merge_dotted_and_nested_keys_and_create_sections() -> None:
    base = {"train": {"lr": 0.1, "epochs": 3}, "data": {"drop": ["a"]}}
    merged = config.merge_overrides(base, {"train.lr": 0.2, "data": {"drop": []}, "cv.folds": 3})
    assert merged == {"train": {"lr": 0.2, "epochs": 3}, "data": {"drop": []}, "cv": {"folds": 3}}
    assert base["train"]["lr"] == 0.1  # the base is not modified


def test_every_caller_loads_params_through_load_params(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI context, presets, the Prefect override check and tuning all go through it."""
    calls: list[Any] = []
    real = config.load_params

    def spy(*args: Any, **kwargs: Any) -> config.Params:
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(config, "load_params", spy)
    shutil.copy2(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)

    from pipelines import dag

    from neuroflow import commands, presets

    callers = {
        "cli": lambda: commands.context(tmp_path / "params.yaml"),
        "presets": lambda: presets.resolve(tmp_path, {"train": {"lr": 0.01}}, "preset"),
        "prefect": lambda: dag.check_overrides(tmp_path, {"train.lr": 0.01}),
    }
    for name, call in callers.items():
        before = len(calls)
        call()
        assert len(calls) == before + 1, f"{name} did not load params through load_params"
    # tune's trials apply their values through the same validation
    trial = config.with_overrides(real(tmp_path / "params.yaml"), {"train.lr": 0.02}, "tune")
    assert trial.train.lr == 0.02
    with pytest.raises(ParamsError, match=r"tune with overrides: invalid params\n  - train.lr"):
        config.with_overrides(trial, {"train.lr": -1}, "tune")
    # A preset's bad value is reported by the same explainer, under the preset's name.
    with pytest.raises(
        presets.PresetError, match=r"(?s)preset: the preset .*\n  - unknown key 'train.lr_'"
    ):
        presets.resolve(tmp_path, {"train": {"lr_": 0.01}}, "preset")


def test_the_committed_params_file_lists_every_section() -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(raw) == {info.alias or name for name, info in config.Params.model_fields.items()}
