"""The exported ONNX graph: raw columns in, the PyTorch path's predictions out (≤ 1e-5)."""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
import torch

from neuroflow.export.onnx_graph import (
    build_onnx_model,
    mlflow_signature,
    onnx_feeds,
    parity_max_abs_diff,
    run_onnx,
    save_onnx,
)
from neuroflow.export.runtime import InputError
from neuroflow.features.transform import FittedPreprocessor, PreprocessOptions, fit_preprocessor
from neuroflow.models.factory import InferenceHead
from neuroflow.models.mlp import MLP
from neuroflow.models.spec import ModelSpec

TOLERANCE = 1e-5
NUMERIC = ["mean radius", "texture", "area", "smoothness"]
COLORS = ["red", "green", "blue", "black"]


@dataclass(frozen=True)
class Case:
    task: str  # "binary" | "multiclass" | "regression"
    classes: list[Any] = field(default_factory=list)
    pca: int = 0
    select: str = "none"
    k: int = 20
    numeric: list[str] = field(default_factory=lambda: list(NUMERIC))
    categorical: list[str] = field(default_factory=lambda: ["color"])


CASES = {
    "binary-str": Case("binary", ["benign", "malignant"]),
    "multiclass-str-pca-select": Case("multiclass", ["a", "b", "c"], pca=3, select="kbest_f", k=4),
    "multiclass-int-select": Case("multiclass", [3, 7, 11], select="kbest_f", k=3),
    "binary-str-no-categorical-pca": Case("binary", ["no", "yes"], pca=2, categorical=[]),
    "regression-select": Case("regression", select="kbest_f", k=3),
    "regression-pca-no-categorical": Case("regression", pca=3, categorical=[]),
    "regression-single-column": Case("regression", numeric=["mean radius"], categorical=[]),
}


