"""The JSON model spec saved beside the weights: enough to rebuild the network without pickle."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    type: str  # "mlp", ...
    task: str  # "binary" | "multiclass" | "regression"
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(**data)
