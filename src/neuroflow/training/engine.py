"""The training loop: in-memory tensors on the device, batched by index, resumable per epoch.

Why it is fast: the whole split lives on the device as one tensor; each epoch permutes it once
and slices contiguous batches (no per-sample Dataset/DataLoader, no collate); losses accumulate
on the device and the host reads them once per epoch, never per step.

`fit` is the one epoch loop (optimiser, schedule, early stopping, checkpoints, resume, progress);
where the batches come from is the data's business: `TensorSplits` here, or streamed chunks
(`training/streaming.py`) for training data that does not fit in memory.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from neuroflow.errors import NeuroflowError
from neuroflow.evaluation.direction import is_better
from neuroflow.training.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    TrainingState,
    load_checkpoint,
    save_checkpoint,
)
from neuroflow.training.cuda_graph import (
    CapturePlan,
    GraphedStep,
    capture_rows,
    plan_capture,
)
from neuroflow.training.device import pick_cpu_threads, resolve_device, seed_everything

if TYPE_CHECKING:
    from neuroflow.training.distributed import DistributedContext

log = logging.getLogger(__name__)

EVAL_BATCH = 8192


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 100
    batch_size: int = 64
    optimizer: str = "adam"  # adam | adamw | sgd | rmsprop
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    l1: float = 0.0  # L1 penalty on weights, added to the loss
    scheduler: str = "none"  # none | step | plateau | cosine
    step_size: int = 30
    gamma: float = 0.5
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    patience: int = 20  # early stopping on validation loss
    loss: str = "cross_entropy"  # cross_entropy | mse | mae
    device: str = "auto"
    deterministic: bool = True
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    threads: int = 0  # CPU intra-op threads while training; 0 = pick_cpu_threads decides
    cuda_graphs: str = "auto"  # auto | on | off: the step as one CUDA graph (cuda_graph.py)


Batch = tuple[torch.Tensor, torch.Tensor]


def keep_batch(rows: int, batch: int, total: int) -> bool:
    """BatchNorm cannot train on one row: drop a trailing single-row remainder of an epoch."""
    return rows > 1 or batch == 1 or total == 1


class TrainData(Protocol):
    """Where `fit` gets its batches: validation is in memory, training rows may stream."""

    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def train_rows(self) -> int: ...

    def to(self, device: torch.device) -> TrainData: ...

    @property
    def shuffle_device(self) -> torch.device:
        """Where the epoch's shuffling generator lives (its state is checkpointed)."""
        ...

    def epoch_batches(self, batch: int, generator: torch.Generator) -> Iterator[Batch]: ...


