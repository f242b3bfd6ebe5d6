"""The training engine: learns, is deterministic, resumes to identical weights, never unpickles."""

import dataclasses
import io
import logging
import pickle
import sys
from pathlib import Path

import pytest
import torch

from neuroflow.models.factory import build_model
from neuroflow.models.spec import ModelSpec
from neuroflow.training.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    load_checkpoint,
)
from neuroflow.training.engine import TensorSplits, TrainSettings, fit


def blobs(n: int = 256, seed: int = 0) -> TensorSplits:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    cut = int(n * 0.75)
    return TensorSplits(x[:cut], y[:cut], x[cut:], y[cut:])


SPEC = ModelSpec(type="mlp", task="binary", input_dim=6, output_dim=2, hidden=[16], dropout=0.1)
SETTINGS = TrainSettings(
    epochs=8,
    batch_size=32,
    lr=1e-2,
    patience=100,
    scheduler="step",
    step_size=3,
    device="cpu",
    seed=3,
)


def trained(settings: TrainSettings = SETTINGS, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(SPEC)
    fit(model, blobs(), settings, **kw)  # type: ignore[arg-type]
    return model


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_loss_falls_and_accuracy_rises() -> None:
    torch.manual_seed(0)
    model = build_model(SPEC)
    result = fit(model, blobs(), SETTINGS)
    first, last = result.history[0], result.history[-1]
    assert last.train_loss < first.train_loss
    assert max(r.val_accuracy or 0 for r in result.history) > 0.9


def test_same_seed_same_weights() -> None:
    assert same_weights(trained(), trained())


def test_early_stopping_restores_best_epoch() -> None:
    settings = TrainSettings(epochs=200, batch_size=32, lr=5e-2, patience=3, device="cpu")
    torch.manual_seed(0)
    result = fit(build_model(SPEC), blobs(), settings)
    assert result.stopped_early and len(result.history) < 200
    best = min(result.history, key=lambda r: r.val_loss)
    assert result.best_epoch == best.epoch


class SimulatedCrashError(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted(tmp_path: Path) -> None:
    reference = trained()

    def crash_at_5(record: object) -> None:
        if getattr(record, "epoch", 0) == 5:
            raise SimulatedCrashError

    torch.manual_seed(0)
    model = build_model(SPEC)
    with pytest.raises(SimulatedCrashError):
        fit(model, blobs(), SETTINGS, checkpoint_dir=tmp_path, fingerprint="f", on_epoch=crash_at_5)
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME).epoch == 5

    torch.manual_seed(123)  # a different init: everything must come from the checkpoint
    resumed = build_model(SPEC)
    result = fit(resumed, blobs(), SETTINGS, checkpoint_dir=tmp_path, fingerprint="f")
    assert result.resumed_from == 5 and len(result.history) == SETTINGS.epochs
    assert same_weights(reference, resumed)


def test_checkpoint_of_another_config_is_not_resumed(tmp_path: Path) -> None:
    trained(checkpoint_dir=tmp_path, fingerprint="old")
    torch.manual_seed(0)
    result = fit(build_model(SPEC), blobs(), SETTINGS, checkpoint_dir=tmp_path, fingerprint="new")
    assert result.resumed_from == 0


class _Payload:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.sentinel}",))


def test_planted_pickle_checkpoint_is_refused_and_never_runs(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    (tmp_path / CHECKPOINT_NAME).write_bytes(pickle.dumps(_Payload(sentinel)))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / CHECKPOINT_NAME)
    # The engine ignores the bad file and trains from scratch.
    torch.manual_seed(0)
    result = fit(build_model(SPEC), blobs(), SETTINGS, checkpoint_dir=tmp_path, fingerprint="f")
    assert result.resumed_from == 0
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("optimizer", "scheduler"),
    [("adam", "plateau"), ("adamw", "cosine"), ("sgd", "step"), ("rmsprop", "none")],
)
def test_optimizers_and_schedulers_learn(optimizer: str, scheduler: str) -> None:
    settings = TrainSettings(
        epochs=5,
        batch_size=32,
        lr=1e-2,
        optimizer=optimizer,
        scheduler=scheduler,
        grad_clip=1.0,
        l1=1e-5,
        device="cpu",
    )
    torch.manual_seed(0)
    result = fit(build_model(SPEC), blobs(), settings)
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_engine_imports_torch_and_numpy_only() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import neuroflow.training.engine, neuroflow.models.factory;"
        "bad=[m for m in ('mlflow','prefect','great_expectations','pandas','pydantic','dvc')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.gpu
