"""One ONNX graph from raw feature columns to predictions: preprocessing + network + labels.

The graph has one input per raw column, named exactly as the column: numeric columns are
``tensor(double)`` (NaN = missing), categorical columns ``tensor(string)`` (missing = ``""``; the
spellings onnxruntime gives None/NaN/pd.NA in an object array, "None"/"nan"/"<NA>", count as
missing too when the vocabulary has a missing category). Every input has shape ``[N]``, which is
what mlflow's ONNX pyfunc feeds per input of a multi-input model (``data[name].values``), except
when the model has a single input, where mlflow feeds ``data.values`` and the input is ``[N, 1]``.
Inside the graph each input is reshaped to a column.

    raw columns ─► Where(IsNaN) impute ─► LabelEncoder + Equal one-hot ─► Concat ─► Gather
    (selection) ─► Sub/Div (scale) ─► [Sub/MatMul (PCA)] ─► Cast float ─► network
    ─► "label" (N,) + "probabilities" (N, C)   |   "prediction" (N,)

Preprocessing runs in double precision, exactly as `FittedPreprocessor.transform`, so the ONNX
graph and the PyTorch path agree to float32 rounding. The network is exported with
`torch.onnx.export` and spliced in under a ``head/`` name prefix. For MLflow, log the model with
`mlflow_signature` so ``pyfunc.predict(raw_dataframe)`` works (see there why).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import torch
from onnx import TensorProto, helper, numpy_helper

from neuroflow.export import runtime
from neuroflow.export.runtime import LABEL, PREDICTION, PROBABILITIES, SCORE
from neuroflow.features.transform import MISSING_CATEGORY, FittedPreprocessor
from neuroflow.io import write_bytes
from neuroflow.models.spec import ModelSpec

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

logger = logging.getLogger(__name__)

Exporter = Literal["torchscript", "dynamo"]

BATCH = "N"
OUTPUT_NAMES = (LABEL, PROBABILITIES, PREDICTION, SCORE)
ML_DOMAIN = "ai.onnx.ml"

_PRE = "pre/"
_HEAD = "head/"
_POST = "post/"
_FEATURES = f"{_PRE}features"
_HEAD_INPUT = "features"  # the exported network's input, "head/features" once prefixed
_STRINGIFIED_MISSING = ("nan", "None", "<NA>")

# ONNX element type → the onnxruntime type string export/runtime.py reads inputs by.
_ONNX_TO_ORT = {
    TensorProto.DOUBLE: "tensor(double)",
    TensorProto.FLOAT: "tensor(float)",
    TensorProto.STRING: "tensor(string)",
}


def build_onnx_model(
    pre: FittedPreprocessor,
    head: torch.nn.Module,
    spec: ModelSpec,
    *,
    opset: int = 18,
    exporter: Exporter = "torchscript",
    target: str | None = None,
) -> onnx.ModelProto:
    """Raw columns → predictions as ONE self-contained model (all weights embedded).

    ``exporter`` picks how ``head`` is traced: the TorchScript exporter (default: 15-200 ms for a
    small MLP) or the dynamo exporter (1.5 s warm, 3-5 s cold; needs onnxscript). Both give the
    same Gemm/Relu/Softmax graph. If the TorchScript exporter fails (it is deprecated since torch
    2.9), the dynamo exporter is tried. Exporter warnings and progress output are silenced.
    ``target`` (the label column's name) and the categorical vocabularies go into the model's
    metadata, so serving can tell the label and unseen categories apart from model inputs.
    """
    classification = spec.task in ("binary", "multiclass")
    _validate(pre, spec, classification)
    raw_output = PROBABILITIES if classification else PREDICTION
    if spec.task == "anomaly":
        raw_output = SCORE

    pre_graph = _preprocess_graph(pre)
    head_model = _export_head(head, pre.output_dim, opset, raw_output, exporter)
    head_graph = onnx.compose.add_prefix_graph(head_model.graph, _HEAD, rename_outputs=False)
    outputs = [
        helper.make_tensor_value_info(
            raw_output,
            TensorProto.FLOAT,
            [BATCH, len(spec.classes)] if classification else [BATCH],
        )
    ]
    if classification:
        outputs.insert(0, _append_label_nodes(head_graph, spec.classes))
    del head_graph.output[:]
    head_graph.output.extend(outputs)

    graph = onnx.compose.merge_graphs(
        pre_graph, head_graph, io_map=[(_FEATURES, _HEAD + _HEAD_INPUT)], name="neuroflow"
    )
    model = helper.make_model(
        graph,
        opset_imports=_opset_imports(head_model, opset),
        producer_name="neuroflow",
        functions=list(head_model.functions),
    )
    model.ir_version = max(
        head_model.ir_version, helper.find_min_ir_version_for(model.opset_import)
    )
    helper.set_model_props(
        model,
        {
            "neuroflow.task": spec.task,
            "neuroflow.classes": json.dumps(_plain_classes(spec.classes)),
            "neuroflow.numeric": json.dumps(pre.numeric),
            "neuroflow.categorical": json.dumps(pre.categorical),
            "neuroflow.categories": json.dumps(
                {name: [str(v) for v in pre.categories[name]] for name in pre.categorical}
            ),
            **({"neuroflow.target": target} if target else {}),
        },
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def onnx_feeds(
    model: onnx.ModelProto | onnxruntime.InferenceSession, frame: pd.DataFrame
) -> dict[str, np.ndarray]:
    """A DataFrame of raw columns → the model's feed dict: the serving feeds
    (`runtime.frame_feeds`), so the parity check runs the code that serves."""
    return runtime.frame_feeds(_input_specs(model), frame)


def run_onnx(session: onnxruntime.InferenceSession, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Run the model on raw rows through the serving feeds; output name → array."""
    return runtime.run(session, onnx_feeds(session, frame))


@dataclass(frozen=True)
class Parity:
    """How far the ONNX graph's outputs are from PyTorch's on the same raw rows.

    Tolerance is numpy-``allclose``-like, ``atol + rtol × scale``, with the output's scale (max
    |PyTorch output|) in place of each element's magnitude: float32 rounding grows with the
    magnitude of the values the network computes, so a regression target in thousands differs
    by an ulp of about 5e-4, and a prediction near zero on that target is no more exact than its
    neighbours. Probabilities (scale ≤ 1) stay within about ``atol + rtol``.
    """

    output: str  # the output compared: probabilities, prediction or score
    max_abs_diff: float  # NaN when either side has a NaN
    scale: float
    row: int  # the worst element: 0-based row of the frame, and column for 2-D outputs
    column: int | None
    onnx_value: float
    torch_value: float

    def tolerance(self, atol: float, rtol: float) -> float:
        return atol + rtol * self.scale

    def ok(self, atol: float, rtol: float) -> bool:
        return self.max_abs_diff <= self.tolerance(atol, rtol)  # False for NaN

    def describe(self, atol: float, rtol: float) -> str:
        where = f"row {self.row + 1}"
        if self.column is not None:
            where += f", column {self.column}"
        return (
            f"worst {self.output!r} at {where}: ONNX {self.onnx_value:.9g} vs PyTorch "
            f"{self.torch_value:.9g}, |diff| {self.max_abs_diff:.3g} > allowed "
            f"{self.tolerance(atol, rtol):.3g} (export.parity_atol={atol:g} + "
            f"export.parity_rtol={rtol:g} × output scale {self.scale:.6g})"
        )


def parity(
    model_bytes: bytes, pre: FittedPreprocessor, head: torch.nn.Module, frame: pd.DataFrame
) -> Parity:
    """Compare ONNX with PyTorch on probabilities (classification), predictions or scores.

    The PyTorch path is ``head(pre.transform(frame))`` in eval mode. A NaN on either side is
    the worst element, and fails any tolerance.
    """
    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    outputs = run_onnx(session, frame)
    key = next(k for k in (PROBABILITIES, PREDICTION, SCORE) if k in outputs)
    return compare_outputs(key, outputs[key], _torch_outputs(pre, head, frame))


def compare_outputs(key: str, onnx_out: np.ndarray, torch_out: np.ndarray) -> Parity:
    """The worst element of ONNX's `key` output against PyTorch's (a NaN is the worst)."""
    actual, expected = onnx_out.astype(np.float64), torch_out.astype(np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"ONNX {key} has shape {actual.shape}, PyTorch {expected.shape}")
    if actual.size == 0:
        return Parity(key, 0.0, 0.0, 0, None, 0.0, 0.0)
    diff = np.abs(actual - expected)
    nan = np.isnan(diff)
    worst = int(np.argmax(nan)) if nan.any() else int(np.argmax(diff))
    index = np.unravel_index(worst, diff.shape)
    finite = np.abs(expected[np.isfinite(expected)])
    return Parity(
        output=key,
        max_abs_diff=float(diff.flat[worst]),
        scale=float(finite.max()) if finite.size else 0.0,
        row=int(index[0]),
        column=int(index[1]) if len(index) > 1 else None,
        onnx_value=float(actual.flat[worst]),
        torch_value=float(expected.flat[worst]),
    )


def parity_max_abs_diff(
    model_bytes: bytes, pre: FittedPreprocessor, head: torch.nn.Module, frame: pd.DataFrame
) -> float:
    """Max |ONNX - PyTorch| (see `parity`); NaN fails any ``<= tolerance`` check."""
    return parity(model_bytes, pre, head, frame).max_abs_diff


def mlflow_signature(model: onnx.ModelProto, frame: pd.DataFrame) -> ModelSignature:
    """A tensor-based MLflow signature (one named tensor per raw column) for `model`.

    Log the model with this signature, not one inferred from the raw DataFrame: with it, mlflow's
    pyfunc turns each DataFrame column into a numpy array of the input's dtype and shape before
    calling onnxruntime, and returns a dict of outputs. A column-based signature hands the
    DataFrame to the ONNX flavor as is, which fails on pandas ≥ 3 string columns (``.values`` is an
    ArrowStringArray, not a numpy array) and on the (N, C) "probabilities" output (mlflow
    flattens every output into one DataFrame column).
    """
    from mlflow.models import infer_signature

    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    sample = frame.head(5)
    signature: ModelSignature = infer_signature(
        onnx_feeds(session, sample), run_onnx(session, sample)
    )
    return signature


def save_onnx(model: onnx.ModelProto, path: Path) -> None:
    """Check the model fully, then write it atomically as one file (no external data)."""
    external = [
        t.name for t in _all_tensors(model) if onnx.external_data_helper.uses_external_data(t)
    ]
    if external:
        raise ValueError(f"model references external data for {external[:5]}; embed it first")
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    write_bytes(path, data)
    logger.info("wrote ONNX model %s (%.1f KiB)", path, len(data) / 1024)


# --------------------------------------------------------------------------- preprocessing


def _preprocess_graph(pre: FittedPreprocessor) -> onnx.GraphProto:
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []

    def const(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(array, _PRE + name))
        return _PRE + name

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [_PRE + output], name=_PRE + output, **attrs))
        return _PRE + output

    # mlflow's pyfunc feeds data[name].values (N,) per input, or data.values (N, 1) for one input.
    dims: list[str | int] = [BATCH] if len(pre.input_columns) > 1 else [BATCH, 1]
    column = const("column_shape", np.array([-1, 1], dtype=np.int64))
    inputs: list[onnx.ValueInfoProto] = []
    parts: list[str] = []

    if pre.numeric:
        columns = []
        for i, name in enumerate(pre.numeric):
            inputs.append(helper.make_tensor_value_info(name, TensorProto.DOUBLE, dims))
            columns.append(node("Reshape", [name, column], f"numeric{i}"))
        numeric = columns[0] if len(columns) == 1 else node("Concat", columns, "numeric", axis=1)
        fill = const("impute_values", np.asarray(pre.impute_values, dtype=np.float64))
        is_nan = node("IsNaN", [numeric], "numeric_is_nan")
        parts.append(node("Where", [is_nan, fill, numeric], "numeric_imputed"))

    for j, name in enumerate(pre.categorical):
        inputs.append(helper.make_tensor_value_info(name, TensorProto.STRING, dims))
        vocab = [str(v) for v in pre.categories[name]]
        if not vocab:
            continue  # contributes no encoded column
        # String → vocabulary index (-1 if unseen), then index == arange(V): one-hot, all zeros
        # when unseen. (Equal on strings needs opset 19; LabelEncoder works for every opset.)
        keys, values = list(vocab), list(range(len(vocab)))
        if MISSING_CATEGORY in vocab:
            # onnxruntime turns None/NaN/pd.NA in an object array into "None"/"nan"/"<NA>"; that
            # is how mlflow's pyfunc feeds a raw DataFrame's missing values. Treat them as missing.
            extra = [s for s in _STRINGIFIED_MISSING if s not in vocab]
            keys.extend(extra)
            values.extend([vocab.index(MISSING_CATEGORY)] * len(extra))
        index = node(
            "LabelEncoder",
            [node("Reshape", [name, column], f"categorical{j}")],
            f"categorical{j}_index",
            domain=ML_DOMAIN,
            keys_strings=keys,
            values_int64s=values,
            default_int64=-1,
        )
        positions = const(f"categorical{j}_positions", np.arange(len(vocab), dtype=np.int64))
        match = node("Equal", [index, positions], f"categorical{j}_match")
        parts.append(node("Cast", [match], f"categorical{j}_onehot", to=TensorProto.DOUBLE))

    encoded = parts[0] if len(parts) == 1 else node("Concat", parts, "encoded", axis=1)
    selected = const("selected", np.asarray(pre.selected, dtype=np.int64))
    out = node("Gather", [encoded, selected], "selected_columns", axis=1)
    out = node("Sub", [out, const("center", np.asarray(pre.center, dtype=np.float64))], "centered")
    out = node("Div", [out, const("scale", np.asarray(pre.scale, dtype=np.float64))], "scaled")
    if pre.pca_components:
        mean = const("pca_mean", np.asarray(pre.pca_mean, dtype=np.float64))
        components = np.asarray(pre.pca_components, dtype=np.float64).T.copy()
        out = node("Sub", [out, mean], "pca_centered")
        out = node("MatMul", [out, const("pca_components_t", components)], "pca_projected")
    nodes.append(helper.make_node("Cast", [out], [_FEATURES], name=_FEATURES, to=TensorProto.FLOAT))
    features = helper.make_tensor_value_info(_FEATURES, TensorProto.FLOAT, [BATCH, pre.output_dim])
    return helper.make_graph(nodes, "preprocess", inputs, [features], initializers)


