"""Promotion gate, ledger, rollback and locking against a real MLflow SQLite registry.

Versions are small real ONNX models (raw rows in, the export stage's graph) built from tiny MLPs
trained for a few full-batch steps on the bundled breast-cancer data plus a categorical `site`
column, and registered the way the export stage registers them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
import yaml
from tests.sqlite_lock import RETRY_LINE, exclusive_lock, no_wait, run_until_retried

from neuroflow.config import Params
from neuroflow.registry import ledger, promotion
from neuroflow.registry.artifacts import EvaluationSetError, RegistryError, sha256

NAME = "registry-test-model"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    rng = np.random.default_rng(0)
    frame["site"] = rng.choice(np.asarray(["north", "south", "east"], dtype=object), len(frame))
    order = rng.permutation(len(frame))
    return frame.iloc[order[150:]].reset_index(drop=True), frame.iloc[order[:150]].reset_index(
        drop=True
    )


def _train(
    train: pd.DataFrame, *, steps: int, seed: int, label_noise: float, permute: bool = False
) -> onnx.ModelProto:
    """`permute`: the same function with its hidden units reordered (different weights, the
    same predictions up to float rounding)."""
    import torch

    from neuroflow.export.onnx_graph import build_onnx_model
    from neuroflow.features.transform import PreprocessOptions, fit_preprocessor
    from neuroflow.models.factory import InferenceHead
    from neuroflow.models.mlp import MLP
    from neuroflow.models.spec import ModelSpec

    features = train.drop(columns=["target"])
    numeric = [c for c in features.columns if c != "site"]
    pre = fit_preprocessor(
        features,
        train["target"],
        numeric=numeric,
        categorical=["site"],
        options=PreprocessOptions(),
        classification=True,
    )
    y = train["target"].to_numpy().copy()
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y)) < label_noise
    y[flip] = 1 - y[flip]
    torch.set_num_threads(1)  # a tiny full-batch MLP: threads only add contention
    spec = ModelSpec("mlp", "binary", pre.output_dim, 2, hidden=[8], classes=[0, 1])
    torch.manual_seed(seed)
    net = MLP(spec.input_dim, 2, spec.hidden)
    x, t = torch.from_numpy(pre.transform(features)), torch.from_numpy(y).long()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), t).backward()
        opt.step()
    if permute:
        first, last = (m for m in net.modules() if isinstance(m, torch.nn.Linear))
        order = torch.arange(first.out_features).flip(0)
        with torch.no_grad():
            first.weight.copy_(first.weight[order])
            first.bias.copy_(first.bias[order])
            last.weight.copy_(last.weight[:, order])
    return build_onnx_model(pre, InferenceHead(net, spec).eval(), spec)


@pytest.fixture(scope="module")
def models(data: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, onnx.ModelProto]:
    train, _ = data
    return {
        "good": _train(train, steps=150, seed=1, label_noise=0.0),
        "ok": _train(train, steps=40, seed=2, label_noise=0.3),
        "ok_permuted": _train(train, steps=40, seed=2, label_noise=0.3, permute=True),
        "noise": _train(train, steps=150, seed=3, label_noise=0.5),  # learned nothing real
    }


class Store:
    """A project root with a SQLite MLflow store and the frozen raw test split."""

    def __init__(
        self, root: Path, test: pd.DataFrame, uri: str | None = None, **promotion_cfg: Any
    ) -> None:
        import mlflow

        self.root = root
        self.uri = uri or f"sqlite:///{root / 'mlflow.db'}"
        self.test = test
        self.test_path = root / "data" / "raw" / "test.parquet"
        self.test_path.parent.mkdir(parents=True)
        test.to_parquet(self.test_path, index=False)
        cfg = {"metric": "roc_auc", "bootstrap": 300, "slices": ["site"], **promotion_cfg}
        self.params = Params.model_validate(
            {"registry": {"model_name": NAME}, "promotion": cfg, "seed": 0}
        )
        (root / "params.yaml").write_text(
            yaml.safe_dump(self.params.model_dump(by_alias=True, mode="json"))
        )
        mlflow.set_tracking_uri(self.uri)
        self.client = mlflow.MlflowClient(self.uri, self.uri)

    def register(
        self, model: onnx.ModelProto, *, eval_artifact: bool = True, dedupe: bool = True
    ) -> str:
        """Log + register through the export stage's code: content hash, tags, @challenger,
        eval rows. `dedupe=False` registers the way older releases did (no content hash)."""
        import mlflow
        import mlflow.onnx

        from neuroflow.export.onnx_graph import mlflow_signature
        from neuroflow.registry.register import content_hash, register_challenger
        from neuroflow.stages.export import pip_requirements

        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        experiment = mlflow.get_experiment_by_name("neuroflow")
        local = self.uri.startswith("sqlite:")  # a server keeps its own artifact store
        exp_id = (
            experiment.experiment_id
            if experiment
            else mlflow.create_experiment(
                "neuroflow", artifact_location=(self.root / "mlruns").as_uri() if local else None
            )
        )
        example = self.test.drop(columns=["target"]).head(5)
        run_id = self.client.create_run(exp_id).info.run_id

        def log_model() -> Any:
            with mlflow.start_run(run_id=run_id):
                info = mlflow.onnx.log_model(
                    model,
                    name="model",
                    signature=mlflow_signature(model, example),
                    pip_requirements=pip_requirements(),
                    save_as_external_data=False,
                    onnx_execution_providers=["CPUExecutionProvider"],
                    registered_model_name=None if dedupe else NAME,
                )
                if eval_artifact:  # what export logs: the raw test split as eval/test.parquet
                    mlflow.log_artifact(str(self.test_path), "eval")
            return info

        tags = {"data.test_sha256": sha256(self.test_path)}
        if not dedupe:
            version = str(log_model().registered_model_version)
            self.client.set_registered_model_alias(NAME, "challenger", version)
            self.client.set_model_version_tag(
                NAME, version, "data.test_sha256", tags["data.test_sha256"]
            )
            return version
        registered = register_challenger(
            self.client,
            name=NAME,
            run_id=run_id,
            digest=content_hash(model.SerializeToString(), {"test": "preprocessing"}),
            tags=tags,
            log_model=log_model,
        )
        return registered.version

    def champion(self) -> str | None:
        version = self.client.get_registered_model(NAME).aliases.get("champion")
        return None if version is None else str(version)

    def cli(
        self,
        *args: str,
        check: bool = True,
        env: dict[str, str] | None = None,
        lock: subprocess.Popen[str] | None = None,
        until: Callable[[], bool] = no_wait,
    ) -> subprocess.CompletedProcess[str]:
        """`neuroflow ARGS`; with `lock` (a holder of the store's lock), released once the
        command logs a retry after MLflow's first wait and `until()` holds."""
        from tests.conftest import clean_env

        # The test run's environment (one warm server serves all its commands), this store.
        env = clean_env(self.root, MLFLOW_TRACKING_URI=self.uri, **(env or {}))
        command = [str(BIN / "neuroflow"), *args]
        if lock is not None:
            proc = run_until_retried(
                lock, command, cwd=self.root, env=env, timeout=180, until=until
            )
        else:
            proc = subprocess.run(
                command, cwd=self.root, env=env, capture_output=True, text=True, timeout=180
            )
        if check and proc.returncode not in (0, 3):
            raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        return proc


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty MLflow database: copying it beats re-running the migrations per test."""
    import mlflow

    folder = tmp_path_factory.mktemp("template")
    db = folder / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def store(
    tmp_path: Path,
    data: tuple[pd.DataFrame, pd.DataFrame],
    empty_db: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Store:
    shutil.copy2(empty_db, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    # A SQLite store puts new experiments' artifacts under ./mlruns: keep them in tmp_path.
    monkeypatch.chdir(tmp_path)
    return Store(tmp_path, data[1], thresholds={"binary": {"accuracy": 0.7}})


# --------------------------------------------------------------------------- the gate


def test_gate_first_better_worse_dry_run_and_rollback(
    store: Store, models: dict[str, onnx.ModelProto]
) -> None:
    p, root = store.params, store.root
    # No champion: absolute thresholds decide; a model that learned nothing is rejected.
    v1 = store.register(models["noise"])
    first = promotion.promote(p, root)
    assert first.decision == "rejected" and "threshold accuracy" in first.message
    assert not first.would_promote
    assert store.champion() is None

    v2 = store.register(models["ok"])
    out = promotion.promote(p, root)
    assert out.decision == "promoted" and store.champion() == v2
    assert out.would_promote  # the gate's decision, the same key as a dry run's JSON
    assert out.gate is not None and out.gate.comparison is None and out.gate.thresholds

    # A better challenger, judged on the same frozen rows (paired), with slices by site.
    v3 = store.register(models["good"])
    dry = promotion.promote(p, root, dry_run=True)
    assert dry.decision == "dry_run" and dry.would_promote
    assert store.champion() == v2 and len(ledger.entries(store.client, NAME)) == 2
    out = promotion.promote(p, root)
    assert out.decision == "promoted", out.message
    assert store.champion() == v3
    comparison = out.gate.comparison  # type: ignore[union-attr]
    assert comparison is not None and comparison.challenger > comparison.champion
    assert comparison.rows == len(store.test)
    names = {s.name for s in out.gate.slices}  # type: ignore[union-attr]
    assert {"class=0", "class=1", "site=north", "site=south", "site=east"} <= names
    assert out.evaluation["source"].endswith("eval/test.parquet")
    assert out.evaluation["sha256"] == sha256(store.test_path)

    # Promoting again is a no-op, not a second decision.
    assert promotion.promote(p, root).decision == "noop"

    # A worse challenger is rejected and recorded; the champion stays.
    v4 = store.register(models["noise"])
    out = promotion.promote(p, root)
    assert out.decision == "rejected" and "confidence" in out.message
    assert store.champion() == v3
    tags = store.client.get_model_version(NAME, v4).tags
    assert tags["promotion.decision"] == "rejected"
    assert tags["promotion.ledger_run_id"] == out.ledger_run_id

    # Rollback: back to the previous champion (v2), recorded; then nothing earlier remains.
    back = promotion.rollback(p, root, reason="latency regression in production")
    assert back.champion_before == v3 and back.champion_after == v2
    assert store.champion() == v2
    with pytest.raises(RegistryError, match="first champion"):
        promotion.rollback(p, root)

    entries = ledger.entries(store.client, NAME)
    assert [
        (e.seq, e.action, e.decision, e.challenger, e.champion_before, e.champion_after)
        for e in entries
    ] == [
        (1, "promote", "rejected", v1, "", ""),
        (2, "promote", "promoted", v2, "", v2),
        (3, "promote", "promoted", v3, v2, v3),
        (4, "promote", "rejected", v4, v3, v3),
        (5, "rollback", "rolled_back", "", v3, v2),
    ]
    assert all(e.status == "FINISHED" and e.decided_by and e.decided_at for e in entries)
    assert entries[4].reason == "latency regression in production"
    assert entries[2].ci_low is not None and entries[2].improvement is not None

    # Each decision is an MLflow run in the `promotions` experiment with its evidence.
    run = store.client.get_run(entries[2].run_id)
    exp = store.client.get_experiment(run.info.experiment_id)
    assert exp.name == "promotions"
    assert run.data.params["metric"] == "roc_auc"
    assert "ci_low" in run.data.metrics and "champion_roc_auc" in run.data.metrics
    evidence = json.loads(
        Path(
            store.client.download_artifacts(run.info.run_id, "evidence.json", str(root))
        ).read_text()
    )
    assert evidence["gate"]["promote"] is True and evidence["challenger"] == v3
    # No environment variables or secrets in the ledger.
    logged = json.dumps([run.data.tags, run.data.params, evidence])
    assert "MLFLOW_TRACKING_URI" not in logged and "PATH=" not in logged


def champion_then_challenger(store: Store, models: dict[str, onnx.ModelProto]) -> str:
    """`ok` registered and promoted (the champion), then `good` registered: its version."""
    store.register(models["ok"])
    promotion.promote(store.params, store.root)
    return store.register(models["good"])


def test_cli_promotions_dry_run_and_rollback(
    store: Store, models: dict[str, onnx.ModelProto]
) -> None:
    champion_then_challenger(store, models)

    dry = store.cli("promote", "--dry-run", "--json")
    evidence = json.loads(dry.stdout)
    assert evidence["decision"] == "dry_run" and evidence["would_promote"] is True
    assert evidence["gate"]["comparison"]["metric"] == "roc_auc"
    assert store.champion() == "1"

    promoted = store.cli("promote")
    assert promoted.returncode == 0 and "promoted" in promoted.stdout
    assert store.champion() == "2"
    store.register(models["noise"])
    assert promotion.promote(store.params, store.root).decision == "rejected"
    assert store.cli("rollback", "--reason", "bad canary").returncode == 0
    assert store.champion() == "1"

    table = store.cli("promotions").stdout
    for decision in ("promoted", "rejected", "rolled_back", "bad canary", "v2 → v1"):
        assert decision in table, table


def test_eval_rows_fall_back_to_the_raw_split_with_a_hash_check(
    store: Store, models: dict[str, onnx.ModelProto]
) -> None:
    store.register(models["ok"], eval_artifact=False)
    out = promotion.promote(store.params, store.root, dry_run=True)
    assert out.evaluation["source"] == str(store.test_path)
    # Changed rows must never be silently used as the frozen evaluation set.
    store.test.head(100).to_parquet(store.test_path, index=False)
    with pytest.raises(EvaluationSetError, match=r"sha256 .* != data\.test_sha256"):
        promotion.promote(store.params, store.root, dry_run=True)


# --------------------------------------------------------------------------- concurrency


def test_two_promoters_racing_leave_one_consistent_decision(
    store: Store, models: dict[str, onnx.ModelProto]
) -> None:
    challenger = champion_then_challenger(store, models)

    from tests.conftest import clean_env

    env = clean_env(store.root, MLFLOW_TRACKING_URI=store.uri)
    procs = [
        subprocess.Popen(
            [str(BIN / "neuroflow"), "promote", "--json"],
            cwd=store.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout)["decision"])
    # One process promoted; the other, serialised behind it, found nothing left to do.
    assert sorted(results) == ["noop", "promoted"]
    assert store.champion() == challenger
    entries = ledger.entries(store.client, NAME)
    assert [e.seq for e in entries] == [1, 2]
    assert [e.decision for e in entries] == ["promoted", "promoted"]
    assert ledger.champion_history(entries) == ["1", challenger]


def test_out_of_band_alias_change_aborts_the_write(
    store: Store, models: dict[str, onnx.ModelProto], monkeypatch: pytest.MonkeyPatch
) -> None:
    champion_then_challenger(store, models)
    real_evaluate = promotion.evaluate

    def evaluate_while_someone_moves_the_alias(*args: Any, **kwargs: Any) -> Any:
        result = real_evaluate(*args, **kwargs)
        store.client.set_registered_model_alias(NAME, "champion", "2")  # bypasses the lock
        return result

    monkeypatch.setattr(promotion, "evaluate", evaluate_while_someone_moves_the_alias)
    with pytest.raises(ledger.ConcurrentChangeError, match="without the promotion lock"):
        promotion.promote(store.params, store.root)
    assert len(ledger.entries(store.client, NAME)) == 1  # nothing recorded for the stale decision


def test_registry_lock_excludes_a_second_holder(store: Store) -> None:
    """The lock used for remote tracking servers: an atomic create of a registered model."""
    inside: list[int] = []
    overlaps: list[bool] = []

    def hold(worker: int) -> None:
        import mlflow

        client = mlflow.MlflowClient(store.uri, store.uri)
        with ledger._registry_lock(client, f"{NAME}.promotion-lock", timeout=30):
            overlaps.append(bool(inside))
            inside.append(worker)
            time.sleep(0.3)
            inside.remove(worker)

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [False, False, False]
    names = [m.name for m in store.client.search_registered_models()]
    assert f"{NAME}.promotion-lock" not in names  # released


def test_registry_lock_times_out_naming_the_holder(store: Store) -> None:
    store.client.create_registered_model(
        f"{NAME}.promotion-lock", tags={"holder": "ci@builder", "acquired_at": "earlier"}
    )
    lock = ledger._registry_lock(store.client, f"{NAME}.promotion-lock", timeout=0.5)
    with pytest.raises(ledger.LockTimeoutError, match=r"ci@builder"), lock:
        pass


def test_lock_file_sits_beside_a_local_store(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    assert ledger.lock_file(f"sqlite:///{db}") == tmp_path / "mlflow.db.promotion.lock"
    assert ledger.lock_file(f"file://{tmp_path}/mlruns") == tmp_path / "mlruns" / ".promotion.lock"
    assert ledger.lock_file("http://127.0.0.1:5000") is None
    assert ledger.lock_file("postgresql://db/mlflow") is None


# --------------------------------------------------------------------------- equal is not better


def test_equal_challenger_is_rejected_as_no_improvement(
    store: Store, models: dict[str, onnx.ModelProto]
) -> None:
    p, root = store.params, store.root
    v1 = store.register(models["ok"])
    assert promotion.promote(p, root).decision == "promoted"

    # The same weights registered again (as releases before content hashing did).
    v2 = store.register(models["ok"], dedupe=False)
    assert v2 != v1
    out = promotion.promote(p, root)
    assert out.decision == "rejected" and store.champion() == v1
    assert "no improvement: the predictions equal the champion's" in out.message
    assert out.gate is not None and out.gate.comparison is not None
    assert out.gate.comparison.identical and out.gate.comparison.improvement == 0

    # Different weights (hidden units permuted), identical predictions: a new content hash, so
    # a new version, and the gate still sees no improvement.
    v3 = store.register(models["ok_permuted"])
    assert v3 not in (v1, v2)
    out = promotion.promote(p, root)
    assert out.decision == "rejected" and store.champion() == v1
    assert "no improvement" in out.message
    decisions = [e.decision for e in ledger.entries(store.client, NAME)]
    assert decisions == ["promoted", "rejected", "rejected"]


# --------------------------------------------------------------------------- rollback sticks


def test_rolled_back_version_needs_an_explicit_override(
    store: Store, models: dict[str, onnx.ModelProto]
) -> None:
    v1 = store.register(models["ok"])
    assert promotion.promote(store.params, store.root).decision == "promoted"
    v2 = store.register(models["good"])
    assert store.cli("promote").returncode == 0 and store.champion() == v2
    assert store.cli("rollback", "--reason", "canary error rate 4%").returncode == 0
    assert store.champion() == v1
    tags = store.client.get_model_version(NAME, v2).tags
    assert tags["promotion.rolled_back"] == "canary error rate 4%"

    # @challenger still points at v2: promoting it again is refused, naming the rollback.
    again = store.cli("promote")
    assert again.returncode == 3 and store.champion() == v1
    assert "canary error rate 4%" in again.stdout and "--allow-rolled-back" in again.stdout
    refused = ledger.entries(store.client, NAME)[-1]
    assert refused.decision == "rejected" and "rolled_back" in refused.reason

    no_reason = store.cli("promote", "--allow-rolled-back", check=False)
    assert no_reason.returncode not in (0, 3) and "--reason" in no_reason.stderr
    assert store.champion() == v1

    allowed = store.cli(
        "promote", "--allow-rolled-back", "--reason", "fixed upstream feed", "--json"
    )
    out = json.loads(allowed.stdout)
    assert out["decision"] == "promoted" and store.champion() == v2
    assert out["override"] == "fixed upstream feed"
    last = ledger.entries(store.client, NAME)[-1]
    assert (last.decision, last.challenger, last.override) == (
        "promoted",
        v2,
        "fixed upstream feed",
    )
    run = store.client.get_run(last.run_id)
    assert run.data.tags["neuroflow.ledger.override"] == "fixed upstream feed"


# ------------------------------------------------------------------------ one version per content


def test_identical_content_registers_one_version(
    store: Store, models: dict[str, onnx.ModelProto]
) -> None:
    from neuroflow.registry.register import RUN_REUSED_TAG, RUN_VERSION_TAG

    v1 = store.register(models["ok"])
    v2 = store.register(models["good"])  # changed weights: a new version
    assert (v1, v2) == ("1", "2")
    assert str(store.client.get_registered_model(NAME).aliases["challenger"]) == v2
    again = store.register(models["ok"])  # a re-export of v1's content
    assert again == v1
    assert str(store.client.get_registered_model(NAME).aliases["challenger"]) == v1
    versions = store.client.search_model_versions(f"name = '{NAME}'")
    assert sorted(str(mv.version) for mv in versions) == ["1", "2"]
    assert len({mv.tags["content.sha256"] for mv in versions}) == 2
    experiment = store.client.get_experiment_by_name("neuroflow")
    assert experiment is not None
    runs = store.client.search_runs([experiment.experiment_id])
    reused = [r for r in runs if r.data.tags.get(RUN_REUSED_TAG) == "true"]
    assert len(reused) == 1 and reused[0].data.tags[RUN_VERSION_TAG] == v1


# --------------------------------------------------------------------------- dry run


def test_dry_run_prints_the_evidence_table_and_json(
    store: Store, models: dict[str, onnx.ModelProto]
) -> None:
    champion_then_challenger(store, models)
    text = store.cli("promote", "--dry-run").stdout
    rows = ("metric", "champion", "challenger", "delta", "interval", "slices", "decision", "reason")
    for row in rows:
        assert f"│ {row}" in text, text
    assert "roc_auc (higher is better)" in text and "dry run: would promote" in text
    evidence = json.loads(store.cli("promote", "--dry-run", "--json").stdout)
    assert list(evidence["summary"]) == list(rows)
    assert evidence["summary"]["decision"] == "dry run: would promote"
    assert evidence["gate"]["comparison"]["ci_low"] > evidence["gate"]["min_delta"] > 0
    assert store.champion() == "1"


# --------------------------------------------------------------------------- a tracking server


def test_registry_against_a_real_mlflow_server(
    tmp_path: Path,
    data: tuple[pd.DataFrame, pd.DataFrame],
    models: dict[str, onnx.ModelProto],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Content dedupe, the lease lock, rollback and its override over MLflow's REST API."""
    from tests.conftest import mlflow_server

    server_dir = tmp_path / "server"
    server_dir.mkdir()
    with mlflow_server(
        f"sqlite:///{server_dir / 'server.db'}", server_dir / "artifacts", server_dir / "log"
    ) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.chdir(tmp_path)
        store = Store(tmp_path, data[1], uri=url, thresholds={"binary": {"accuracy": 0.7}})
        p, root = store.params, store.root
        v1 = store.register(models["ok"])
        assert store.register(models["ok"]) == v1  # found by its content hash over REST
        assert promotion.promote(p, root).decision == "promoted"
        v2 = store.register(models["good"])
        assert promotion.promote(p, root).decision == "promoted" and store.champion() == v2
        promotion.rollback(p, root, reason="p99 latency")
        assert store.champion() == v1
        refused = promotion.promote(p, root)
        assert refused.decision == "rejected" and "p99 latency" in refused.message
        allowed = promotion.promote(p, root, allow_rolled_back=True, reason="latency fixed")
        assert allowed.decision == "promoted" and store.champion() == v2
        entries = ledger.entries(store.client, NAME)
        assert [e.decision for e in entries] == [
            "promoted",
            "promoted",
            "rolled_back",
            "rejected",
            "promoted",
        ]
        assert entries[-1].override == "latency fixed"
        names = [m.name for m in store.client.search_registered_models()]
        assert f"{NAME}.promotion-lock" not in names  # the lease was released every time


# --------------------------------------------------------------------------- a busy store


def test_promote_on_a_locked_store_retries_then_fails_naming_it(
    store: Store, models: dict[str, onnx.ModelProto]
) -> None:
    """MLflow waits 20 s per attempt; neuroflow retries within NEUROFLOW_STORE_RETRY_S.

    Two promotes meet one lock: one with a 3 s budget gives up after MLflow's first wait, the
    other retries past it and promotes once the lock is released (after the first has failed).
    """
    from concurrent.futures import ThreadPoolExecutor

    store.register(models["ok"])
    db = store.root / "mlflow.db"
    with exclusive_lock(db, seconds=300) as holder, ThreadPoolExecutor(1) as pool:
        failing = pool.submit(
            store.cli, "promote", check=False, env={"NEUROFLOW_STORE_RETRY_S": "3"}
        )
        held = store.cli("promote", lock=holder, until=failing.done)
    past = failing.result()
    assert past.returncode not in (0, 3)
    line = past.stderr.strip().splitlines()[-1]
    assert store.uri in line and "database is locked" in line, past.stderr[-2000:]
    assert "Traceback" not in past.stderr
    assert "promoted" not in past.stdout

    # The other waited past MLflow's first 20 s attempt, until the lock was released.
    assert held.returncode == 0 and "promoted" in held.stdout, held.stderr[-2000:]
    assert RETRY_LINE in held.stderr
    # One promotion in the ledger: the one that gave up wrote nothing.
    assert store.champion() == "1" and len(ledger.entries(store.client, NAME)) == 1
