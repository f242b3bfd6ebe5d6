"""train: fit the network on the processed splits; weights as safetensors + a JSON spec."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from neuroflow.config import Params, Paths
from neuroflow.errors import ConfigError
from neuroflow.io import read_json, write_json, write_with
from neuroflow.models.spec import ModelSpec
from neuroflow.processed import load_split
from neuroflow.recipe import build_spec, settings_from, target_affine, training_targets

if TYPE_CHECKING:
    import torch

    from neuroflow.training.distributed import DistributedContext
    from neuroflow.training.engine import FitResult, TrainData, TrainSettings

log = logging.getLogger(__name__)


def load_train_shard(paths: Paths, rank: int, world_size: int) -> tuple[np.ndarray, np.ndarray]:
    """This rank's block of training rows (features read lazily), and every row's target.

    The full target is small and the model spec needs it whole (classes, target scaling),
    so every rank builds the same network; the features are read for this shard only.
    """
    from safetensors import safe_open

    from neuroflow.training.distributed import shard_rows

    with safe_open(str(paths.processed_split("train")), framework="numpy") as f:
        y = f.get_tensor("y")
        rows = shard_rows(len(y), rank, world_size)
        x = f.get_slice("x")[rows.start : rows.stop]
    return x, y


def train_features_and_targets(paths: Paths) -> tuple[int, np.ndarray]:
    """The feature width and every training target, without reading the features."""
    from safetensors import safe_open

    with safe_open(str(paths.processed_split("train")), framework="numpy") as f:
        return int(f.get_slice("x").get_shape()[1]), f.get_tensor("y")


def streams(params: Params, paths: Paths, distributed: bool) -> bool:
    """Whether the training rows stream from disk (train.streaming; auto: by file size)."""
    mode = params.train.streaming
    if mode == "always" and distributed:
        raise ConfigError(
            "train.streaming=always with more than one process: each rank already reads only "
            "its own shard of the training rows; use train.streaming=auto or never"
        )
    if mode != "auto":
        return mode == "always"
    size = paths.processed_split("train").stat().st_size
    return not distributed and size > params.train.in_memory_max_mb * 2**20


def _fingerprint(
    spec: ModelSpec, settings: Any, data_md5: dict[str, str], step: dict[str, Any] | None = None
) -> str:
    """Identity of (config, data): a checkpoint resumes only a run with the same one.
    `step`: the settings of a StepHook's step (the GAN's), when the network trains with one."""
    digest = hashlib.sha256()
    digest.update(json.dumps(spec.to_json(), sort_keys=True).encode())
    digest.update(json.dumps(settings.__dict__, sort_keys=True).encode())
    if step is not None:
        digest.update(json.dumps(step, sort_keys=True).encode())
    digest.update(json.dumps(data_md5, sort_keys=True).encode())
    return digest.hexdigest()


def adopt_checkpoints(paths: Paths, record: dict[str, Any]) -> None:
    """Claim the checkpoint directory for the record's run; if the previous owner was killed
    mid-run (still RUNNING), the new run's record names it (the resuming run points to it)."""
    from neuroflow.training import checkpoint

    previous = checkpoint.claim(paths.checkpoint_dir, record["run_key"])
    if (
        previous is not None
        and previous.run_id != record["run_key"]
        and previous.status == checkpoint.RUNNING
    ):
        record["tags"]["neuroflow.interrupted_run"] = previous.run_id
        log.warning("train: run %s was interrupted (left running)", previous.run_id)


def run(params: Params, paths: Paths) -> dict[str, Any]:
    """Train in this process, or as one rank of a torchrun job (rank 0 tracks and writes)."""
    from neuroflow.training import distributed

    ctx = distributed.from_env(params.train.device)
    try:
        return _train(params, paths, ctx)
    finally:
        distributed.shutdown()


@dataclass
class _Prepared:
    """What the training run needs, from the processed splits and params."""

    spec: ModelSpec
    settings: TrainSettings
    data: TrainData
    streamed: bool
    schema: dict[str, Any]
    data_md5: dict[str, str]  # the splits' DVC hashes: checkpoint identity and dataset digests