def _validate(pre: FittedPreprocessor, spec: ModelSpec, classification: bool) -> None:
    columns = pre.input_columns
    if not columns:
        raise ValueError("the preprocessor has no input columns")
    if len(set(columns)) != len(columns):
        raise ValueError(f"input column names are not unique: {columns}")
    clashes = [c for c in columns if c in OUTPUT_NAMES or c.startswith((_PRE, _HEAD, _POST))]
    if clashes:
        raise ValueError(
            f"column(s) {clashes} clash with the graph's output names {OUTPUT_NAMES} "
            f"or its reserved prefixes {(_PRE, _HEAD, _POST)}"
        )
    width = len(pre.numeric) + sum(len(pre.categories[c]) for c in pre.categorical)
    if not pre.selected or any(not 0 <= i < width for i in pre.selected):
        raise ValueError(f"selected indices {pre.selected} do not fit {width} encoded columns")
    if not len(pre.center) == len(pre.scale) == len(pre.selected):
        raise ValueError("center/scale must have one value per selected column")
    if len(pre.impute_values) != len(pre.numeric):
        raise ValueError("impute_values must have one value per numeric column")
    if spec.input_dim != pre.output_dim:  # every network takes the flat feature vector
        raise ValueError(
            f"network expects {spec.input_dim} features, preprocessor gives {pre.output_dim}"
        )
    if classification:
        if len(spec.classes) != spec.output_dim and not (
            spec.output_dim == 1 and len(spec.classes) == 2  # one logit (bce)
        ):
            raise ValueError(
                f"{len(spec.classes)} class labels for a network with {spec.output_dim} outputs"
            )
        if len({str(c) for c in spec.classes}) != len(spec.classes):
            raise ValueError(f"class labels are not unique: {spec.classes}")