def test_cuda_training_with_bf16_autocast() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine; runs on the GPU host")
    settings = TrainSettings(epochs=5, batch_size=32, lr=1e-2, device="cuda")
    torch.manual_seed(0)
    result = fit(build_model(SPEC), blobs(), settings)
    assert result.device.startswith("cuda")
    assert result.history[-1].train_loss < result.history[0].train_loss


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_with_eta_on_a_terminal_and_log_lines_otherwise(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from rich.progress import Progress, TimeRemainingColumn

    from neuroflow.training.engine import EpochRecord, _Progress

    record = EpochRecord(epoch=1, train_loss=0.5, val_loss=0.4, lr=1e-3, val_accuracy=0.9)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # CI, DVC, Prefect: not a terminal
    with caplog.at_level(logging.INFO, logger="neuroflow.training.engine"):
        plain = _Progress(total=3, done=0)
        plain.update(record, 3)
        plain.close()
    assert "epoch 1/3 loss=0.5000 val_loss=0.4000 val_acc=0.9000" in caplog.text

    caplog.clear()
    monkeypatch.setattr(sys, "stderr", _Terminal())
    with caplog.at_level(logging.INFO, logger="neuroflow.training.engine"):
        bar = _Progress(total=3, done=0)
        bar.update(record, 3)
        bar.close()
    assert isinstance(bar._bar, Progress)
    assert any(isinstance(c, TimeRemainingColumn) for c in bar._bar.columns)  # the ETA
    assert bar._bar.tasks[0].completed == 1 and "epoch 1/3" not in caplog.text


def test_checkpoints_are_spaced_in_time_and_the_last_epoch_is_always_kept(
    tmp_path: Path,
) -> None:
    ckpt = tmp_path / CHECKPOINT_NAME
    saved: list[int] = []  # the checkpoint's epoch as each epoch ends (0 = none yet)

    def note(_: object) -> None:
        saved.append(load_checkpoint(ckpt).epoch if ckpt.exists() else 0)

    # Millisecond epochs and an hour's interval: the final epoch alone is written.
    run = dict(checkpoint_dir=tmp_path, fingerprint="f", on_epoch=note)
    fit(build_model(SPEC), blobs(), SETTINGS, checkpoint_every_s=3600, **run)
    assert saved == [0] * (len(saved) - 1) + [len(saved)]

    ckpt.unlink()
    saved.clear()
    fit(build_model(SPEC), blobs(), SETTINGS, **run)  # interval 0: after every epoch
    assert saved == list(range(1, len(saved) + 1))


def test_thread_probe_honours_a_request_and_leaves_the_model_untouched() -> None:
    from neuroflow.training.device import pick_cpu_threads

    torch.manual_seed(0)
    model = build_model(SPEC).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert pick_cpu_threads(model, blobs().x_val, requested=3) == 3
        assert pick_cpu_threads(model, blobs().x_val) in (1, 2)
        assert torch.get_num_threads() == 2  # the probe gives the setting back
    finally:
        torch.set_num_threads(threads)
    assert model.training  # dropout still on: the probe ran in eval mode and switched back
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_thread_count_changes_speed_not_weights() -> None:
    # runtime.cpu_threads is outside every stage's DVC params: one or two threads must give
    # the same trained bits, and fit must hand the process's thread setting back.
    threads = torch.get_num_threads()
    models, used = [], []
    for n in (1, 2):
        torch.manual_seed(0)
        model = build_model(SPEC)
        settings = dataclasses.replace(SETTINGS, threads=n)
        used.append(fit(model, blobs(), settings).threads)
        models.append(model)
        assert torch.get_num_threads() == threads
    assert used == [1, 2]
    assert same_weights(*models)
