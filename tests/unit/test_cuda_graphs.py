"""The CUDA-graph training step: when it is captured, which batches replay it, and that training
on CPU is untouched. The GPU tests compare it with eager training where a CUDA device exists."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from neuroflow.config import ParamsError, load_params
from neuroflow.models.factory import build_model
from neuroflow.models.spec import ModelSpec
from neuroflow.training import cuda_graph
from neuroflow.training.cuda_graph import (
    CudaGraphError,
    GraphedStep,
    batch_mismatch,
    capture_rows,
    plan_capture,
)
from neuroflow.training.engine import TensorSplits, TrainSettings, fit

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine; runs on the GPU host"
)


def blobs(n: int = 300, features: int = 6, seed: int = 0) -> TensorSplits:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    cut = int(n * 0.75)
    return TensorSplits(x[:cut], y[:cut], x[cut:], y[cut:])


SPEC = ModelSpec(type="mlp", task="binary", input_dim=6, output_dim=2, hidden=[16])


# ------------------------------------------------------------------------ the decision


def test_auto_on_cpu_trains_eagerly_and_says_why() -> None:
    plan = plan_capture("auto", device_type="cpu", optimizer="adamw")
    assert not plan.capture
    assert "training runs on cpu" in plan.reason and "CUDA device" in plan.reason


def test_auto_on_cuda_captures_a_fused_adam_step() -> None:
    for optimizer in ("adam", "adamw"):
        plan = plan_capture("auto", device_type="cuda", optimizer=optimizer)
        assert plan.capture and "train.cuda_graphs=auto" in plan.reason


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"step_hook": True}, "its own step (the GAN's adversarial step)"),
        ({"distributed": True}, "distributed training"),
        ({"optimizer": "sgd"}, "train.optimizer=sgd has no capturable step here"),
        ({"optimizer": "rmsprop"}, "train.optimizer=rmsprop has no capturable step here"),
        ({"fused": False}, "the optimiser is not fused"),
    ],
)
def test_what_cannot_be_captured_trains_eagerly_under_auto_and_is_an_error_under_on(
    kwargs: dict[str, Any], why: str
) -> None:
    settings: dict[str, Any] = {"device_type": "cuda", "optimizer": "adam"} | kwargs
    plan = plan_capture("auto", **settings)
    assert not plan.capture and why in plan.reason
    with pytest.raises(CudaGraphError, match=r"train\.cuda_graphs=on, but") as info:
        plan_capture("on", **settings)
    assert why in str(info.value) and "train.cuda_graphs: auto" in str(info.value)


def test_off_never_captures_and_an_unknown_mode_is_refused() -> None:
    assert plan_capture("off", device_type="cuda", optimizer="adam").capture is False
    with pytest.raises(ValueError, match="allowed: auto, on, off"):
        plan_capture("yes", device_type="cuda", optimizer="adam")


def test_on_without_cuda_fails_before_any_training() -> None:
    """A demanding user who asked for graphs hears that there is no GPU instead of a slow run."""
    torch.manual_seed(0)
    model = build_model(SPEC)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = TrainSettings(epochs=2, batch_size=32, device="cpu", cuda_graphs="on")
    with pytest.raises(CudaGraphError, match="training runs on cpu, and CUDA graphs need a CUDA"):
        fit(model, blobs(), settings)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ------------------------------------------------------------------------- the shapes


def test_the_capture_takes_a_full_batch_or_every_row_when_fewer() -> None:
    assert capture_rows(512, 160_000) == 512
    assert capture_rows(512, 100) == 100


def test_an_epochs_full_batches_replay_and_its_short_last_batch_trains_eagerly() -> None:
    data = blobs(n=1000)  # 750 training rows: two batches of 256 and one of 238
    generator = torch.Generator().manual_seed(0)
    rows = capture_rows(256, data.train_rows)
    shapes = [(xb.shape, yb.shape) for xb, yb in data.epoch_batches(256, generator)]
    captured = shapes[0]
    reasons = [batch_mismatch(s, captured, rows) for s in shapes]
    assert reasons == ["", "", "a batch of 238 rows (the captured step holds 256)"]
    # Before the capture, a short batch is not what the graph is captured on either.
    assert batch_mismatch(shapes[-1], None, rows).startswith("a batch of 238 rows")
    assert batch_mismatch(shapes[0], None, rows) == ""


def test_another_sequence_length_or_target_shape_trains_eagerly() -> None:
    captured = ((64, 24, 4), (64,))
    assert batch_mismatch(((64, 24, 4), (64,)), captured, 64) == ""
    assert batch_mismatch(((64, 20, 4), (64,)), captured, 64) == (
        "inputs of shape (64, 20, 4) (the captured step holds (64, 24, 4))"
    )
    assert batch_mismatch(((64, 24, 4), (64, 2)), captured, 64) == (
        "targets of shape (64, 2) (the captured step holds (64,))"
    )


# ------------------------------------------------------------------------ the setting


def _params(text: str) -> Any:
    return load_params(text=f"train:\n  {text}\n")


def test_the_setting_defaults_to_auto_and_reads_yaml_on_off_words() -> None:
    assert load_params(text="seed: 0\n").train.cuda_graphs == "auto"
    # PyYAML reads an unquoted on/off as a boolean; both spellings mean the switch.
    assert _params("cuda_graphs: on").train.cuda_graphs == "on"
    assert _params("cuda_graphs: off").train.cuda_graphs == "off"
    assert _params("cuda_graphs: 'on'").train.cuda_graphs == "on"
    assert _params("cuda_graphs: auto").train.cuda_graphs == "auto"


def test_a_wrong_setting_reads_as_its_key_and_the_allowed_values() -> None:
    with pytest.raises(ParamsError) as info:
        _params("cuda_graphs: always")
    assert "train.cuda_graphs: got 'always'; allowed: 'auto', 'on' or 'off'" in str(info.value)
    with pytest.raises(ParamsError) as typo:
        _params("cuda_graph: auto")
    assert "did you mean 'train.cuda_graphs'?" in str(typo.value)


def test_the_setting_reaches_the_engine() -> None:
    from neuroflow.recipe import settings_from

    assert settings_from(_params("cuda_graphs: off")).cuda_graphs == "off"


# ----------------------------------------------------------------------- CPU: untouched


def test_training_on_cpu_is_the_same_with_every_setting_but_on() -> None:
    """auto and off train the same bits on CPU: the engine never captures there."""
    weights, reasons = [], []
    for mode in ("auto", "off"):
        torch.manual_seed(0)
        model = build_model(SPEC)
        settings = TrainSettings(epochs=3, batch_size=32, lr=1e-2, device="cpu", cuda_graphs=mode)
        record = fit(model, blobs(), settings).extra["cuda_graphs"]
        assert record["mode"] == mode and "captured" not in record  # no graph was made
        weights.append(model.state_dict())
        reasons.append(record["reason"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert reasons == [
        "training eagerly: training runs on cpu, and CUDA graphs need a CUDA device",
        "train.cuda_graphs=off",
    ]


# ---------------------------------------- the dispatch, with the CUDA calls stood in for

# Without a GPU, CUDA's streams and graphs are replaced by stand-ins that record what
# GraphedStep asked for: which batches warm up, which one is captured, which replay.


class _Stream:
    def wait_stream(self, _: object) -> None:
        pass


class _Graph:
    def __init__(self) -> None:
        self.replays = 0

    def replay(self) -> None:
        self.replays += 1


class _Cuda:
    """What GraphedStep reads from torch.cuda, and whether a capture is in progress."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.capturing = False
        self.graphs: list[_Graph] = []
        self.set_streams: list[object] = []
        stream = _Stream()
        monkeypatch.setattr(torch.cuda, "Stream", lambda: stream)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda: stream)
        monkeypatch.setattr(torch.cuda, "set_stream", self.set_streams.append)
        monkeypatch.setattr(torch.cuda, "stream", lambda _: contextlib.nullcontext())
        monkeypatch.setattr(torch.cuda, "CUDAGraph", self._new_graph)
        monkeypatch.setattr(torch.cuda, "graph", self._capture)

    def _new_graph(self) -> _Graph:
        self.graphs.append(_Graph())
        return self.graphs[-1]

    @contextlib.contextmanager
    def _capture(self, graph: _Graph, stream: object = None) -> Iterator[None]:
        self.capturing = True
        try:
            yield
        finally:
            self.capturing = False


