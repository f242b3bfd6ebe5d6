"""Serving latency and throughput: `neuroflow serve` over HTTP vs in-process onnxruntime.

`run(smoke)` registers a raw-rows ONNX model (30 numeric breast-cancer columns → the default MLP,
the export stage's graph) as @champion in a throw-away SQLite registry, starts `neuroflow serve`
on a free loopback port, and measures:
- HTTP batch 1: sequential requests on one keep-alive connection, latency p50 / p99;
- HTTP batch 1024: rows per second (sequential requests) and per-request p50;
- in-process onnxruntime on the same model: batch-1 latency and batch-1024 rows/s, plus the
  server's request path without HTTP (JSON parse + validation + scoring) at batch 1.
The difference between the HTTP and in-process figures is the cost of HTTP + JSON.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    breast_cancer_model,
    call_seconds,
    free_port,
    machine,
    stop_process,
)

NAME = "bench-serving"
BIN = Path(sys.executable).parent


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "mean_ms": round(float(ms.mean()), 4),
    }


def _model_and_rows() -> tuple[Any, Any]:
    import pandas as pd

    from neuroflow.export.onnx_graph import build_onnx_model

    features, pre, spec, head = breast_cancer_model(epochs=0)
    model = build_onnx_model(pre, head, spec)
    # 1024+ rows: resample the 569 real rows.
    rows = features.sample(n=2048, replace=True, random_state=0).reset_index(drop=True)
    return model, pd.DataFrame(rows)


def _register(model: Any, example: Any, uri: str) -> None:
    import mlflow
    import mlflow.onnx

    from neuroflow.export.onnx_graph import mlflow_signature

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # Explicit artifact location: a SQLite store would otherwise write under ./mlruns.
    artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlruns").as_uri()
    exp_id = mlflow.create_experiment("bench-serving", artifact_location=artifacts)
    with mlflow.start_run(experiment_id=exp_id):
        info = mlflow.onnx.log_model(
            model,
            name="model",
            signature=mlflow_signature(model, example),
            pip_requirements=["onnxruntime"],
            save_as_external_data=False,
            onnx_execution_providers=["CPUExecutionProvider"],
            registered_model_name=NAME,
        )
    mlflow.MlflowClient(uri, uri).set_registered_model_alias(
        NAME, "champion", str(info.registered_model_version)
    )


def _payload(frame: Any) -> bytes:
    body = {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}
    return json.dumps(body).encode()


def run(smoke: bool) -> dict[str, Any]:
    import httpx

    # httpx logs every request at INFO: under `benchmarks.run`'s logging that is the client's
    # cost (2-3 ms per batch-1 request here), not the server's. `benchmarks.run` restores it.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from neuroflow.export.runtime import OnnxScorer
    from neuroflow.serving.app import ServedModel, parse_request

    n_single, n_batch, warmup = (50, 5, 10) if smoke else (2000, 100, 100)
    model, rows = _model_and_rows()
    one, batch = rows.head(1), rows.head(1024)
    scorer = OnnxScorer(model.SerializeToString())

    # In-process onnxruntime, the floor for any server.
    feeds_one, feeds_batch = scorer.feeds_from_frame(one), scorer.feeds_from_frame(batch)
    ort_single = call_seconds(lambda: scorer.run(feeds_one), n_single * 5, warmup)
    ort_batch = call_seconds(lambda: scorer.run(feeds_batch), n_batch * 5, warmup // 5 + 1)
    body_one, body_batch = _payload(one), _payload(batch)
    served = ServedModel(scorer, NAME, "0", "")
    request_path = call_seconds(
        lambda: scorer.run(parse_request(body_one, "application/json", served).feeds),
        n_single,
        warmup,
    )

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        root = Path(tmp)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        _register(model, rows.head(5), uri)
        (root / "params.yaml").write_text(f"registry:\n  model_name: {NAME}\n")
        port = free_port()
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        log = (root / "serve.log").open("w")
        proc = subprocess.Popen(
            [str(BIN / "neuroflow"), "serve", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            start = time.perf_counter()
            with httpx.Client(base_url=url, timeout=30) as client:
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError((root / "serve.log").read_text()[-2000:])
                    try:
                        if client.get("/ping").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                startup_s = time.perf_counter() - start
                headers = {"Content-Type": "application/json"}

                def post(body: bytes) -> None:
                    response = client.post("/invocations", content=body, headers=headers)
                    response.raise_for_status()

                http_single = call_seconds(lambda: post(body_one), n_single, warmup)
                http_batch = call_seconds(lambda: post(body_batch), n_batch, max(2, warmup // 10))
        finally:
            stop_process(proc, timeout=10)
            log.close()

    def rows_per_s(samples: list[float]) -> float:
        return round(1024 / statistics.median(samples), 1)

    return {
        "benchmark": "serving",
        "smoke": smoke,
        "machine": machine(("onnxruntime", "fastapi", "uvicorn")),
        "model": "breast-cancer raw rows (30 numeric inputs) → MLP [32, 16] tanh, ONNX, CPU",
        "requests": {"batch1": n_single, "batch1024": n_batch, "warmup": warmup},
        "cpu_count": os.cpu_count(),
        "http": {
            "server_startup_s": round(startup_s, 3),
            "batch1": _percentiles(http_single),
            "batch1024": {**_percentiles(http_batch), "rows_per_s": rows_per_s(http_batch)},
        },
        "in_process": {
            "onnxruntime_batch1": _percentiles(ort_single),
            "onnxruntime_batch1024": {
                **_percentiles(ort_batch),
                "rows_per_s": rows_per_s(ort_batch),
            },
            "request_path_no_http_batch1": _percentiles(request_path),
        },
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--smoke", action="store_true")
    print(json.dumps(run(parser.parse_args().smoke), indent=2))