def raw_frame(n: int, seed: int, case: Case, *, unseen: bool = False) -> pd.DataFrame:
    """Raw rows: float64 numerics with NaN, a string column with missing (and unseen) values."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for i, name in enumerate(case.numeric):
        values = rng.normal(loc=i, scale=1.0 + i, size=n)
        values[rng.random(n) < 0.15] = np.nan
        data[name] = values
    for name in case.categorical:
        choices = [*COLORS, "purple", "teal"] if unseen else COLORS
        values = rng.choice(np.asarray(choices, dtype=object), size=n)
        values[rng.random(n) < 0.15] = None
        data[name] = values
    return pd.DataFrame(data)


def fit_case(case: Case, seed: int = 0) -> tuple[FittedPreprocessor, InferenceHead, ModelSpec]:
    frame = raw_frame(200, seed, case)
    rng = np.random.default_rng(seed + 1)
    classification = case.task != "regression"
    if classification:
        target = pd.Series(rng.choice(np.asarray(case.classes, dtype=object), size=len(frame)))
    else:
        target = pd.Series(rng.normal(size=len(frame)))
    options = PreprocessOptions(select=case.select, k=case.k, pca=case.pca)  # type: ignore[arg-type]
    pre = fit_preprocessor(
        frame,
        target,
        numeric=case.numeric,
        categorical=case.categorical,
        options=options,
        classification=classification,
    )
    output_dim = len(case.classes) if classification else 1
    spec = ModelSpec(
        type="mlp",
        task=case.task,
        input_dim=pre.output_dim,
        output_dim=output_dim,
        hidden=[8],
        target_center=0.0 if classification else 5.0,
        target_scale=1.0 if classification else 2.5,
        classes=list(case.classes),
    )
    torch.manual_seed(seed)
    head = InferenceHead(MLP(spec.input_dim, output_dim, spec.hidden), spec)
    return pre, head, spec


def torch_outputs(
    pre: FittedPreprocessor, head: torch.nn.Module, frame: pd.DataFrame
) -> np.ndarray:
    with torch.no_grad():
        out: np.ndarray = head.eval()(torch.from_numpy(pre.transform(frame))).numpy()
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_matches_pytorch_on_raw_rows(name: str) -> None:
    case = CASES[name]
    pre, head, spec = fit_case(case)
    model = build_onnx_model(pre, head, spec)
    test = raw_frame(300, seed=1, case=case, unseen=True)
    if case.categorical:
        assert (test["color"].isin(["purple", "teal"])).any() and test["color"].isna().any()
    if case.select != "none":
        assert len(pre.selected) < len(pre.encoded_names)  # selection really drops columns

    diff = parity_max_abs_diff(model.SerializeToString(), pre, head, test)
    assert diff <= TOLERANCE, f"{name}: max |ONNX - PyTorch| = {diff}"

    session = onnxruntime.InferenceSession(model.SerializeToString())
    outputs = run_onnx(session, test)
    expected = torch_outputs(pre, head, test)
    if case.task == "regression":
        assert list(outputs) == ["prediction"]
        assert outputs["prediction"].shape == (300,)
        assert outputs["prediction"].dtype == np.float32
    else:
        assert list(outputs) == ["label", "probabilities"]
        assert outputs["probabilities"].shape == (300, len(case.classes))
        assert outputs["probabilities"].dtype == np.float32
        want = np.asarray(case.classes, dtype=object)[expected.argmax(axis=1)]
        assert outputs["label"].tolist() == want.tolist()
        is_int = all(isinstance(c, int) for c in case.classes)
        assert outputs["label"].dtype == (np.int64 if is_int else object)


def test_inputs_are_named_raw_columns_with_mlflow_shapes() -> None:
    case = CASES["multiclass-str-pca-select"]
    pre, head, spec = fit_case(case)
    model = build_onnx_model(pre, head, spec)
    session = onnxruntime.InferenceSession(model.SerializeToString())
    inputs = {i.name: (i.type, i.shape) for i in session.get_inputs()}
    assert inputs == {
        **{name: ("tensor(double)", ["N"]) for name in NUMERIC},
        "color": ("tensor(string)", ["N"]),
    }
    frame = raw_frame(10, seed=2, case=case)
    for source in (model, session):
        feeds = onnx_feeds(source, frame.assign(extra=1))  # extra columns are ignored
        assert sorted(feeds) == sorted(pre.input_columns)
        assert feeds["mean radius"].dtype == np.float64 and feeds["mean radius"].shape == (10,)
        assert feeds["color"].dtype == object
        assert set(map(type, feeds["color"])) == {str}
        assert feeds["color"][frame["color"].isna().to_numpy()].tolist() == [""] * int(
            frame["color"].isna().sum()
        )
    with pytest.raises(InputError, match="texture"):
        onnx_feeds(session, frame.drop(columns=["texture"]))

    single_pre, single_head, single_spec = fit_case(CASES["regression-single-column"])
    single = build_onnx_model(single_pre, single_head, single_spec)
    (only,) = onnxruntime.InferenceSession(single.SerializeToString()).get_inputs()
    assert (only.name, only.shape) == ("mean radius", ["N", 1])  # mlflow feeds data.values


def test_stringified_missing_values_count_as_missing() -> None:
    """onnxruntime stringifies None/NaN in object arrays ("None"/"nan"): still missing."""
    case = CASES["binary-str"]
    pre, head, spec = fit_case(case)
    assert "" in pre.categories["color"]  # training had missing values: a category of its own
    session = onnxruntime.InferenceSession(build_onnx_model(pre, head, spec).SerializeToString())
    frame = raw_frame(4, seed=3, case=case).assign(color=None)
    feeds = onnx_feeds(session, frame)
    reference = session.run(None, feeds)[1]
    for spelling in ("nan", "None", "<NA>", None, np.nan):
        feeds["color"] = np.asarray([spelling] * 4, dtype=object)
        np.testing.assert_array_equal(session.run(None, feeds)[1], reference)


def test_saved_file_is_one_protobuf_without_pickle(tmp_path: Path) -> None:
    pre, head, spec = fit_case(CASES["multiclass-str-pca-select"])
    model = build_onnx_model(pre, head, spec)
    path = tmp_path / "model.onnx"
    save_onnx(model, path)

    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no external data, no temp
    data = path.read_bytes()
    assert b"\x80\x04\x95" not in data[:3] and b"\x80\x05\x95" not in data[:3]
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)  # proving it is not a pickle
    loaded = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(loaded, full_check=True)
    initializers = [t for t in loaded.graph.initializer]
    assert initializers and all(t.data_location == onnx.TensorProto.DEFAULT for t in initializers)
    assert not any(t.external_data for t in initializers)
    frame = raw_frame(50, seed=4, case=CASES["multiclass-str-pca-select"], unseen=True)
    assert parity_max_abs_diff(data, pre, head, frame) <= TOLERANCE


def test_export_is_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    pre, head, spec = fit_case(CASES["binary-str"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_onnx_model(pre, head, spec)
    assert [str(w.message) for w in caught] == []
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_export_leaves_training_mode_alone() -> None:
    pre, head, spec = fit_case(CASES["binary-str"])
    head.train()
    build_onnx_model(pre, head, spec)
    assert head.training


@pytest.mark.slow
def test_dynamo_exporter_gives_the_same_graph_behaviour() -> None:
    case = CASES["multiclass-str-pca-select"]
    pre, head, spec = fit_case(case)
    model = build_onnx_model(pre, head, spec, exporter="dynamo")
    frame = raw_frame(100, seed=5, case=case, unseen=True)
    assert parity_max_abs_diff(model.SerializeToString(), pre, head, frame) <= TOLERANCE


def test_inconsistent_inputs_are_refused() -> None:
    pre, head, spec = fit_case(CASES["binary-str"])
    with pytest.raises(ValueError, match="class labels"):
        build_onnx_model(pre, head, ModelSpec(**{**spec.to_json(), "classes": ["only"]}))
    with pytest.raises(ValueError, match="features"):
        build_onnx_model(pre, head, ModelSpec(**{**spec.to_json(), "input_dim": 99}))
    renamed = FittedPreprocessor(**{**pre.to_json(), "numeric": ["label", *NUMERIC[1:]]})
    with pytest.raises(ValueError, match="clash"):
        build_onnx_model(renamed, head, spec)


@pytest.mark.slow
def test_mlflow_pyfunc_predicts_raw_dataframes(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/m.db")
    # An explicit artifact root: the sqlite store's default is ./mlruns in the working directory.
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment(
            "onnx-export-test", artifact_location=(tmp_path / "artifacts").as_uri()
        )
    )

    def log_and_load(model: onnx.ModelProto, signature: Any) -> Any:
        with mlflow.start_run():
            info = mlflow.onnx.log_model(
                model,
                name="model",
                signature=signature,
                pip_requirements=["onnxruntime"],
                onnx_execution_providers=["CPUExecutionProvider"],
                save_as_external_data=False,
            )
        return mlflow.pyfunc.load_model(info.model_uri)

    # Classification with a string column: the tensor signature makes mlflow convert each raw
    # column to a numpy array (pandas 3 "str" columns included) and return a dict of outputs.
    case = CASES["multiclass-str-pca-select"]
    pre, head, spec = fit_case(case)
    model = build_onnx_model(pre, head, spec)
    raw = raw_frame(40, seed=6, case=case, unseen=True)
    assert raw["color"].isna().any()
    loaded = log_and_load(model, mlflow_signature(model, raw))
    predicted = loaded.predict(raw)
    expected = run_onnx(onnxruntime.InferenceSession(model.SerializeToString()), raw)
    assert predicted["label"].tolist() == expected["label"].tolist()
    np.testing.assert_allclose(predicted["probabilities"], expected["probabilities"], atol=0)
    np.testing.assert_allclose(
        predicted["probabilities"], torch_outputs(pre, head, raw), atol=TOLERANCE
    )

    # Numeric-only regression with the column signature inferred from the raw frame: the
    # DataFrame reaches the ONNX flavor as is and each column's .values fits an [N] input.
    case = CASES["regression-pca-no-categorical"]
    pre, head, spec = fit_case(case)
    model = build_onnx_model(pre, head, spec)
    raw = raw_frame(40, seed=7, case=case)
    session = onnxruntime.InferenceSession(model.SerializeToString())
    expected = run_onnx(session, raw)
    loaded = log_and_load(model, infer_signature(raw, expected))
    predicted = loaded.predict(raw)
    assert isinstance(predicted, pd.DataFrame)
    np.testing.assert_allclose(predicted["prediction"], expected["prediction"], atol=0)
    np.testing.assert_allclose(
        predicted["prediction"], torch_outputs(pre, head, raw), atol=TOLERANCE
    )


def test_requirement_check_still_catches_mismatches_without_the_package_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from importlib.metadata import version

    from mlflow.utils import requirements_utils

    from neuroflow.stages.export import _requirements_checked_by_name, pip_requirements

    requirements = pip_requirements()
    # As in a fresh export process (another test here may have logged a model already).
    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    with _requirements_checked_by_name():
        assert set(requirements_utils._MODULES_TO_PACKAGES) == {
            "mlflow",
            "onnxruntime",
            "onnx",
            "numpy",
            "pandas",
        }
        for requirement in requirements:
            assert requirements_utils._check_requirement_satisfied(requirement) is None
        wrong = requirements_utils._check_requirement_satisfied("numpy==0.0.1")
        assert wrong is not None and wrong.installed_version == version("numpy")
    assert requirements_utils._MODULES_TO_PACKAGES is None  # MLflow builds its own map later
