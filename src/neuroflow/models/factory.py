"""One factory: every network is built from its `ModelSpec`, nowhere else."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from neuroflow.models.autoencoder import Autoencoder, reconstruction_error
from neuroflow.models.cnn import CNN
from neuroflow.models.gan import GAN
from neuroflow.models.mlp import MLP
from neuroflow.models.rnn import RECURRENT, RecurrentNet
from neuroflow.models.spec import ModelSpec
from neuroflow.models.transformer import TransformerNet

MODEL_TYPES = ("mlp", "cnn", *RECURRENT, "transformer", "autoencoder", "gan")


def build_model(spec: ModelSpec) -> nn.Module:
    """The network `spec` describes; every one maps a flat (N, input_dim) batch to its output
    (a GAN samples: (N, latent) in, flat (N, input_dim) images out)."""
    model: nn.Module
    if spec.type == "gan":  # its own (DCGAN) initialisation, for both networks
        return GAN(
            spec.shape,
            spec.latent,
            arch=spec.gan_arch,
            hidden=spec.hidden,
            channels=spec.channels,
            dropout=spec.dropout,
            batch_norm=spec.batch_norm,
        )
    if spec.type == "mlp":
        model = MLP(
            spec.input_dim,
            spec.output_dim,
            spec.hidden,
            activation=spec.activation,
            dropout=spec.dropout,
            batch_norm=spec.batch_norm,
        )
    elif spec.type == "cnn":
        model = CNN(
            spec.shape,
            spec.output_dim,
            spec.channels,
            spec.hidden,
            kernel_size=spec.kernel_size,
            activation=spec.activation,
            dropout=spec.dropout,
            batch_norm=spec.batch_norm,
        )
    elif spec.type in RECURRENT:
        model = RecurrentNet(
            spec.type,
            spec.shape,
            spec.output_dim,
            hidden_size=spec.hidden_size,
            layers=spec.layers,
            dropout=spec.dropout,
            window_norm=spec.window_norm,
            season=spec.season,
        )
    elif spec.type == "transformer":
        model = TransformerNet(
            spec.shape,
            spec.output_dim,
            d_model=spec.d_model,
            heads=spec.heads,
            layers=spec.layers,
            dropout=spec.dropout,
            window_norm=spec.window_norm,
            season=spec.season,
        )
    elif spec.type == "autoencoder":
        model = Autoencoder(
            spec.input_dim,
            spec.hidden,
            spec.latent,
            activation=spec.activation,
            dropout=spec.dropout,
            batch_norm=spec.batch_norm,
        )
    else:
        raise ValueError(f"model.type={spec.type!r} is not a known network; one of {MODEL_TYPES}")
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
        # Recurrent and attention weights keep PyTorch's own (orthogonal-friendly) defaults.
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
            if scheme == "he":
                nn.init.kaiming_normal_(module.weight, nonlinearity=nonlinearity)
            elif scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                raise ValueError(f"model.init={scheme!r} is not a known initialisation")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class InferenceHead(nn.Module):
    """Network + the task's output transform.

    Classification: probabilities (N, C) (softmax, or sigmoid of a single logit for `bce`).
    Regression / forecast: de-standardised predictions (N,). Anomaly: the reconstruction error
    per row (N,), the anomaly score.

    This is the exact module exported to ONNX and used for the PyTorch side of the parity check.
    """

    def __init__(self, network: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.network = network
        self.task = spec.task
        # Decided here, not from the output's shape, so tracing for ONNX sees no branch.
        self.single_logit = spec.task == "binary" and spec.output_dim == 1  # bce
        self.register_buffer("target_center", torch.tensor(spec.target_center))
        self.register_buffer("target_scale", torch.tensor(spec.target_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        if self.task == "anomaly":
            return reconstruction_error(x, out)
        if self.task in ("regression", "forecast"):
            return out[:, 0] * self.target_scale + self.target_center
        if self.single_logit:
            p = torch.sigmoid(out)
            return torch.cat([1.0 - p, p], dim=-1)
        return torch.softmax(out, dim=-1)