@dataclass
class TensorSplits:
    """Whole splits in memory: one permutation per epoch, then contiguous slices."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def train_rows(self) -> int:
        return len(self.x_train)

    def to(self, device: torch.device) -> TensorSplits:
        x_train, y_train, x_val, y_val = (
            t.to(device, non_blocking=True)
            for t in (self.x_train, self.y_train, self.x_val, self.y_val)
        )
        return TensorSplits(x_train, y_train, x_val, y_val)

    @property
    def shuffle_device(self) -> torch.device:
        return self.x_train.device

    def epoch_batches(self, batch: int, generator: torch.Generator) -> Iterator[Batch]:
        n = len(self.x_train)
        perm = torch.randperm(n, device=self.x_train.device, generator=generator)
        xs, ys = self.x_train.index_select(0, perm), self.y_train.index_select(0, perm)
        for start in range(0, n, batch):
            if keep_batch(min(batch, n - start), batch, n):
                yield xs[start : start + batch], ys[start : start + batch]


class StepHook(Protocol):
    """A network trained by another step than "loss on (x, y), one optimiser step": the GAN's
    adversarial step (training/gan.py). `fit` keeps its loop, checkpoints and early stopping and
    asks the hook for the optimiser, each batch's step and the epoch's validation score.

    `train_step` returns one detached loss per name in `parts` (e.g. each network's); the epoch's
    mean of each goes into the history, and `train_loss` is their sum. `validate` returns the
    epoch's score, lower is better: it is the history's `val_loss`, early stopping's measure.
    """

    parts: tuple[str, ...]

    def make_optimizer(self, model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer: ...

    def timing(self, model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
        """The module and batch the CPU thread probe times (`pick_cpu_threads`)."""
        ...

    def train_step(
        self,
        model: nn.Module,
        xb: torch.Tensor,
        *,
        optimizer: torch.optim.Optimizer,
        settings: TrainSettings,
        autocast: Callable[[], Any],
    ) -> torch.Tensor: ...

    def validate(
        self, model: nn.Module, x_val: torch.Tensor, autocast: Callable[[], Any]
    ) -> torch.Tensor: ...


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    lr: float
    val_accuracy: float | None = None
    seconds: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)  # a StepHook's per-part losses

    def as_dict(self) -> dict[str, Any]:
        out = {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "lr": self.lr,
            "seconds": self.seconds,
        }
        if self.val_accuracy is not None:
            out["val_accuracy"] = self.val_accuracy
        return out | self.parts

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> EpochRecord:
        known = {"epoch", "train_loss", "val_loss", "lr", "val_accuracy", "seconds"}
        parts = {k: float(v) for k, v in row.items() if k not in known}
        return cls(**{k: v for k, v in row.items() if k in known}, parts=parts)


@dataclass
class FitResult:
    history: list[EpochRecord]
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    resumed_from: int  # epochs already done when this call started (0 = fresh)
    device: str
    samples_per_second: float
    threads: int  # torch intra-op threads used for the epochs
    extra: dict[str, Any] = field(default_factory=dict)


def _fused(model: nn.Module) -> bool:
    """Fused Adam: one kernel per step instead of ~10 small ops per parameter tensor.

    PyTorch picks the per-parameter loop on CPU by default, which costs more than the GEMMs
    for small networks; the fused kernel exists for CPU and CUDA floating-point parameters.
    """
    params = list(model.parameters())
    return bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params
    )


def make_optimizer(model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    params = model.parameters()
    if s.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=s.lr, weight_decay=s.weight_decay, fused=_fused(model) or None
        )
    if s.optimizer == "adamw":
        return torch.optim.AdamW(
            params, lr=s.lr, weight_decay=s.weight_decay, fused=_fused(model) or None
        )
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    if s.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay
        )
    raise ValueError(f"train.optimizer={s.optimizer!r} is not supported")


def make_scheduler(optimizer: torch.optim.Optimizer, s: TrainSettings) -> Any:
    if s.scheduler == "none":
        return None
    if s.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
    if s.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=s.gamma, patience=max(1, s.patience // 3)
        )
    if s.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.epochs)
    raise ValueError(f"train.scheduler={s.scheduler!r} is not supported")


def make_loss(name: str) -> nn.Module:
    losses: dict[str, Callable[[], nn.Module]] = {
        "cross_entropy": nn.CrossEntropyLoss,
        "mse": nn.MSELoss,
        "mae": nn.L1Loss,
        "bce": nn.BCEWithLogitsLoss,  # binary with one logit; y is float 0/1
    }
    if name not in losses:
        raise ValueError(f"train.loss={name!r} is not supported; choose one of {sorted(losses)}")
    return losses[name]()


def _rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _restore_rng(generator: torch.Generator, state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# Plain (non-terminal) progress: about this many lines per training run, and one at least this
# often, so a CI or DVC log shows the run moving without a line per epoch.
PLAIN_LINES_PER_RUN = 10
PLAIN_MAX_SILENCE_S = 30.0


def plain_every(total: int) -> int:
    """Epochs between plain progress lines: ~PLAIN_LINES_PER_RUN lines over `total` epochs."""
    return max(1, math.ceil(total / PLAIN_LINES_PER_RUN))


class _Progress:
    """How training reports itself: a rich bar with ETA on a terminal; otherwise (CI, a DVC log
    piped to a file, Prefect) a plain line every `plain_every` epochs. Verbose (DEBUG) logging
    adds a line per epoch either way; the stage logs the run's summary when `fit` returns."""

    def __init__(self, total: int, done: int) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._total, self._done = total, done
        self._every = plain_every(total)
        self._started = time.monotonic()
        self._last_line = self._started
        self._unreported: EpochRecord | None = None
        if sys.stderr.isatty():
            try:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeRemainingColumn,
                )
            except ImportError:  # rich is optional for the engine on a bare GPU box
                return
            self._bar = Progress(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._task = self._bar.add_task("train", total=total, completed=done, status="")
            self._bar.start()

    @staticmethod
    def _status(record: EpochRecord) -> str:
        acc = f" val_acc={record.val_accuracy:.4f}" if record.val_accuracy is not None else ""
        return f"loss={record.train_loss:.4f} val_loss={record.val_loss:.4f}{acc}"

    def _eta(self, epoch: int) -> str:
        ran = epoch - self._done
        if ran <= 0 or epoch >= self._total:
            return ""
        left = (time.monotonic() - self._started) / ran * (self._total - epoch)
        if left < 1:  # nothing worth waiting for
            return ""
        return f", ETA {left:.0f}s" if left < 120 else f", ETA {left / 60:.1f}min"

    def _line(self, level: int, record: EpochRecord) -> None:
        log.log(
            level,
            "epoch %d/%d %s lr=%.3g (%.2fs%s)",
            record.epoch,
            self._total,
            self._status(record),
            record.lr,
            record.seconds,
            self._eta(record.epoch),
        )

    def update(self, record: EpochRecord, total: int) -> None:
        self._total = total
        verbose = log.isEnabledFor(logging.DEBUG)
        if self._bar is not None:
            self._bar.update(self._task, advance=1, status=self._status(record))
            if verbose:  # the bar's console prints it above the bar
                self._line(logging.DEBUG, record)
            return
        now = time.monotonic()
        due = record.epoch % self._every == 0 or now - self._last_line >= PLAIN_MAX_SILENCE_S
        if verbose or due:
            self._line(logging.DEBUG if verbose else logging.INFO, record)
            self._last_line, self._unreported = now, None
        else:
            self._unreported = record

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self._unreported is not None:  # early stop or the last epoch: where it ended
            self._line(logging.INFO, self._unreported)


def _clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class TrainingDivergedError(NeuroflowError, FloatingPointError):
    """The training loss became NaN or infinite; the message names the likely cause."""


class _NonFinite:
    """Counts NaN/inf values in a stream of batches, and where in a row they sit."""

    def __init__(self, name: str) -> None:
        self.name, self.count = name, 0
        self.where: torch.Tensor | None = None  # per position of a row: any non-finite value

    def add(self, values: torch.Tensor) -> None:
        if not values.is_floating_point():
            return
        bad = ~torch.isfinite(values)
        count = int(bad.sum())
        if count:
            self.count += count
            if values.ndim > 1:
                cols = bad.reshape(len(values), -1).any(dim=0).cpu()
                self.where = cols if self.where is None else self.where | cols

    def describe(self) -> str:
        if not self.count:
            return ""
        plural = "s" if self.count > 1 else ""
        text = f"NaN/inf in the {self.name} ({self.count} value{plural}"
        if self.where is not None:
            cols = torch.nonzero(self.where).flatten().tolist()
            shown = ", ".join(map(str, cols[:10])) + (", …" if len(cols) > 10 else "")
            kind = "feature position(s)" if self.name == "inputs" else "column(s)"
            text += f" in {kind} {shown}"
        return text + ")"


def diverged(
    epoch: int,
    loss: float,
    losses: Sequence[torch.Tensor],
    data: TrainData,
    batch: int,
    shuffle_state: torch.Tensor,
    settings: TrainSettings,
) -> TrainingDivergedError:
    """The error for a non-finite epoch loss, naming its likely cause first.

    The epoch's batches are replayed from the shuffle state it started with (a failure path:
    one more pass over the training rows, no training): NaN/inf in the inputs or targets is the
    cause, and a lower learning rate would not help; only finite data points at the optimiser.
    """
    # A StepHook's step returns one loss per part: a step is non-finite if any part is.
    steps = (
        torch.stack(list(losses)).float().reshape(len(losses), -1).sum(1)
        if losses
        else torch.zeros(0)
    )
    first = torch.nonzero(~torch.isfinite(steps)).flatten()[:1].tolist()
    head = f"training diverged at epoch {epoch} (loss={loss}"
    head += f", first in step {first[0] + 1}'s batch)" if first else ")"
    generator = torch.Generator(device=data.shuffle_device)
    generator.set_state(shuffle_state)
    inputs, targets = _NonFinite("inputs"), _NonFinite("targets")
    with torch.no_grad():
        for xb, yb in data.epoch_batches(batch, generator):
            inputs.add(xb)
            targets.add(yb)
    found = [text for text in (inputs.describe(), targets.describe()) if text]
    if found:
        return TrainingDivergedError(
            f"{head}; likely cause: {' and '.join(found)} of the training rows. Missing or "
            "infinite values reached training, and a lower train.lr will not help: fix the data "
            "(ingest refuses missing targets unless data.drop_missing_target is set)"
        )
    clip = f"lower train.grad_clip (now {settings.grad_clip:g})"
    if settings.grad_clip <= 0:
        clip = "set train.grad_clip (now off), e.g. 1.0"
    return TrainingDivergedError(
        f"{head}; the training rows are finite, so the optimisation diverged: lower train.lr "
        f"(now {settings.lr:g}) or {clip}"
    )


def train_step(
    net: nn.Module,
    model: nn.Module,
    xb: torch.Tensor,
    yb: torch.Tensor,
    *,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    settings: TrainSettings,
    classification: bool,
    autocast: Callable[[], Any],
    penalised: Sequence[torch.Tensor],
) -> torch.Tensor:
    """One optimiser step on a batch; returns the detached loss (a device tensor, no sync).

    `net` runs the forward pass (a DDP wrapper in distributed runs); `model` owns the weights.
    """
    with autocast():
        out = net(xb)
    out = out.float()
    pred = out if classification or yb.ndim == 2 else out[:, 0]
    loss = loss_fn(pred, yb)
    if settings.l1 > 0:
        loss = loss + settings.l1 * sum(p.abs().sum() for p in penalised)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if settings.grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: nn.Module,
    classification: bool,
    autocast: Callable[[], Any],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean loss (and accuracy) over a split, as device tensors (no host sync here)."""
    model.eval()
    total = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for start in range(0, len(x), EVAL_BATCH):
        xb, yb = x[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]
        with autocast():
            out = model(xb)
        out = out.float()
        # One output column against a 1-D target; a 2-D target (reconstruction) uses all.
        pred = out[:, 0] if not classification and out.ndim == 2 and yb.ndim == 1 else out
        total += loss_fn(pred, yb) * len(xb)
        if classification:
            correct += (out.argmax(dim=1) == yb).sum()
    n = max(len(x), 1)
    return total / n, (correct / n if classification else None)


@dataclass
class _Loop:
    """One `fit` call's working state: what the epochs read, and what they carry forward."""

    model: nn.Module
    net: nn.Module  # the model, or its DDP wrapper that all-reduces gradients in backward
    data: TrainData
    settings: TrainSettings
    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: nn.Module
    generator: torch.Generator
    autocast: Callable[[], Any]
    classification: bool
    penalised: list[torch.Tensor]
    step_hook: StepHook | None
    distributed: DistributedContext | None
    capture: CapturePlan
    world: int = 1
    graph: GraphedStep | None = None  # the captured step, when the plan captures
    history: list[EpochRecord] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    start_epoch: int = 0

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """One optimiser step on a batch: replayed from the CUDA graph when there is one."""
        return self.graph(xb, yb) if self.graph is not None else self.eager_step(xb, yb)

    def eager_step(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return train_step(
            self.net,
            self.model,
            xb,
            yb,
            optimizer=self.optimizer,
            loss_fn=self.loss_fn,
            settings=self.settings,
            classification=self.classification,
            autocast=self.autocast,
            penalised=self.penalised,
        )

    def record(self) -> dict[str, Any]:
        """How the steps ran, for the run's record (`FitResult.extra`)."""
        graphs: dict[str, Any] = {"mode": self.settings.cuda_graphs, "reason": self.capture.reason}
        return {"cuda_graphs": graphs | (self.graph.summary() if self.graph else {})}


def fit(
    model: nn.Module,
    data: TrainData,
    settings: TrainSettings,
    *,
    checkpoint_dir: Path | None = None,
    checkpoint_every_s: float = 0.0,
    fingerprint: str = "",
    on_epoch: Callable[[EpochRecord], None] | None = None,
    distributed: DistributedContext | None = None,
    step_hook: StepHook | None = None,
) -> FitResult:
    """Train `model` in place; on return it holds the weights of the best validation epoch.

    With `checkpoint_dir`, a checkpoint is written atomically after an epoch once at least
    `checkpoint_every_s` seconds have passed since the last one (0: after every epoch), and
    always after the last epoch; a run with the same `fingerprint` (config + data identity)
    resumes from it, ending with the same weights an uninterrupted run would have (given
    deterministic mode on CPU). A crash loses about that interval of training (plus the epoch in
    progress), and epochs of milliseconds are not slowed down by a file write each.

    With `distributed` (under torchrun), the training rows are this rank's shard: the model trains
    wrapped in DDP, the epoch loss is summed over ranks, and rank 0 alone writes checkpoints.

    With `step_hook`, the hook trains each batch and scores each epoch (see `StepHook`).
    """
    loop = _setup(model, data, settings, distributed, step_hook)
    ckpt_path = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir else None
    if ckpt_path is not None and ckpt_path.exists():
        _resume(loop, ckpt_path, fingerprint)
    progress = _Progress(settings.epochs, loop.start_epoch)
    stopped_early = loop.bad_epochs >= settings.patience
    trained_samples, train_seconds = 0, 0.0
    if distributed is not None:
        distributed.check_agree("the epoch to resume from", loop.start_epoch, loop.device)
        loop.net, loop.world = distributed.wrap(model, loop.device), distributed.world_size
    threads_before = torch.get_num_threads()
    threads = _cpu_threads(loop) if loop.device.type == "cpu" else threads_before
    torch.set_num_threads(threads)
    last_checkpoint = time.monotonic()
    try:
        for epoch in range(loop.start_epoch + 1, settings.epochs + 1):
            if stopped_early:
                break
            t0 = time.perf_counter()
            train_loss, parts = _train_epoch(loop, epoch)
            record = _close_epoch(loop, epoch, train_loss, parts, t0)
            trained_samples += loop.data.train_rows * loop.world
            train_seconds += record.seconds
            stopped_early = loop.bad_epochs >= settings.patience
            due = (
                stopped_early
                or epoch == settings.epochs
                or time.monotonic() - last_checkpoint >= checkpoint_every_s
            )
            if ckpt_path is not None and due and (distributed is None or distributed.is_main):
                _save(loop, ckpt_path, fingerprint, epoch)
                last_checkpoint = time.monotonic()
            progress.update(record, settings.epochs)
            if on_epoch is not None:
                on_epoch(record)
    finally:
        progress.close()
        torch.set_num_threads(threads_before)  # a process-wide setting: give it back

    model.load_state_dict(loop.best_state)
    model.eval()
    return FitResult(
        history=loop.history,
        best_epoch=loop.best_epoch,
        best_val_loss=loop.best_loss,
        stopped_early=stopped_early,
        resumed_from=loop.start_epoch,
        device=str(loop.device),
        samples_per_second=trained_samples / train_seconds if train_seconds else 0.0,
        threads=threads,
        extra=loop.record(),
    )


def _setup(
    model: nn.Module,
    data: TrainData,
    settings: TrainSettings,
    distributed: DistributedContext | None,
    step_hook: StepHook | None,
) -> _Loop:
    """Seeds, device, optimizer, scheduler, loss and the shuffling generator."""
    seed_everything(settings.seed, settings.deterministic)
    device = resolve_device(settings.device)
    model.to(device)
    data = data.to(device)
    if step_hook is not None and distributed is not None:
        raise ValueError("a StepHook network trains in one process, not under torchrun")
    optimizer = (
        make_optimizer(model, settings)
        if step_hook is None
        else step_hook.make_optimizer(model, settings)
    )
    generator = torch.Generator(device=data.shuffle_device)
    generator.manual_seed(settings.seed)
    capture = plan_capture(
        settings.cuda_graphs,
        device_type=device.type,
        optimizer=settings.optimizer,
        fused=all(group.get("fused") for group in optimizer.param_groups),
        step_hook=step_hook is not None,
        distributed=distributed is not None,
    )
    loop = _Loop(
        model=model,
        net=model,
        data=data,
        settings=settings,
        device=device,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, settings),
        loss_fn=make_loss(settings.loss),
        generator=generator,
        autocast=_autocast(settings.amp and device.type == "cuda", device, capture.capture),
        classification=settings.loss == "cross_entropy",
        penalised=[p for name, p in model.named_parameters() if p.ndim > 1],
        step_hook=step_hook,
        distributed=distributed,
        capture=capture,
        best_state=_clone_state(model),
    )
    if capture.capture:
        rows = capture_rows(settings.batch_size, data.train_rows)
        strict = settings.cuda_graphs == "on"
        loop.graph = GraphedStep(loop.eager_step, optimizer, rows=rows, strict=strict)
    # On a GPU a user wants to know why the step is not captured; on CPU that is the norm.
    level = logging.INFO if device.type == "cuda" else logging.DEBUG
    log.log(level, "cuda graphs: %s", capture.reason)
    return loop


def _autocast(use_amp: bool, device: torch.device, captured: bool) -> Callable[[], Any]:
    """bf16 autocast on CUDA (when train.amp), a no-op context otherwise."""

    def autocast() -> Any:
        if not use_amp:  # even a disabled autocast costs a few microseconds per step
            return contextlib.nullcontext()
        # A graph replays the casts it captured: autocast must not cache them across steps.
        return torch.autocast(
            device_type=device.type, dtype=torch.bfloat16, cache_enabled=not captured
        )

    return autocast


def _resume(loop: _Loop, ckpt_path: Path, fingerprint: str) -> None:
    """Continue from the checkpoint when it is this config's and data's (else start fresh)."""
    try:
        state = load_checkpoint(ckpt_path)
    except CheckpointError as exc:
        log.warning("ignoring checkpoint: %s", exc)
        return
    if state.meta.get("fingerprint") != fingerprint:
        log.info("checkpoint %s is for another config or data; starting fresh", ckpt_path)
        return
    loop.model.load_state_dict(state.model)
    loop.optimizer.load_state_dict(state.optimizer)
    if loop.scheduler is not None:
        loop.scheduler.load_state_dict(state.scheduler)
    _restore_rng(loop.generator, state.rng)
    loop.best_state = state.best_model
    loop.best_loss = float(state.meta["best_loss"])
    loop.best_epoch = int(state.meta["best_epoch"])
    loop.bad_epochs = int(state.meta["bad_epochs"])
    loop.history = [EpochRecord.from_dict(r) for r in state.meta["history"]]
    loop.start_epoch = state.epoch
    log.info("resuming from %s after epoch %d", ckpt_path, loop.start_epoch)


def _cpu_threads(loop: _Loop) -> int:
    """Intra-op threads for this model on CPU (timed on its forward pass unless set)."""
    probe = loop.data.x_val[: loop.settings.batch_size]
    timed, probe = (
        (loop.model, probe) if loop.step_hook is None else loop.step_hook.timing(loop.model, probe)
    )
    threads = pick_cpu_threads(timed, probe, loop.settings.threads)
    log.debug("training on %d CPU thread(s)", threads)
    return threads


def _train_epoch(loop: _Loop, epoch: int) -> tuple[float, dict[str, float]]:
    """One pass over the training rows: the epoch's mean loss (and its parts, for a hook)."""
    s, model = loop.settings, loop.model
    model.train()
    # Detached step losses, summed once per epoch: no extra kernels per step.
    losses: list[torch.Tensor] = []
    sizes: list[float] = []
    shuffle_state = loop.generator.get_state()  # replays the epoch if the loss turns NaN
    for xb, yb in loop.data.epoch_batches(s.batch_size, loop.generator):
        if loop.step_hook is not None:
            step = loop.step_hook.train_step(
                model, xb, optimizer=loop.optimizer, settings=s, autocast=loop.autocast
            )
        else:
            step = loop.step(xb, yb)
        losses.append(step)
        sizes.append(float(len(xb)))
    if losses:
        stacked = torch.stack(losses).float()  # a float64 target gives a float64 loss
        # Size-weighted sum per part: (steps,) or (steps, parts) → () or (parts,).
        running = torch.tensor(sizes, device=loop.device) @ stacked
    else:
        running = torch.zeros((), device=loop.device)
    # One host sync per epoch: read the epoch's numbers.
    if loop.distributed is not None:  # the epoch's loss over every rank's rows
        running = loop.distributed.sum(running)
    part_means = (running / (loop.data.train_rows * loop.world)).reshape(-1).tolist()
    train_loss = float(sum(part_means))
    if not math.isfinite(train_loss):
        raise diverged(epoch, train_loss, losses, loop.data, s.batch_size, shuffle_state, s)
    hook = loop.step_hook
    return train_loss, dict(zip(hook.parts, part_means, strict=True)) if hook else {}


def _close_epoch(
    loop: _Loop, epoch: int, train_loss: float, parts: dict[str, float], started: float
) -> EpochRecord:
    """Validate, step the scheduler, record the epoch (timed from `started`, validation
    included) and keep the best weights."""
    x_val, y_val = loop.data.x_val, loop.data.y_val
    if loop.step_hook is None:
        val_loss_t, val_acc_t = evaluate_loss(
            loop.model, x_val, y_val, loop.loss_fn, loop.classification, loop.autocast
        )
    else:
        val_loss_t, val_acc_t = loop.step_hook.validate(loop.model, x_val, loop.autocast), None
    val_loss = float(val_loss_t)
    if loop.scheduler is not None:
        if isinstance(loop.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            loop.scheduler.step(val_loss)
        else:
            loop.scheduler.step()
    seconds = time.perf_counter() - started
    record = EpochRecord(
        epoch=epoch,
        train_loss=train_loss,
        val_loss=val_loss,
        lr=float(loop.optimizer.param_groups[0]["lr"]),
        val_accuracy=float(val_acc_t) if val_acc_t is not None else None,
        seconds=seconds,
        parts=parts,
    )
    loop.history.append(record)
    if is_better("val_loss", val_loss, loop.best_loss, margin=1e-12):
        loop.best_loss, loop.best_epoch, loop.bad_epochs = val_loss, epoch, 0
        loop.best_state = _clone_state(loop.model)
    else:
        loop.bad_epochs += 1
    return record


def _save(loop: _Loop, ckpt_path: Path, fingerprint: str, epoch: int) -> None:
    save_checkpoint(
        ckpt_path.parent,
        TrainingState(
            epoch=epoch,
            model=loop.model.state_dict(),
            best_model=loop.best_state,
            optimizer=loop.optimizer.state_dict(),
            scheduler=loop.scheduler.state_dict() if loop.scheduler is not None else {},
            rng=_rng_state(loop.generator),
            meta={
                "fingerprint": fingerprint,
                "best_loss": loop.best_loss,
                "best_epoch": loop.best_epoch,
                "bad_epochs": loop.bad_epochs,
                "history": [r.as_dict() for r in loop.history],
            },
        ),
    )