# --------------------------------------------------------------------------- network


def _export_head(
    head: torch.nn.Module, input_dim: int, opset: int, output_name: str, exporter: Exporter
) -> onnx.ModelProto:
    if exporter == "torchscript":
        try:
            return _export_with(head, input_dim, opset, output_name, dynamo=False)
        except Exception as error:  # the legacy exporter is deprecated; dynamo is the fallback
            logger.warning("TorchScript ONNX export failed (%s); trying the dynamo exporter", error)
    return _export_with(head, input_dim, opset, output_name, dynamo=True)


def _export_with(
    head: torch.nn.Module, input_dim: int, opset: int, output_name: str, *, dynamo: bool
) -> onnx.ModelProto:
    tensors = itertools.chain(head.parameters(), head.buffers())
    device = next((t.device for t in tensors), torch.device("cpu"))
    dummy = torch.zeros(2, input_dim, dtype=torch.float32, device=device)  # 2: no size-1 folding
    was_training = head.training
    head.eval()
    start = time.perf_counter()
    try:
        with _quiet_exporter():
            if dynamo:
                program = torch.onnx.export(
                    head,
                    (dummy,),
                    dynamo=True,
                    verbose=False,
                    opset_version=opset,
                    input_names=[_HEAD_INPUT],
                    output_names=[output_name],
                    dynamic_shapes=({0: torch.export.Dim(BATCH)},),
                )
                if program is None:
                    raise RuntimeError("the dynamo exporter returned no program")
                model = program.model_proto
            else:
                model = torchscript_onnx(head, dummy, opset, _HEAD_INPUT, output_name)
    finally:
        head.train(was_training)
    logger.info(
        "exported the network with the %s exporter in %.3f s",
        "dynamo" if dynamo else "TorchScript",
        time.perf_counter() - start,
    )
    outputs = [(o.name, o.type.tensor_type.elem_type) for o in model.graph.output]
    if outputs != [(output_name, TensorProto.FLOAT)]:
        raise ValueError(f"the network must return one float32 tensor, got {outputs}")
    return model


