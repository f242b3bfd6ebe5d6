"""The whole training step (forward, loss, backward, optimiser step) replayed from one CUDA graph.

Why: at batch 512 a small network's GPU step is launch-bound. Eager PyTorch launches a few dozen
kernels per step from Python, each costing microseconds of host time, while the math takes less;
one graph replay launches them all at once.

What can be captured: a fused Adam/AdamW step (its step counters live on the device) on one CUDA
device, the engine's own step (no StepHook, no DDP), and batches of one shape. A batch of another
shape (the epoch's short last batch, another sequence length) trains eagerly with the same step,
so every row still trains every epoch, as without graphs. `train.cuda_graphs`:
- `auto`: capture where all of that holds, else train eagerly and log why (CPU: always eager);
- `on`: the same, but a step that cannot be captured is an error instead of a fallback;
- `off`: always eager.

The decisions (`plan_capture`, `capture_rows`, `batch_mismatch`) are plain Python, testable
without a GPU; `GraphedStep` does the capture and replay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from neuroflow.errors import NeuroflowError

log = logging.getLogger(__name__)

CudaGraphs = Literal["auto", "on", "off"]
MODES: tuple[str, ...] = get_args(CudaGraphs)
# Optimisers whose fused CUDA step reads its step counter and learning rate from device memory.
CAPTURABLE_OPTIMIZERS = ("adam", "adamw")
# Eager steps on a side stream before the capture: the optimiser's moments, cuBLAS workspaces
# and autocast state are created lazily on first use, which a capture cannot record.
WARMUP_STEPS = 3

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Shape = tuple[int, ...]


class CudaGraphError(NeuroflowError):
    """train.cuda_graphs=on, but the training step cannot be captured; the message says why."""


@dataclass(frozen=True)
class CapturePlan:
    capture: bool
    reason: str  # why the step is captured, or why it trains eagerly


def _refusal(
    *, device_type: str, optimizer: str, fused: bool, step_hook: bool, distributed: bool
) -> str | None:
    """Why this run's step cannot be captured (None: it can)."""
    if device_type != "cuda":
        return f"training runs on {device_type}, and CUDA graphs need a CUDA device"
    if step_hook:
        return "the network trains with its own step (the GAN's adversarial step)"
    if distributed:
        return "distributed training all-reduces gradients outside a capturable step"
    if optimizer not in CAPTURABLE_OPTIMIZERS:
        return (
            f"train.optimizer={optimizer} has no capturable step here "
            f"(only {' and '.join(CAPTURABLE_OPTIMIZERS)})"
        )
    if not fused:
        return "the optimiser is not fused (a parameter is not floating point)"
    return None


def plan_capture(
    mode: str,
    *,
    device_type: str,
    optimizer: str,
    fused: bool = True,
    step_hook: bool = False,
    distributed: bool = False,
) -> CapturePlan:
    """Capture or eager, and why; `on` turns a refusal into a `CudaGraphError`."""
    if mode not in MODES:
        raise ValueError(f"train.cuda_graphs={mode!r}; allowed: {', '.join(MODES)}")
    if mode == "off":
        return CapturePlan(False, "train.cuda_graphs=off")
    refusal = _refusal(
        device_type=device_type,
        optimizer=optimizer,
        fused=fused,
        step_hook=step_hook,
        distributed=distributed,
    )
    if refusal is None:
        return CapturePlan(True, f"capturing the training step (train.cuda_graphs={mode})")
    if mode == "on":
        raise CudaGraphError(
            f"train.cuda_graphs=on, but {refusal}; set train.cuda_graphs: auto to capture the "
            "step where it can be and train eagerly elsewhere, or off"
        )
    return CapturePlan(False, f"training eagerly: {refusal}")


def capture_rows(batch_size: int, train_rows: int) -> int:
    """Rows of the batch the graph is captured on: a full batch, or all rows if fewer."""
    return max(1, min(batch_size, train_rows))


def batch_mismatch(shapes: Sequence[Shape], captured: Sequence[Shape] | None, rows: int) -> str:
    """Why a batch with these (input, target) shapes trains eagerly ("" : it replays the graph).

    Before the capture (`captured` None) a batch qualifies by its row count; after it, every
    shape must equal the captured one.
    """
    got = shapes[0][0] if shapes and shapes[0] else 0
    want = captured[0][0] if captured else rows
    if got != want:
        return f"a batch of {got} rows (the captured step holds {want})"
    if captured is None:
        return ""
    for name, shape, held in zip(("inputs", "targets"), shapes, captured, strict=False):
        if tuple(shape) != tuple(held):
            return f"{name} of shape {tuple(shape)} (the captured step holds {tuple(held)})"
    return ""