class _Recorder:
    """An eager step that notes each call: batch rows, whether captured, the lr it saw."""

    def __init__(self, cuda: _Cuda, optimizer: torch.optim.Optimizer, fail: bool = False):
        self.cuda, self.optimizer, self.fail = cuda, optimizer, fail
        self.calls: list[tuple[int, bool, Any, bool]] = []

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        group = self.optimizer.param_groups[0]
        self.calls.append((len(xb), self.cuda.capturing, group["lr"], group["capturable"]))
        if self.fail and self.cuda.capturing:
            raise RuntimeError("operation not permitted when stream is capturing\ndetails")
        return xb.float().mean()


def _graphed(
    monkeypatch: pytest.MonkeyPatch, strict: bool = False, fail: bool = False
) -> tuple[GraphedStep, _Recorder, _Cuda]:
    cuda = _Cuda(monkeypatch)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    recorder = _Recorder(cuda, optimizer, fail)
    return GraphedStep(recorder, optimizer, rows=8, strict=strict), recorder, cuda


def _batch(rows: int, width: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((rows, width), float(rows)), torch.zeros(rows, dtype=torch.long)


def test_warm_up_then_one_capture_then_replays_with_short_batches_eager(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    step, recorder, cuda = _graphed(monkeypatch)
    sizes = [8, 5, 8, 8, 8, 8, 5, 8, 5]  # two epochs' worth, short batches in between
    with caplog.at_level(logging.INFO, logger=cuda_graph.__name__):
        losses = [step(*_batch(n)) for n in sizes]
    # Eager calls: 3 warm-up full batches, the capture itself, every short batch.
    assert [(rows, captured) for rows, captured, _, _ in recorder.calls] == [
        (8, False), (5, False), (8, False), (8, False), (8, True), (5, False), (5, False)
    ]  # fmt: skip
    assert len(cuda.graphs) == 1 and cuda.graphs[0].replays == 3  # the 5th, 6th and 8th step
    assert step.summary() == {
        "captured": True, "replayed_steps": 3, "eager_steps": 6, "failed": ""
    }  # fmt: skip
    assert len(losses) == len(sizes)  # one loss per step, each its own tensor
    assert len({id(loss) for loss in losses}) == len(losses)
    assert caplog.text.count("a batch of 5 rows") == 1  # logged once, not once per epoch
    assert "the training step is captured (batch of 8 rows)" in caplog.text


def test_the_capture_reads_a_device_lr_and_the_optimiser_keeps_plain_floats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    step, recorder, _ = _graphed(monkeypatch)
    for _ in range(4):
        step(*_batch(8))
    (_, _, lr_seen, capturable_seen) = recorder.calls[-1]
    assert isinstance(lr_seen, torch.Tensor) and capturable_seen  # only while capturing
    group = step._optimizer.param_groups[0]
    assert group["lr"] == 1e-3 and group["capturable"] is False  # checkpoints see floats
    group["lr"] = 5e-4  # a scheduler stepped
    step(*_batch(8))
    assert step._lrs[0].item() == pytest.approx(5e-4)  # the graph's lr follows


def test_a_step_that_cannot_be_captured_trains_eagerly_under_auto(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    step, recorder, cuda = _graphed(monkeypatch, fail=True)
    with caplog.at_level(logging.WARNING, logger=cuda_graph.__name__):
        for _ in range(6):
            step(*_batch(8))
    assert step.failed.startswith("the training step could not be captured (RuntimeError: ")
    assert "details" not in step.failed  # the first line of the error only
    assert "training eagerly" in caplog.text
    assert [captured for _, captured, _, _ in recorder.calls].count(True) == 1  # tried once
    # Warm-up, the failed capture, its batch trained eagerly, then the last two steps.
    assert len(recorder.calls) == 3 + 1 + 1 + 2
    assert cuda.graphs[0].replays == 0
    assert len(cuda.set_streams) == 1  # the stream current before the capture is current again
    assert step._optimizer.param_groups[0]["lr"] == 1e-3  # restored after the failure


def test_a_step_that_cannot_be_captured_is_an_error_under_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    step, _, _ = _graphed(monkeypatch, strict=True, fail=True)
    for _ in range(3):
        step(*_batch(8))
    with pytest.raises(CudaGraphError, match=r"train\.cuda_graphs=on, but the training step"):
        step(*_batch(8))


def test_fit_steps_through_the_graph_and_its_checkpoints_hold_plain_floats(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """fit's side of the captured path: every full batch goes to the graph, the record says so,
    and a checkpoint (JSON optimiser groups) is written while a graph exists."""
    from neuroflow.training import engine
    from neuroflow.training.checkpoint import CHECKPOINT_NAME, load_checkpoint

    cuda = _Cuda(monkeypatch)
    plan = cuda_graph.CapturePlan(True, "capturing the training step (stand-in)")
    monkeypatch.setattr(engine, "plan_capture", lambda *_, **__: plan)
    settings = TrainSettings(epochs=2, batch_size=32, device="cpu", scheduler="step", step_size=1)
    torch.manual_seed(0)
    result = fit(build_model(SPEC), blobs(), settings, checkpoint_dir=tmp_path, fingerprint="f")
    # 225 training rows: 7 batches of 32 an epoch (the single-row rest is dropped); 3 warm up.
    assert result.extra["cuda_graphs"] == {
        "mode": "auto",
        "reason": plan.reason,
        "captured": True,
        "replayed_steps": 2 * 7 - 3,
        "eager_steps": 3,
        "failed": "",
    }
    assert len(cuda.graphs) == 1 and cuda.graphs[0].replays == 2 * 7 - 3  # captured once
    saved = load_checkpoint(tmp_path / CHECKPOINT_NAME).optimizer["param_groups"][0]
    assert saved["lr"] == pytest.approx(1e-3 * 0.5**2) and saved["capturable"] is False


# ------------------------------------------------------------------------------- GPU


def _bench_data(n: int) -> tuple[torch.Tensor, ...]:
    from benchmarks.bench_engine import make_data

    return make_data(n)


def _eager_step(
    model: torch.nn.Module,
) -> tuple[cuda_graph.Step, torch.optim.Optimizer]:
    """The engine's eager step for `model` with fused Adam, fp32 (no autocast)."""
    from neuroflow.training.engine import make_loss, train_step

    settings = TrainSettings(device="cuda", batch_size=512, amp=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    loss_fn = make_loss("cross_entropy")

    def eager(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return train_step(
            model, model, xb, yb, optimizer=optimizer, loss_fn=loss_fn, settings=settings,
            classification=True, autocast=contextlib.nullcontext, penalised=[],
        )  # fmt: skip

    return eager, optimizer


@pytest.mark.gpu
@needs_cuda
def test_graphed_steps_match_eager_steps_on_the_gpu() -> None:
    """Step by step on the same batches: the first loss is identical, the rest agree."""
    from benchmarks.bench_engine import new_model

    x, y, _, _ = (t.cuda() for t in _bench_data(4_000))
    batches = [(x[i : i + 512], y[i : i + 512]) for i in range(0, len(x), 512)]  # last: 128
    losses: dict[str, list[torch.Tensor]] = {}
    for mode in ("off", "on"):
        eager, optimizer = _eager_step(new_model().cuda())
        step = GraphedStep(eager, optimizer, rows=512, strict=True) if mode == "on" else eager
        losses[mode] = [step(xb, yb) for _ in range(3) for xb, yb in batches]
        if isinstance(step, GraphedStep):
            # 6 full batches an epoch; the first 3 warm up, the capture's own batch replays.
            assert step.summary()["replayed_steps"] == 3 * 6 - 3
    assert torch.equal(losses["on"][0], losses["off"][0])
    on, off = torch.stack(losses["on"]), torch.stack(losses["off"])
    torch.testing.assert_close(on, off, rtol=1e-3, atol=1e-5)


@pytest.mark.gpu
@needs_cuda
def test_the_benchmark_mlp_trains_to_the_same_accuracy_with_cuda_graphs() -> None:
    from benchmarks.bench_engine import new_model

    x, y, xv, yv = _bench_data(40_000)
    results = {}
    for mode in ("off", "on"):
        model = new_model()
        settings = TrainSettings(
            epochs=3, batch_size=512, lr=1e-3, patience=10, device="cuda", cuda_graphs=mode,
            scheduler="step", step_size=1, gamma=0.5,  # the lr changes between epochs
        )  # fmt: skip
        results[mode] = fit(model, TensorSplits(x, y, xv, yv), settings)
    on, off = results["on"], results["off"]
    assert on.extra["cuda_graphs"]["captured"] and on.extra["cuda_graphs"]["replayed_steps"] > 0
    assert "captured" not in off.extra["cuda_graphs"]
    accuracy = {
        mode: r.history[r.best_epoch - 1].val_accuracy or 0.0 for mode, r in results.items()
    }
    assert abs(accuracy["on"] - accuracy["off"]) * 100 <= 0.5, accuracy
    assert on.history[0].train_loss == pytest.approx(off.history[0].train_loss, rel=1e-2)


@pytest.mark.gpu
@needs_cuda
def test_a_model_that_syncs_with_the_host_falls_back_under_auto_and_fails_under_on() -> None:
    class HostSync(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if float(x.abs().max()) > 1e9:  # a host read: not allowed while capturing
                x = x.clamp(-1e9, 1e9)
            return self.layer(x)

    settings = TrainSettings(epochs=2, batch_size=32, device="cuda", cuda_graphs="auto")
    result = fit(HostSync(), blobs(), settings)
    assert result.extra["cuda_graphs"]["failed"].startswith("the training step could not be")
    assert result.extra["cuda_graphs"]["replayed_steps"] == 0  # every step trained eagerly
    strict = TrainSettings(epochs=2, batch_size=32, device="cuda", cuda_graphs="on")
    with pytest.raises(CudaGraphError, match="could not be captured"):
        fit(HostSync(), blobs(), strict)
