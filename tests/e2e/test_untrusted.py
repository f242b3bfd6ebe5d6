"""Untrusted files and leaks: planted pickles are refused without running, registered artifacts
hold no pickle, servers bind loopback, and no environment secret reaches MLflow."""

from __future__ import annotations

import ast
import os
import pickle
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import REPO, SECRET_VAR, SharedRun, run

PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt"}


class Payload:
    """Unpickling this creates `path`: proof that a loader executed the pickle."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def plant(target: Path, sentinel: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pickle.dumps(Payload(sentinel), protocol=4))
    assert target.read_bytes()[:2] == b"\x80\x04"
    assert not sentinel.exists()


def is_pickle(path: Path) -> bool:
    """A pickle by name or by its protocol-2+ opening bytes (0x80, protocol 2–5)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    head = path.read_bytes()[:2]
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


# --- planted pickles ------------------------------------------------------------------------


def test_pickle_planted_as_checkpoint_is_refused_and_training_starts_fresh(tmp_path: Path) -> None:
    import torch
    from torch import nn

    from neuroflow.training.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
    from neuroflow.training.engine import TensorSplits, TrainSettings, fit

    sentinel = tmp_path / "pwned"
    ckpt = tmp_path / "checkpoints" / CHECKPOINT_NAME
    plant(ckpt, sentinel)
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        load_checkpoint(ckpt)
    assert not sentinel.exists()

    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    result = fit(
        nn.Linear(4, 2),
        TensorSplits(x, y, x, y),
        TrainSettings(epochs=2, device="cpu", batch_size=16),
        checkpoint_dir=ckpt.parent,
        fingerprint="f",
    )
    assert result.resumed_from == 0 and len(result.history) == 2
    assert not sentinel.exists()
    assert load_checkpoint(ckpt).epoch == 2  # the planted file was replaced by a real one


def test_pickle_planted_as_model_weights_is_refused(tmp_path: Path) -> None:
    from neuroflow.models.spec import ModelSpec
    from neuroflow.models.store import load_network

    sentinel = tmp_path / "pwned"
    weights = tmp_path / "model.safetensors"
    plant(weights, sentinel)
    spec = ModelSpec(type="mlp", task="binary", input_dim=4, output_dim=2, hidden=[8])
    spec_path = tmp_path / "model_spec.json"
    spec_path.write_text(__import__("json").dumps(spec.to_json()))
    with pytest.raises(Exception, match=r"(?i)header|safetensor|deserializ"):
        load_network(weights, spec_path)
    assert not sentinel.exists()


def test_code_never_unpickles() -> None:
    """Static guard: nothing a model load touches may use pickle (directly or via torch/numpy)."""
    offenders = []
    patterns = {
        "pickle import": re.compile(r"^\s*(import|from)\s+(c?pickle|cloudpickle|dill|joblib)\b"),
        "torch.load without weights_only=True": re.compile(
            r"torch\.load\((?![^)]*weights_only=True)"
        ),
        "numpy allow_pickle": re.compile(r"allow_pickle\s*=\s*True"),
        "pandas read_pickle": re.compile(r"read_pickle\("),
    }
    for base in ("src", "pipelines"):
        for path in sorted((REPO / base).rglob("*.py")):
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                for what, pattern in patterns.items():
                    if pattern.search(line):
                        offenders.append(f"{path.relative_to(REPO)}:{lineno}: {what}")
    assert offenders == []