def torchscript_onnx(
    module: torch.nn.Module, dummy: torch.Tensor, opset: int, input_name: str, output_name: str
) -> onnx.ModelProto:
    """`module` (one tensor in, one out) through the TorchScript exporter, batch dimension free."""
    buffer = io.BytesIO()
    torch.onnx.export(
        module,
        (dummy,),
        buffer,  # type: ignore[arg-type]  # the TorchScript exporter takes a file object
        dynamo=False,
        opset_version=opset,
        input_names=[input_name],
        output_names=[output_name],
        dynamic_axes={input_name: {0: BATCH}, output_name: {0: BATCH}},
    )
    return onnx.load_model_from_string(buffer.getvalue())


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporters' chatter (deprecation notices, optional-op registration warnings).

    Errors still propagate; only warnings and sub-ERROR log records from torch.onnx are muted.
    """
    torch_onnx_logger = logging.getLogger("torch.onnx")
    level = torch_onnx_logger.level
    torch_onnx_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # Raised at our call site: "You are using the legacy TorchScript-based ONNX export".
            warnings.filterwarnings("ignore", message=r".*TorchScript-based ONNX export")
            # torch's own deprecated helpers (exporter_context, ...) and pytree notices.
            for category in (DeprecationWarning, FutureWarning, UserWarning):
                warnings.filterwarnings("ignore", category=category, module=r"torch(\.|$)")
            warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
            yield
    finally:
        torch_onnx_logger.setLevel(level)


def _append_label_nodes(graph: onnx.GraphProto, classes: list[Any]) -> onnx.ValueInfoProto:
    """probabilities → ArgMax → Gather on the class labels: the "label" output."""
    plain = _plain_classes(classes)
    if all(isinstance(c, int) for c in plain):
        labels, elem_type = np.asarray(plain, dtype=np.int64), TensorProto.INT64
    else:
        labels, elem_type = np.asarray([str(c) for c in plain], dtype=object), TensorProto.STRING
    graph.initializer.append(numpy_helper.from_array(labels, f"{_POST}classes"))
    graph.node.extend(
        [
            helper.make_node(
                "ArgMax",
                [PROBABILITIES],
                [f"{_POST}class_index"],
                name=f"{_POST}argmax",
                axis=1,
                keepdims=0,
            ),
            helper.make_node(
                "Gather",
                [f"{_POST}classes", f"{_POST}class_index"],
                [LABEL],
                name=f"{_POST}label",
                axis=0,
            ),
        ]
    )
    return helper.make_tensor_value_info(LABEL, elem_type, [BATCH])


def _plain_classes(classes: list[Any]) -> list[Any]:
    """Class labels as JSON-able Python values: ints stay ints (bools do not), others str."""
    plain: list[Any] = []
    for c in classes:
        if isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_)):
            plain.append(int(c))
        else:
            plain.append(c.item() if isinstance(c, np.generic) else c)
    if not all(isinstance(c, int) for c in plain):
        plain = [str(c) for c in plain]
    return plain


def _opset_imports(head_model: onnx.ModelProto, opset: int) -> list[onnx.OperatorSetIdProto]:
    versions = {entry.domain: entry.version for entry in head_model.opset_import}
    if versions.get("", opset) != opset:
        raise ValueError(f"the network was exported with opset {versions['']}, not {opset}")
    versions[""] = opset
    versions[ML_DOMAIN] = _ml_opset(opset)
    return [helper.make_opsetid(domain, version) for domain, version in versions.items()]


def _ml_opset(opset: int) -> int:
    """The ai.onnx.ml opset released alongside the given ai.onnx opset."""
    for _, _, onnx_version, ml_version, *_ in helper.VERSION_TABLE:
        if onnx_version >= opset:
            return int(ml_version)
    raise ValueError(f"opset {opset} is newer than this onnx package knows")


# --------------------------------------------------------------------------- helpers


def _input_specs(
    model: onnx.ModelProto | onnxruntime.InferenceSession,
) -> list[runtime.ModelInput]:
    """The graph's inputs as the serving feeds read them."""
    if not isinstance(model, onnx.ModelProto):
        return runtime.model_inputs(model)
    initializers = {t.name for t in model.graph.initializer}
    return [
        runtime.model_input(
            i.name,
            _ONNX_TO_ORT.get(i.type.tensor_type.elem_type, str(i.type.tensor_type.elem_type)),
            len(i.type.tensor_type.shape.dim),
        )
        for i in model.graph.input
        if i.name not in initializers
    ]


def _torch_outputs(
    pre: FittedPreprocessor, head: torch.nn.Module, frame: pd.DataFrame
) -> np.ndarray:
    tensors = itertools.chain(head.parameters(), head.buffers())
    device = next((t.device for t in tensors), torch.device("cpu"))
    features = torch.from_numpy(pre.transform(frame)).to(device)
    was_training = head.training
    head.eval()
    try:
        with torch.no_grad():
            out = head(features)
    finally:
        head.train(was_training)
    result: np.ndarray = out.detach().cpu().numpy()
    return result


def _all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor in the model: initializers and tensor attributes, subgraphs included."""
    graphs = [model.graph]
    nodes = [n for f in model.functions for n in f.node]
    while graphs or nodes:
        if graphs:
            graph = graphs.pop()
            yield from graph.initializer
            yield from (sparse.values for sparse in graph.sparse_initializer)
            nodes.extend(graph.node)
            continue
        for attribute in nodes.pop().attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                graphs.append(attribute.g)
            graphs.extend(attribute.graphs)