def _train(params: Params, paths: Paths, ctx: DistributedContext | None) -> dict[str, Any]:
    import functools

    import torch

    from neuroflow import tracking
    from neuroflow.models.factory import build_model
    from neuroflow.training import checkpoint
    from neuroflow.training.engine import fit

    prep = _prepare(params, paths, ctx)
    step_hook, step_id = _step_hook(params, prep.spec)
    fingerprint = _fingerprint(prep.spec, prep.settings, prep.data_md5, step_id)
    start = _plan_start(params, paths, ctx, fingerprint, prep.settings)
    torch.manual_seed(params.seed)  # initial weights depend on the seed alone
    model = build_model(prep.spec)
    train_model = functools.partial(
        fit,
        model,
        prep.data,
        prep.settings,
        checkpoint_dir=paths.checkpoint_dir,
        checkpoint_every_s=params.runtime.checkpoint_every_s,
        fingerprint=fingerprint,
        distributed=ctx,
        step_hook=step_hook,
    )
    if ctx is not None and not ctx.is_main:  # rank 0 alone tracks, checkpoints and writes
        result = train_model()
        return {
            "rank": ctx.rank,
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
        }
    record = _open_record(params, paths, ctx, prep, start)
    try:
        result = train_model()
    except Exception:
        # A failure is worth MLflow's import: the run shows as FAILED with what it had.
        record["end_time"] = tracking.now_ms()
        tracking.log_record(paths.root, record, status="FAILED")
        raise
    summary = _write_model(paths, model, prep, result, ctx)
    # The model is written: the next run trains from the seed instead of resuming this one.
    checkpoint.mark_finished(paths.checkpoint_dir, record["run_key"])
    _record_result(paths, record, result)
    return summary


def _prepare(params: Params, paths: Paths, ctx: DistributedContext | None) -> _Prepared:
    """Splits as the engine reads them (in memory, streamed, or this rank's shard)."""
    import torch

    from neuroflow import tracking
    from neuroflow.training.engine import TensorSplits
    from neuroflow.training.streaming import SafetensorsChunks, StreamedSplits

    streamed = streams(params, paths, distributed=ctx is not None)
    x_train: np.ndarray | None = None
    if streamed:
        input_dim, y_train = train_features_and_targets(paths)
    elif ctx is None:
        x_train, y_train = load_split(paths, "train")
        input_dim = x_train.shape[1]
    else:
        x_train, y_train = load_train_shard(paths, ctx.rank, ctx.world_size)
        input_dim = x_train.shape[1]
    x_val, y_val = load_split(paths, "val")
    schema = read_json(paths.schema)
    spec = build_spec(
        params, input_dim, schema["classes"], y_train, schema, target_affine(paths, schema)
    )
    settings = settings_from(params)
    if ctx is not None:
        y_train, settings = _shard(y_train, settings, ctx)
    to_targets = training_targets(params, spec)
    x_val, y_val = to_targets(x_val, y_val)
    data: TrainData
    if x_train is None:
        chunks = SafetensorsChunks(
            paths.processed_split("train"), params.train.stream_chunk_rows, to_targets
        )
        data = StreamedSplits(chunks, torch.from_numpy(x_val), torch.from_numpy(y_val))
        log.info("train: streaming %d training rows in %d chunks", chunks.rows, len(chunks))
    else:
        x_train, y_train = to_targets(x_train, y_train)
        data = TensorSplits(
            torch.from_numpy(x_train),
            torch.from_numpy(y_train),
            torch.from_numpy(x_val),
            torch.from_numpy(y_val),
        )
    # In blocks, once: the data half of the checkpoint identity, and the datasets' digests.
    data_md5 = {s: tracking.file_md5(paths.processed_split(s)) for s in ("train", "val")}
    return _Prepared(spec, settings, data, streamed, schema, data_md5)


def _shard(
    y_train: np.ndarray, settings: TrainSettings, ctx: DistributedContext
) -> tuple[np.ndarray, TrainSettings]:
    """This rank's targets and settings: the same global batch as one process (DDP averages
    the ranks' gradients)."""
    import dataclasses

    from neuroflow.training.distributed import per_rank_batch, shard_rows

    y_train = y_train[shard_rows(len(y_train), ctx.rank, ctx.world_size)]
    settings = dataclasses.replace(
        settings,
        batch_size=per_rank_batch(settings.batch_size, ctx.world_size),
        device=str(ctx.device(settings.device)),
    )
    log.info(
        "train: rank %d/%d on %s, %d training rows, batch %d per rank",
        ctx.rank,
        ctx.world_size,
        settings.device,
        len(y_train),
        settings.batch_size,
    )
    return y_train, settings


def _step_hook(params: Params, spec: ModelSpec) -> tuple[Any, dict[str, Any] | None]:
    """The GAN's adversarial step (and its settings, part of the checkpoint identity)."""
    if spec.type != "gan":
        return None, None
    import dataclasses

    from neuroflow.training.gan import AdversarialStep, GanSettings

    t = params.train
    hook = AdversarialStep(
        GanSettings(t.gan_d_steps, t.gan_label_smoothing, t.gan_beta1), seed=params.seed
    )
    return hook, dataclasses.asdict(hook.settings)