class GraphedStep:
    """`eager`'s step, replayed from one CUDA graph for batches of the captured shape.

    The first WARMUP_STEPS batches of `rows` rows train eagerly on a side stream, the next one is
    captured and replayed, and from then on each such batch is copied into the graph's static
    inputs and replayed. Batches of another shape train eagerly (logged once per kind of shape).
    The graph reads the learning rate from a device tensor, refreshed before a replay when a
    scheduler changed it; the optimiser's own param_groups keep plain floats, so checkpoints and
    schedulers see what an eager run has.
    """

    def __init__(
        self,
        eager: Step,
        optimizer: torch.optim.Optimizer,
        *,
        rows: int,
        strict: bool,
        warmup: int = WARMUP_STEPS,
    ) -> None:
        self._eager, self._optimizer = eager, optimizer
        self._rows, self._strict, self._warmup = rows, strict, warmup
        self._stream = torch.cuda.Stream()
        self._graph: torch.cuda.CUDAGraph | None = None
        self._x = self._y = self._loss = torch.empty(0)
        self._lrs: list[torch.Tensor] = []  # the graph's learning rate, one per param group
        self._lr_values: list[float] = []
        self._noted: set[str] = set()
        self.failed = ""  # why the capture failed: every step trains eagerly
        self.warmed = self.replayed = self.eager = 0

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if self._graph is not None and xb.shape == self._x.shape and yb.shape == self._y.shape:
            return self._replay(xb, yb)
        if not self.failed:
            captured = None if self._graph is None else (self._x.shape, self._y.shape)
            why = batch_mismatch((xb.shape, yb.shape), captured, self._rows)
            if not why:
                return self._warm(xb, yb) if self.warmed < self._warmup else self._capture(xb, yb)
            kind = why.split(" (")[0]
            if kind not in self._noted:  # once per kind of batch, not once per epoch
                self._noted.add(kind)
                log.info("cuda graphs: %s trains eagerly", why)
        self.eager += 1
        return self._eager(xb, yb)

    def summary(self) -> dict[str, object]:
        """What happened, for the run's record."""
        return {
            "captured": self._graph is not None,
            "replayed_steps": self.replayed,
            "eager_steps": self.eager + self.warmed,
            "failed": self.failed,
        }

    def _warm(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        current = torch.cuda.current_stream()
        self._stream.wait_stream(current)
        with torch.cuda.stream(self._stream):
            loss = self._eager(xb, yb)
        current.wait_stream(self._stream)
        if loss.is_cuda:  # read on the main stream at the epoch's end
            loss.record_stream(current)
        self.warmed += 1
        return loss

    def _capture(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        self._x, self._y = xb.clone(), yb.clone()  # the static inputs every replay reads
        groups = self._optimizer.param_groups
        self._lr_values = [float(group["lr"]) for group in groups]
        self._lrs = [torch.tensor(lr, device=xb.device) for lr in self._lr_values]
        graph = torch.cuda.CUDAGraph()
        current = torch.cuda.current_stream()
        try:
            self._loss = self._record(graph)
        except Exception as exc:  # torch raises several types for a capture-unsafe operation
            # A capture that fails to end leaves its stream current (torch.cuda.graph's exit).
            torch.cuda.set_stream(current)
            return self._give_up(exc, xb, yb)
        self._graph = graph
        log.info("cuda graphs: the training step is captured (batch of %d rows)", len(xb))
        return self._replay(xb, yb)

    def _record(self, graph: torch.cuda.CUDAGraph) -> torch.Tensor:
        """Capture one step; the optimiser is capturable, reading the lr tensors, only meanwhile."""
        groups = self._optimizer.param_groups
        saved = [(group["lr"], group.get("capturable", False)) for group in groups]
        self._optimizer.zero_grad(set_to_none=True)  # the graph allocates its own gradients
        try:
            for group, lr in zip(groups, self._lrs, strict=True):
                group["lr"], group["capturable"] = lr, True
            with torch.cuda.graph(graph, stream=self._stream):
                return self._eager(self._x, self._y)
        finally:
            for group, (lr, capturable) in zip(groups, saved, strict=True):
                group["lr"], group["capturable"] = lr, capturable

    def _give_up(self, exc: Exception, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        first = (str(exc).strip().splitlines() or [""])[0]
        reason = f"the training step could not be captured ({type(exc).__name__}: {first})"
        if self._strict:
            raise CudaGraphError(
                f"train.cuda_graphs=on, but {reason}; set train.cuda_graphs: auto to train "
                "such a model eagerly"
            ) from exc
        log.warning("cuda graphs: %s; training eagerly", reason)
        self.failed = reason
        self._optimizer.zero_grad(set_to_none=True)
        self.eager += 1
        return self._eager(xb, yb)

    def _replay(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        assert self._graph is not None
        for i, group in enumerate(self._optimizer.param_groups):
            if group["lr"] != self._lr_values[i]:  # a scheduler stepped: a kernel, no sync
                self._lrs[i].fill_(group["lr"])
                self._lr_values[i] = group["lr"]
        self._x.copy_(xb, non_blocking=True)
        self._y.copy_(yb, non_blocking=True)
        self._graph.replay()
        self.replayed += 1
        return self._loss.clone()  # the graph overwrites its loss on the next replay
