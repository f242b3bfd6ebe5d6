"""Typed pipeline parameters and project paths.

`params.yaml` is read here and nowhere else. Each stage receives the `Params` object (or the
section it needs); DVC's `params:` lists in dvc.yaml name the exact keys each stage reads, so a
change re-runs only the stages that depend on it.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Image classification is `multiclass` (or `binary`) with `data.modality: image`.
# `generative` learns the training rows' distribution (model.type gan); labels only rate samples.
Task = Literal["binary", "multiclass", "regression", "forecast", "anomaly", "generative"]
ModelType = Literal["mlp", "cnn", "rnn", "lstm", "gru", "transformer", "autoencoder", "gan"]


class _Section(BaseModel):
    # A typo in params.yaml must fail loudly instead of being silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    # sklearn: bundled table; series: bundled or CSV/Parquet time series; idx: MNIST-format files
    source: Literal["sklearn", "csv", "parquet", "series", "idx"] = "sklearn"
    name: str = "breast_cancer"  # bundled dataset (sklearn) or bundled series (series)
    path: str | None = None  # file for csv / parquet sources, the images file for idx
    labels_path: str | None = None  # idx: the labels file
    modality: Literal["tabular", "image", "sequence"] = "tabular"
    # sequence: past values per window and the seasonal period of the naive baseline
    window: int = Field(24, ge=2)
    season: int = Field(12, ge=1)
    value_column: str = "value"  # series read from a CSV/Parquet file
    # regression: > 1 stratifies the splits on this many target quantile bins; 0 = plain shuffle
    regression_bins: int = Field(0, ge=0)
    # anomaly: the label that counts as normal; train/val keep only these rows
    normal_class: int | str | None = None
    target: str = "target"
    categorical: list[str] = Field(default_factory=list)  # forced categorical columns
    drop: list[str] = Field(default_factory=list)  # identifier-like columns to leave out
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    max_rows: int = Field(10_000_000, gt=0)  # refuse inputs larger than this
    csv_delimiter: str = ","
    # rows without a target value: refused at ingest (false), or dropped and counted in the log
    drop_missing_target: bool = False

    @model_validator(mode="after")
    def _path_for_files(self) -> DataConfig:
        if self.source in ("csv", "parquet", "idx") and not self.path:
            raise ValueError(f"data.path is required when data.source is {self.source!r}")
        if self.source == "idx" and not self.labels_path:
            raise ValueError("data.labels_path is required when data.source is 'idx'")
        if self.season > self.window:
            raise ValueError(f"data.season={self.season} exceeds data.window={self.window}")
        return self


class DriftConfig(_Section):
    """`validate.drift` in params.yaml: what counts as drift, and whether it stops the pipeline."""

    enabled: bool = True
    fail: bool = True  # false: report drift in the summary and Data Docs, but do not fail
    numeric_method: Literal["psi", "ks"] = "psi"
    psi_threshold: float = Field(0.25, gt=0)  # PSI > 0.25 is the usual "significant shift"
    ks_threshold: float = Field(0.2, gt=0, le=1)
    categorical_threshold: float = Field(0.2, gt=0, le=1)  # total variation distance
    max_p_value: float = Field(0.001, gt=0, le=1)  # the shift must also be significant
    bins: int = Field(10, ge=2, le=100)  # quantile bins of the train column
    min_rows: int = Field(20, ge=1)  # a split or batch smaller than this is not judged


class ValidateConfig(_Section):
    suite: str = "data/suites/breast_cancer.json"
    max_duplicate_fraction: float = Field(0.05, ge=0, le=1)  # fully repeated rows per split
    drift: DriftConfig = DriftConfig()


class PreprocessConfig(_Section):
    impute_numeric: Literal["mean", "median", "zero"] = "median"
    scale: Literal["standard", "minmax", "robust", "none"] = "standard"
    select: Literal["none", "kbest_f", "kbest_chi2", "kbest_mi", "variance"] = "none"
    k: int = Field(20, gt=0)
    variance_threshold: float = Field(0.0, ge=0)
    pca: int = Field(0, ge=0)  # 0 = off; otherwise the number of components
    max_categories: int = Field(50, gt=0)  # one-hot width cap per categorical column
    # images: pixels divided by the train maximum (global) or the tabular per-column scaling
    image_scale: Literal["global", "per_pixel"] = "global"
    augment_copies: int = Field(0, ge=0)  # shifted copies of each train image (train only)
    augment_shift: int = Field(1, ge=0)  # max pixel shift of an augmented copy


class ModelConfig(_Section):
    type: ModelType = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [64, 32])
    activation: Literal["relu", "gelu", "tanh", "leaky_relu", "silu"] = "relu"
    dropout: float = Field(0.1, ge=0, lt=1)
    batch_norm: bool = False
    init: Literal["he", "xavier", "default"] = "he"
    channels: list[int] = Field(default_factory=lambda: [16, 32])  # cnn: conv widths
    kernel_size: int = Field(3, ge=1)  # cnn
    hidden_size: int = Field(32, gt=0)  # rnn / lstm / gru state width
    layers: int = Field(1, gt=0)  # recurrent or transformer layers
    d_model: int = Field(32, gt=0)  # transformer width
    heads: int = Field(2, gt=0)  # transformer attention heads (must divide d_model)
    latent: int = Field(8, gt=0)  # autoencoder bottleneck; gan: the generator's latent vector
    # gan: mlp (widths from `hidden`) or conv (DCGAN-style, widths from `channels`)
    gan_arch: Literal["mlp", "conv"] = "conv"
    # sequences: normalise each window by its last season's level (additive or ratio)
    window_norm: Literal["none", "additive", "multiplicative"] = "none"

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.d_model % self.heads:
            raise ValueError(f"model.heads={self.heads} must divide model.d_model={self.d_model}")
        return self


class TrainConfig(_Section):
    epochs: int = Field(200, gt=0)
    batch_size: int = Field(64, gt=0)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    scheduler: Literal["none", "step", "plateau", "cosine"] = "plateau"
    step_size: int = Field(30, gt=0)
    gamma: float = Field(0.5, gt=0, le=1)
    grad_clip: float = Field(1.0, ge=0)  # 0 = off
    l1: float = Field(0.0, ge=0)  # L1 penalty on weights (L2 is weight_decay)
    # auto: cross_entropy for classification, mse otherwise; bce: binary with one logit
    loss: Literal["auto", "cross_entropy", "bce", "mse", "mae"] = "auto"
    patience: int = Field(20, gt=0)  # early stopping on validation loss
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = True
    # Training rows held in memory, or streamed from disk one chunk at a time (validation is
    # always in memory); auto streams when the training features exceed in_memory_max_mb.
    streaming: Literal["auto", "always", "never"] = "auto"
    in_memory_max_mb: int = Field(4096, gt=0)
    stream_chunk_rows: int = Field(65_536, gt=1)
    # gan: discriminator updates per generator update (each on fresh noise, same real batch),
    # one-sided label smoothing (real label = 1 - this), and Adam's beta1 for both networks.
    gan_d_steps: int = Field(1, ge=1, le=10)
    gan_label_smoothing: float = Field(0.1, ge=0, lt=0.5)
    gan_beta1: float = Field(0.5, ge=0, lt=1)
    # The whole training step replayed as one CUDA graph (training/cuda_graph.py). auto: where
    # the step can be captured on CUDA (eager on CPU, and for what cannot be captured, logged);
    # on: the same, but an error where it cannot be; off: always eager.
    cuda_graphs: Literal["auto", "on", "off"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _switch_words(cls, data: Any) -> Any:
        # YAML 1.1 (PyYAML) reads an unquoted on/off as a boolean.
        if isinstance(data, dict) and isinstance(data.get("cuda_graphs"), bool):
            return {**data, "cuda_graphs": "on" if data["cuda_graphs"] else "off"}
        return data


class RuntimeConfig(_Section):
    """How stages run, never what they produce.

    No stage lists this section in dvc.yaml, so changing a key here re-runs nothing.
    """

    # A checkpoint once this many seconds have passed since the last (and after the last epoch):
    # a crash loses about this much training plus the epoch in progress. 0 = every epoch.
    # Resuming is exact, so the cadence cannot change the trained weights.
    checkpoint_every_s: float = Field(5.0, ge=0)
    # Torch intra-op threads for training on CPU. 0 = one thread unless every core is clearly
    # faster, timed on the model's forward pass: small networks train several times faster on one
    # thread, and stall at OpenMP barriers with more threads than idle cores. The count changes
    # speed, not the trained bits: one and two threads train identical weights
    # (tests/unit/test_engine.py); MKL does not promise that for every shape.
    cpu_threads: int = Field(0, ge=0)


class CVConfig(_Section):
    """`neuroflow cv`: k-fold cross-validation on train + val (the test split stays unseen)."""

    folds: int = Field(5, ge=2)


def _default_space() -> dict[str, dict[str, Any]]:
    return {
        "train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "model.dropout": {"choices": [0.0, 0.1, 0.3]},
    }


class TuneConfig(_Section):
    """`neuroflow tune`: hyperparameter search over `model.*` / `train.*` keys.

    `space` maps a dotted key to either {"choices": [...]} or {"low": a, "high": b, "log": bool,
    "int": bool}. The best values go to `output` as a params-style YAML that
    `neuroflow run-preset --file` applies with `dvc exp run -S`.
    """

    sampler: Literal["tpe", "grid", "random"] = "tpe"
    trials: int = Field(20, gt=0)
    space: dict[str, dict[str, Any]] = Field(default_factory=lambda: _default_space())
    output: str = "artifacts/tune/best_params.yaml"


class ExportConfig(_Section):
    opset: int = Field(18, ge=13)
    # ONNX and PyTorch agree when |diff| <= parity_atol + parity_rtol * the output's scale (max
    # |PyTorch output| on the test split): float32 rounding grows with the values' magnitude.
    parity_atol: float = Field(1e-5, gt=0)
    parity_rtol: float = Field(1e-4, ge=0)


class RegistryConfig(_Section):
    model_name: str = "neuroflow-breast-cancer"
    experiment: str = "neuroflow"


# promotion.metric when unset: scale-free metrics, so the default min_delta fits any data.
PROMOTION_METRIC = {
    "binary": "roc_auc",
    "multiclass": "accuracy",
    "regression": "r2",
    "forecast": "mae_vs_naive",
    "anomaly": "roc_auc",
    "generative": "fid",
}


class PromotionConfig(_Section):
    """The champion/challenger gate (`neuroflow promote`)."""

    # Primary metric; None = the task's default (PROMOTION_METRIC). Direction: evaluation/direction.
    metric: str | None = None
    # The improvement the bootstrap 95% lower bound (and the point estimate) must EXCEED;
    # None = the gate's per-metric default (registry/gate.py: DEFAULT_MIN_DELTA).
    min_delta: float | None = Field(None, gt=0)
    bootstrap: int = Field(1000, ge=100)
    max_slice_drop: float = Field(0.05, ge=0)  # per class / declared slice, on the metric
    slices: list[str] = Field(default_factory=list)  # categorical columns defining slices
    # With no champion yet, the challenger must reach these absolute test metrics. Keyed by
    # task so that a preset or `-S task=...` that switches task never inherits another task's
    # metrics (DVC's `-S` and preset overrides merge mappings, they cannot replace them).
    thresholds: dict[Task, dict[str, float]] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]
            "binary": {"accuracy": 0.95, "roc_auc": 0.98},
            "multiclass": {"accuracy": 0.93},
            "regression": {"r2": 0.4},
            "forecast": {"mae_vs_naive": 0.9},
            "anomaly": {"roc_auc": 0.9},
            # generated vs held-out FD over real-vs-real FD (evaluation/generative.py)
            "generative": {"fid_ratio": 3.0},
        }
    )

    def thresholds_for(self, task: str) -> dict[str, float]:
        return dict(self.thresholds.get(task, {}))  # type: ignore[call-overload]

    def metric_for(self, task: str) -> str:
        return self.metric or PROMOTION_METRIC[task]


class Params(_Section):
    seed: int = 42
    task: Task = "binary"
    data: DataConfig = DataConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    preprocess: PreprocessConfig = PreprocessConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    export: ExportConfig = ExportConfig()
    registry: RegistryConfig = RegistryConfig()
    promotion: PromotionConfig = PromotionConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    cv: CVConfig = CVConfig()
    tune: TuneConfig = TuneConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def is_classification(self) -> bool:
        return self.task in ("binary", "multiclass")

    @model_validator(mode="after")
    def _task_fits(self) -> Params:
        if self.task == "forecast" and self.data.modality != "sequence":
            raise ValueError("task=forecast needs data.modality=sequence")
        if self.task == "anomaly":
            if self.model.type != "autoencoder":
                raise ValueError("task=anomaly needs model.type=autoencoder")
            if self.data.normal_class is None:
                raise ValueError("task=anomaly needs data.normal_class (the normal label)")
        elif self.model.type == "autoencoder":
            raise ValueError("model.type=autoencoder is for task=anomaly")
        if (self.task == "generative") != (self.model.type == "gan"):
            raise ValueError(
                "task=generative and model.type=gan go together "
                f"(got task={self.task}, model.type={self.model.type})"
            )
        if self.train.loss == "bce" and self.task != "binary":
            raise ValueError("train.loss=bce is for task=binary")
        return self

    def flat(self) -> dict[str, str]:
        """Every resolved parameter as `section.key -> str`, for experiment tracking."""
        out: dict[str, str] = {}

        def walk(prefix: str, value: object) -> None:
            if isinstance(value, dict):
                for key, sub in value.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), sub)
            else:
                out[prefix] = str(value)

        walk("", self.model_dump(by_alias=True, mode="json"))
        return out


class ParamsError(Exception):
    """params.yaml is missing, unreadable or invalid; the message names the file and key.

    Not an `errors.NeuroflowError`: config.py imports nothing of the package (every stage
    imports it). The CLI's guard (`commands.guarded`) treats it as one: its message, exit 2.
    """

    exit_code = 2


def load_params(
    path: str | Path = "params.yaml",
    overrides: Mapping[str, Any] | None = None,
    *,
    text: str | None = None,
) -> Params:
    """params.yaml (or `text` standing for it), with `overrides` applied, validated.

    The one place params are parsed: the CLI, presets, Prefect and tuning all come through
    here. `overrides` maps dotted keys (`train.lr`) or nested sections to values; a missing
    section is created, so a key params.yaml leaves at its default can still be set.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8") if text is None else text) or {}
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read params ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: params are a mapping of sections, got {type(raw).__name__}")
    return _validated(merge_overrides(raw, overrides or {}), path, bool(overrides))


