"""One factory: every network is built from its `ModelSpec`, nowhere else."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from neuroflow.models.mlp import MLP
from neuroflow.models.spec import ModelSpec


def build_model(spec: ModelSpec) -> nn.Module:
    if spec.type == "mlp":
        model: nn.Module = MLP(
            spec.input_dim,
            spec.output_dim,
            spec.hidden,
            activation=spec.activation,
            dropout=spec.dropout,
            batch_norm=spec.batch_norm,
        )
    else:
        raise ValueError(f"model.type={spec.type!r} is not a known network")
    init_weights(model, spec.init, spec.activation)
    return model


def init_weights(model: nn.Module, scheme: str, activation: str) -> None:
    """He (Kaiming) suits ReLU-family activations, Xavier (Glorot) suits tanh; biases start at 0."""
    if scheme == "default":
        return
    nonlinearity: Literal["leaky_relu", "relu"] = (
        "leaky_relu" if activation == "leaky_relu" else "relu"
    )
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if scheme == "he":
                nn.init.kaiming_normal_(module.weight, nonlinearity=nonlinearity)
            elif scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                raise ValueError(f"model.init={scheme!r} is not a known initialisation")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class InferenceHead(nn.Module):
    """Network + the task's output transform: probabilities, or de-standardised predictions.

    This is the exact module exported to ONNX and used for the PyTorch side of the parity check.
    """

    def __init__(self, network: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.network = network
        self.task = spec.task
        self.register_buffer("target_center", torch.tensor(spec.target_center))
        self.register_buffer("target_scale", torch.tensor(spec.target_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        if self.task == "regression":
            return out[:, 0] * self.target_scale + self.target_center
        return torch.softmax(out, dim=-1)
