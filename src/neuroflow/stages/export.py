"""export: one ONNX graph from raw rows to predictions, parity-checked, registered as challenger.

It also logs the training run's record (`artifacts/run.json`, written by train) as the MLflow run
and `evaluate`'s results into it: this is the stage that talks to MLflow anyway, so MLflow is
imported once per pipeline run (`tracking.log_record`, `tracking.record_evaluation`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from neuroflow.config import SPLITS, Params, Paths
from neuroflow.errors import NeuroflowError
from neuroflow.io import read_json, write_json, write_text

log = logging.getLogger(__name__)


class ParityError(NeuroflowError):
    """The exported graph disagrees with the PyTorch path beyond tolerance."""


# What the exported model needs at serving time; each one's module is named like its package.
MODEL_PACKAGES = ("onnxruntime", "onnx", "numpy", "pandas")


def pip_requirements() -> list[str]:
    """Explicit, so MLflow skips its slow requirement inference."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_PACKAGES]


@contextmanager
def _requirements_checked_by_name() -> Iterator[None]:
    """Let MLflow check our explicit requirements without indexing every installed package.

    Before logging a model, MLflow checks its pip requirements against the environment, and to
    do so first maps every module of every installed distribution to its package: 1.3 s at our
    ~260 packages, spent on a map it then consults for our few names (MLflow's own included),
    whose module names are their package names (it reads versions from package metadata).
    Handing it that map for the duration of the call keeps the check and skips the index; if
    MLflow has already built its map, or keeps it elsewhere in a later release, nothing changes.
    """
    from mlflow.utils import requirements_utils

    if getattr(requirements_utils, "_MODULES_TO_PACKAGES", ...) is not None:
        yield
        return
    known: Any = {name: [name] for name in ("mlflow", *MODEL_PACKAGES)}  # typed None upstream
    requirements_utils._MODULES_TO_PACKAGES = known
    try:
        yield
    finally:
        requirements_utils._MODULES_TO_PACKAGES = None


def run(params: Params, paths: Paths) -> dict[str, Any]:
    import mlflow
    import mlflow.onnx

    from neuroflow import tracking
    from neuroflow.export.onnx_graph import (
        build_onnx_model,
        mlflow_signature,
        save_onnx,
    )
    from neuroflow.export.onnx_graph import parity as compare_parity
    from neuroflow.features.transform import load_preprocessor
    from neuroflow.models.store import load_head
    from neuroflow.registry import names
    from neuroflow.registry.register import content_hash, register_challenger, sha256_file

    # The run and evaluate's results first: a failed export still leaves them recorded.
    run_id = tracking.log_record(paths.root, read_json(paths.run_info))
    tracking.record_evaluation(paths.root, run_id, paths.metrics, paths.report_dir)
    schema = read_json(paths.schema)
    pre = load_preprocessor(paths)
    spec, head = load_head(paths.weights, paths.model_spec)
    generator = None
    if spec.task == "generative":  # the generator alone: latent vectors in, images out
        from neuroflow.export.generator import export_generator

        try:
            generator = export_generator(head.network, pre, params.export, params.seed)
        except ValueError as exc:
            raise ParityError(str(exc)) from exc
        model, parity = generator.model, generator.parity_max_abs_diff
    else:
        model = build_onnx_model(
            pre, head, spec, opset=params.export.opset, target=params.data.target
        )
        raw_test = pd.read_parquet(paths.raw_split("test"))
        features = raw_test[pre.input_columns]
        check = compare_parity(model.SerializeToString(), pre, head, features)
        atol, rtol = params.export.parity_atol, params.export.parity_rtol
        if not check.ok(atol, rtol):
            raise ParityError(
                f"ONNX and PyTorch disagree on the test split: {check.describe(atol, rtol)}"
            )
        parity = check.max_abs_diff
    save_onnx(model, paths.onnx)

    metrics = read_json(paths.metrics)
    data_hashes = {
        str(paths.raw_split(s).relative_to(paths.root)): sha256_file(paths.raw_split(s))
        for s in SPLITS
    }
    from neuroflow.export.model_card import render_model_card

    card = render_model_card(
        name=params.registry.model_name,
        params=params.flat(),
        metrics=metrics,
        schema=schema,
        data_hashes=data_hashes,
        run_id=run_id,
        parity=parity,
        feature_names=pre.feature_names,
    )
    write_text(paths.model_card, card)

    example: Any
    if generator is not None:
        example, signature = generator.example, generator.signature
    else:
        # MLflow reads the example by label from row 0: give it a fresh index.
        example = features.head(5).reset_index(drop=True)
        signature = mlflow_signature(model, example)
    name = params.registry.model_name
    mlc = tracking.client(paths.root)
    requirements = pip_requirements()
    test_sha = data_hashes[str(paths.raw_split("test").relative_to(paths.root))]
    tags = {
        names.RUN_ID_TAG: run_id,
        names.TASK_TAG: spec.task,
        names.TEST_SHA_TAG: test_sha,
        **{f"{names.TEST_METRIC_PREFIX}{k}": str(v) for k, v in metrics.get("test", {}).items()},
    }
    if "season" in schema:
        tags[names.SEASON_TAG] = str(schema["season"])

    def log_model() -> Any:
        with mlflow.start_run(run_id=run_id), _requirements_checked_by_name():
            info = mlflow.onnx.log_model(
                model,
                name="model",
                signature=signature,
                input_example=example,
                pip_requirements=requirements,
                save_as_external_data=False,  # one self-contained .onnx file
                onnx_execution_providers=["CPUExecutionProvider"],
                metadata={"neuroflow.task": spec.task, "parity_max_abs_diff": parity},
            )
            mlflow.log_artifact(str(paths.model_card), "model_card")
            # The promotion gate's frozen evaluation set: the raw rows this version was tested on.
            mlflow.log_artifact(str(paths.raw_split("test")), "eval")
        return info

    with tracking.reachable(mlflow.get_tracking_uri()):
        tracking.log_metrics(paths.root, run_id, [("export_parity_max_abs_diff", parity, 0)])
        registered = register_challenger(
            mlc,
            name=name,
            run_id=run_id,
            digest=content_hash(model.SerializeToString(), pre.to_json()),
            tags=tags,
            log_model=log_model,
        )
    tracking.describe_model(paths.root, params, str(registered.version), card, schema["source"])
    tracking.finish_run(paths.root, run_id)
    registration = {**registered.to_json(), "parity_max_abs_diff": parity}
    write_json(paths.registration, registration)
    log.info(
        "export: %s version %s %s as @%s (parity %.2e)",
        name,
        registered.version,
        "already registered with this content: re-pointed" if registered.reused else "registered",
        names.CHALLENGER,
        parity,
    )
    return registration
