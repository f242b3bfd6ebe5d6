"""The JSON model spec saved beside the weights: enough to rebuild the network without pickle."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    type: str  # mlp | cnn | rnn | lstm | gru | transformer | autoencoder | gan
    task: str  # binary | multiclass | regression | forecast | anomaly | generative
    input_dim: int
    output_dim: int
    hidden: list[int] = field(default_factory=lambda: [64, 32])
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False
    init: str = "he"
    # Regression targets are standardised for training; the head undoes it.
    target_center: float = 0.0
    target_scale: float = 1.0
    classes: list[Any] = field(default_factory=list)
    # Every network takes a flat (N, input_dim) batch; input_shape says how to read it:
    # [D] tabular, [C, H, W] image, [L, F] sequence (L steps of F values).
    input_shape: list[int] = field(default_factory=list)
    channels: list[int] = field(default_factory=lambda: [16, 32])
    kernel_size: int = 3
    hidden_size: int = 32
    layers: int = 1
    d_model: int = 32
    heads: int = 2
    latent: int = 8  # autoencoder bottleneck, GAN latent vector
    gan_arch: str = "conv"  # gan: mlp | conv (DCGAN-style)
    window_norm: str = "none"
    season: int = 1

    @property
    def shape(self) -> list[int]:
        return list(self.input_shape) or [self.input_dim]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(**data)
