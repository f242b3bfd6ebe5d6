"""Dense autoencoder: input → hidden… → latent → …hidden → input; its reconstruction error is
the anomaly score (a model trained on normal rows reconstructs anomalies badly)."""

from __future__ import annotations

import torch
from torch import nn

from neuroflow.models.mlp import MLP


class Autoencoder(nn.Module):
    def __init__(
        self,
        input_dim: int,
        hidden: list[int],
        latent: int,
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = MLP(input_dim, latent, hidden, activation, dropout, batch_norm)
        self.decoder = MLP(
            latent, input_dim, list(reversed(hidden)), activation, dropout, batch_norm
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def reconstruction_error(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Mean squared error per row: (N,)."""
    return (reconstruction - x).pow(2).mean(dim=1)