# --- servers bind loopback ------------------------------------------------------------------

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def test_servers_bind_loopback_by_default() -> None:
    problems = []
    for base in ("src", "pipelines"):
        for path in sorted((REPO / base).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and node.value in ("0.0.0.0", "::"):
                    problems.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    args = node.args.args + node.args.kwonlyargs
                    defaults = [None] * (len(node.args.args) - len(node.args.defaults))
                    defaults += node.args.defaults + node.args.kw_defaults
                    for arg, default in zip(args, defaults, strict=True):
                        if (
                            arg.arg == "host"
                            and isinstance(default, ast.Constant)
                            and default.value not in LOOPBACK
                        ):
                            problems.append(f"{path.relative_to(REPO)}: host={default.value!r}")
                if (
                    isinstance(node, ast.keyword)
                    and node.arg == "host"
                    and isinstance(node.value, ast.Constant)
                    and node.value.value not in LOOPBACK
                ):
                    problems.append(f"{path.relative_to(REPO)}: host={node.value.value!r}")
    makefile = (REPO / "Makefile").read_text()
    for host in re.findall(r"--host[ =](\S+)", makefile):
        if host not in LOOPBACK:
            problems.append(f"Makefile: --host {host}")
    assert "0.0.0.0" not in makefile
    assert problems == []
    ui = subprocess.run(
        ["make", "-n", "ui"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "mlflow ui --host 127.0.0.1" in ui


# --- a real pipeline run with a secret in the environment -----------------------------------


@pytest.fixture(scope="module")
def secret_run(shared_run: SharedRun) -> tuple[Path, str]:
    """The session's shared `dvc repro`: its environment held SECRET_VAR (see conftest)."""
    return shared_run.root, shared_run.secret


def _db_rows(root: Path) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "params": "SELECT key, value FROM params",
        "tags": "SELECT key, value FROM tags",
        "metrics": "SELECT key, value FROM metrics",
        "experiment_tags": "SELECT key, value FROM experiment_tags",
        "model_version_tags": "SELECT key, value FROM model_version_tags",
        "registered_model_tags": "SELECT key, value FROM registered_model_tags",
        "model_versions": "SELECT name, source, description, run_link FROM model_versions",
        "runs": "SELECT name, source_name, entry_point_name, artifact_uri FROM runs",
    }
    with sqlite3.connect(root / "mlflow.db") as db:
        return {name: db.execute(sql).fetchall() for name, sql in queries.items()}


@pytest.mark.slow
def test_no_environment_secret_reaches_mlflow(secret_run: tuple[Path, str]) -> None:
    root, secret = secret_run
    rows = _db_rows(root)
    assert rows["params"] and rows["tags"] and rows["metrics"] and rows["model_versions"]
    for table, values in rows.items():
        text = repr(values)
        assert secret not in text, table
        assert SECRET_VAR not in text, table
    artifacts = [p for p in (root / "mlruns").rglob("*") if p.is_file()]
    assert any(p.name == "model.onnx" for p in artifacts)
    for path in artifacts:
        data = path.read_bytes()
        assert secret.encode() not in data, path
        assert SECRET_VAR.encode() not in data, path


@pytest.mark.slow
def test_registered_and_exported_artifacts_hold_no_pickle(secret_run: tuple[Path, str]) -> None:
    import onnx

    root, _ = secret_run
    with sqlite3.connect(root / "mlflow.db") as db:
        locations = [Path(r[0]) for r in db.execute("SELECT storage_location FROM model_versions")]
    assert locations and all(loc.is_dir() for loc in locations)
    scanned = []
    for base in [*locations, root / "artifacts/export", root / "artifacts/model"]:
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            assert not is_pickle(path), path
            scanned.append(path)
    onnx_files = [p for p in scanned if p.suffix == ".onnx"]
    assert len(onnx_files) >= 2  # the exported file and the registered one
    for path in onnx_files:
        onnx.checker.check_model(onnx.load(str(path)))  # parses as ONNX protobuf, not a pickle


@pytest.mark.slow
def test_pickle_planted_in_a_pipeline_is_refused_by_evaluate(
    secret_run: tuple[Path, str], tmp_path: Path
) -> None:
    root = Path(shutil.copytree(secret_run[0], tmp_path / "project", symlinks=True))
    sentinel = tmp_path / "pwned"
    plant(root / "artifacts/model/model.safetensors", sentinel)
    proc = run(root, "neuroflow", "evaluate", check=False)
    assert proc.returncode != 0
    assert re.search(r"(?i)safetensors|header", proc.stderr), proc.stderr[-2000:]
    assert not sentinel.exists()
    assert os.environ.get(SECRET_VAR) is None  # the secret stayed in the child's environment


# --- advisory audit of the locked set -------------------------------------------------------


def _audit(tmp_path: Path, accepted: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEUROFLOW_AUDIT_OFFLINE": "1"}  # tests never reach the network
    if accepted is not None:
        path = tmp_path / "accepted.toml"
        path.write_text(accepted)
        env["NEUROFLOW_AUDIT_ACCEPTED"] = str(path)
    return subprocess.run(
        [sys.executable, str(REPO / ".ci/audit")], env=env, capture_output=True, text=True
    )


def _advisory(advisory_id: str, package: str, reason: str, *, review_by: str) -> str:
    """One entry of the accepted-advisories file, accepted on 2026-01-01."""
    return (
        f'[[advisory]]\nid = "{advisory_id}"\npackage = "{package}"\nreason = "{reason}"\n'
        f"accepted = 2026-01-01\nreview_by = {review_by}\n"
    )


def test_audit_checks_lock_and_accepted_advisories_offline(tmp_path: Path) -> None:
    proc = _audit(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pinned packages" in proc.stdout and "SKIPPED" in proc.stdout

    reason = "The vulnerable endpoint is only served by a public server; ours binds loopback."
    valid = _advisory("GHSA-2xr6-4f3q-xm5w", "mlflow", reason, review_by="2999-01-01")
    proc = _audit(tmp_path, valid)
    assert proc.returncode == 0, proc.stdout
    assert "1 accepted" in proc.stdout

    bad = _advisory("not-an-id", "left-pad", "ok", review_by="2026-01-02")
    proc = _audit(tmp_path, bad)
    assert proc.returncode == 2
    for text in ("not an advisory id", "'left-pad' is not pinned", "reason must say", "due for"):
        assert text in proc.stdout, proc.stdout
    proc = _audit(tmp_path, "[[advisory]]\nid = 'GHSA-2xr6-4f3q-xm5w'\n")
    assert proc.returncode == 2 and "missing ['accepted', 'package', 'reason', 'review_by']" in (
        proc.stdout
    )