def _plan_start(
    params: Params,
    paths: Paths,
    ctx: DistributedContext | None,
    fingerprint: str,
    settings: TrainSettings,
) -> str:
    """Resume an interrupted run or start from the seed; says which (for the log and the run)."""
    from neuroflow.training import checkpoint

    start = ""
    if ctx is None or ctx.is_main:
        # Before any rank can load it: a finished run's final checkpoint is cleared here.
        plan = checkpoint.plan_start(
            paths.checkpoint_dir, fingerprint, epochs=settings.epochs, patience=settings.patience
        )
        start = (
            plan.reason if plan.resume else f"fresh start from seed {params.seed}: {plan.reason}"
        )
        log.info("train: %s", start)
    if ctx is not None:
        ctx.barrier()
    return start


def _open_record(
    params: Params, paths: Paths, ctx: DistributedContext | None, prep: _Prepared, start: str
) -> dict[str, Any]:
    """The run's record: params, tags, lineage, the checkpoints' ownership and the datasets
    (export logs it into MLflow, see `tracking`)."""
    from neuroflow import tracking
    from neuroflow.training.device import describe_device, resolve_device

    scale_tags = (
        {}
        if ctx is None
        else {"train.world_size": str(ctx.world_size), "train.backend": ctx.backend}
    )
    device = resolve_device(prep.settings.device)
    record = tracking.new_record(
        paths.root,
        experiment=params.registry.experiment,
        run_name=tracking.run_name(paths.root, f"{params.model.type}-{params.task}"),
        params=params.flat(),
        tags={
            "neuroflow.task": params.task,
            "neuroflow.model_type": params.model.type,
            "neuroflow.source": prep.schema["source"],
            **{f"env.{k}": v for k, v in describe_device(device).items()},
            **scale_tags,
        },
        source="dvc.yaml:train",
        note=f"`{params.model.type}` network for the {params.task} task: {start}.",
    )
    adopt_checkpoints(paths, record)
    contexts = {"train": "training", "val": "validation"}
    record["datasets"] = [
        tracking.dataset_entry(paths.root, contexts[s], paths.processed_split(s), md5)
        for s, md5 in prep.data_md5.items()
    ]
    return record


def _write_model(
    paths: Paths,
    model: torch.nn.Module,
    prep: _Prepared,
    result: FitResult,
    ctx: DistributedContext | None,
) -> dict[str, Any]:
    """Weights, spec, history and the run's summary, each written atomically."""
    from safetensors.torch import save_file

    history = [r.as_dict() for r in result.history]
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_with(paths.weights, lambda tmp: save_file(weights, str(tmp), metadata={"format": "pt"}))
    write_json(paths.model_spec, prep.spec.to_json())
    write_json(paths.history, history)
    summary = {
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "epochs_run": len(history),
        "stopped_early": result.stopped_early,
        "resumed_from_epoch": result.resumed_from,
        "samples_per_second": round(result.samples_per_second, 1),
        "device": result.device,
        "threads": result.threads,
        "training_data": "streamed" if prep.streamed else "in_memory",
    }
    if "cuda_graphs" in result.extra:  # how the steps ran: captured, replayed, eager and why
        summary["cuda_graphs"] = result.extra["cuda_graphs"]
    if ctx is not None:
        summary |= {"world_size": ctx.world_size, "backend": ctx.backend}
    write_json(paths.train_summary, summary)
    return summary


def _record_result(paths: Paths, record: dict[str, Any], result: FitResult) -> None:
    """Per-epoch curves and the run's figures into the record (one batch for MLflow later)."""
    from neuroflow import tracking

    rows: list[list[Any]] = []
    for rec in result.history:
        row = rec.as_dict()
        for key in ("train_loss", "val_loss", "lr", "val_accuracy", "d_loss", "g_loss"):
            if key in row:
                rows.append([key, row[key], row["epoch"]])
    rows += [
        ["best_epoch", result.best_epoch, 0],
        ["best_val_loss", result.best_val_loss, 0],
        ["samples_per_second", result.samples_per_second, 0],
    ]
    record["metrics"] = rows
    record["tags"]["env.train_threads"] = str(result.threads)
    record["artifacts"] = [
        [path.relative_to(paths.root).as_posix(), "model"]
        for path in (paths.model_spec, paths.history)
    ]
    record["end_time"] = tracking.now_ms()
    write_json(paths.run_info, record)  # export logs it
    log.info(
        "train: best epoch %d (val_loss %.4f) of %d on %s (%d threads), %.0f samples/s; run %s",
        result.best_epoch,
        result.best_val_loss,
        len(result.history),
        result.device,
        result.threads,
        result.samples_per_second,
        record["run_key"],
    )