def with_overrides(params: Params, overrides: Mapping[str, Any], origin: str) -> Params:
    """Loaded `params` with `overrides` applied, validated the same way as `load_params`."""
    raw = merge_overrides(params.model_dump(by_alias=True, mode="json"), overrides)
    return _validated(raw, origin, True)


def _validated(raw: dict[str, Any], origin: str | Path, overridden: bool) -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        where = f"{origin} with overrides" if overridden else str(origin)
        raise ParamsError(f"{where}: invalid params\n{explain(exc)}") from exc


def merge_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `raw` with dotted-key or nested `overrides` applied (mappings merge)."""
    out: dict[str, Any] = {k: _copy(v) for k, v in raw.items()}
    for key, value in overrides.items():
        node = out
        *parents, leaf = str(key).split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if isinstance(value, Mapping) and isinstance(node.get(leaf), dict):
            node[leaf] = merge_overrides(node[leaf], value)
        else:
            node[leaf] = _copy(value)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def explain(exc: ValidationError) -> str:
    """One line per wrong key: its dotted path, what was given, what is allowed.

    pydantic's own text names its internals (union members, error URLs); a person editing
    params.yaml needs the key as they wrote it and the nearest valid spelling.
    """
    lines: dict[str, str] = {}
    unions: dict[str, list[str]] = {}  # a union reports once per member: merge them
    for error in exc.errors(include_url=False):
        model, keys = _walk(tuple(error["loc"]))
        where = ".".join(keys) or "params"
        kind, given = error["type"], error.get("input")
        if kind == "extra_forbidden":
            known = sorted(_field_names(model)) if model is not None else []
            leaf = keys[-1] if keys else ""
            close = difflib.get_close_matches(leaf, known, n=1)
            hint = f" (did you mean {'.'.join([*keys[:-1], close[0]])!r}?)" if close else ""
            line = f"unknown key {where!r}{hint}; known here: {', '.join(known)}"
        elif kind == "literal_error":
            allowed = error.get("ctx", {}).get("expected", "")
            line = f"{where}: got {given!r}; allowed: {allowed}"
        elif kind == "value_error":
            line = f"{where}: {str(error['msg']).removeprefix('Value error, ')}"
        elif kind == "missing":
            line = f"{where}: required, not given"
        else:
            msgs = unions.setdefault(where, [])
            msgs.append(str(error["msg"])[:1].lower() + str(error["msg"])[1:])
            line = f"{where}: got {given!r}; {' or '.join(dict.fromkeys(msgs))}"
            lines[where] = f"  - {line}"
            continue
        lines.setdefault(where, f"  - {line}")
    return "\n".join(lines.values())


def _walk(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, list[str]]:
    """pydantic's error location → the params.yaml key path, and the section model at its end.

    Union members and validator names in the location are not keys: the walk stops at the
    first part that is not a field (keeping it when it is the unknown key of a section).
    """
    model: type[BaseModel] | None = Params
    keys: list[str] = []
    for position, part in enumerate(loc):
        if model is None:
            break
        field = _field(model, str(part))
        if field is None:
            keys.append(str(part))  # the unknown key itself
            break
        name, annotation = field
        keys.append(name)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        model = None
        if typing.get_origin(annotation) is dict:  # a mapping: the rest are its keys
            keys += [str(p) for p in loc[position + 1 :] if not _is_type_tag(p)]
    return model, keys


def _is_type_tag(part: Any) -> bool:
    # pydantic names union members and validators in locations: `int`, `list[int]`, ...
    return isinstance(part, str) and (part in _TYPE_TAGS or "[" in part)


_TYPE_TAGS = frozenset({"int", "float", "str", "bool", "none", "list", "dict"})


def _field(model: type[BaseModel], key: str) -> tuple[str, Any] | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.alias or name, info.annotation
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


@dataclass(frozen=True)
class Paths:
    """Every file the pipeline reads or writes, relative to the project root (defined once)."""

    root: Path

    # check: the marker ingest depends on, so that check always runs first
    @property
    def params_checked(self) -> Path:
        return self.root / "data" / "checked.txt"

    # ingest
    @property
    def raw_dir(self) -> Path:
        return self.root / "data" / "raw"

    def raw_split(self, split: str) -> Path:
        return self.raw_dir / f"{split}.parquet"

    @property
    def schema(self) -> Path:
        return self.raw_dir / "schema.json"

    # validate
    @property
    def validation_dir(self) -> Path:
        return self.root / "data" / "validated"

    @property
    def validation_summary(self) -> Path:
        return self.validation_dir / "summary.json"

    @property
    def data_docs(self) -> Path:
        return self.root / "reports" / "data_docs"

    # preprocess
    @property
    def processed_dir(self) -> Path:
        return self.root / "data" / "processed"

    def processed_split(self, split: str) -> Path:
        return self.processed_dir / f"{split}.safetensors"

    @property
    def preprocessor(self) -> Path:
        return self.processed_dir / "preprocessor.json"

    # train
    @property
    def model_dir(self) -> Path:
        return self.root / "artifacts" / "model"

    @property
    def weights(self) -> Path:
        return self.model_dir / "model.safetensors"

    @property
    def model_spec(self) -> Path:
        return self.model_dir / "model_spec.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "artifacts" / "checkpoints"

    @property
    def history(self) -> Path:
        return self.root / "artifacts" / "plots" / "history.json"

    @property
    def train_summary(self) -> Path:
        return self.root / "artifacts" / "train_summary.json"

    @property
    def run_info(self) -> Path:
        return self.root / "artifacts" / "run.json"

    # evaluate
    @property
    def metrics(self) -> Path:
        return self.root / "artifacts" / "metrics.json"

    @property
    def plots_dir(self) -> Path:
        return self.root / "artifacts" / "plots"

    @property
    def report_dir(self) -> Path:
        return self.root / "artifacts" / "report"

    @property
    def predictions(self) -> Path:
        return self.root / "artifacts" / "report" / "test_predictions.parquet"

    # model selection (`neuroflow cv`; `neuroflow tune` writes to tune.output)
    @property
    def cv_report(self) -> Path:
        return self.root / "artifacts" / "cv.json"

    # export
    @property
    def export_dir(self) -> Path:
        return self.root / "artifacts" / "export"

    @property
    def onnx(self) -> Path:
        return self.export_dir / "model.onnx"

    @property
    def model_card(self) -> Path:
        return self.export_dir / "MODEL_CARD.md"

    @property
    def registration(self) -> Path:
        return self.export_dir / "registration.json"


SPLITS: tuple[str, ...] = ("train", "val", "test")


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI when set, else the project's SQLite store in the repo root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').resolve()}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for any other store or in-memory."""
    if not uri.startswith("sqlite:///"):
        return None
    db = uri[len("sqlite:///") :]
    return None if not db or db == ":memory:" else Path(db)
