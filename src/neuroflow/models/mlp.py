"""Multi-layer perceptron: Linear → [BatchNorm] → activation → [Dropout], repeated."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


def dense_layers(
    width: int,
    hidden: list[int],
    activation: Callable[[], nn.Module],
    *,
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> tuple[list[nn.Module], int]:
    """Linear → [BatchNorm] → activation → [Dropout] per hidden size, from `width` inputs; and
    the width the last one gives (the next layer's input)."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(activation())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    return layers, width


class MLP(nn.Module):
    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        hidden: list[int],
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        layers, width = dense_layers(
            input_dim, hidden, ACTIVATIONS[activation], dropout=dropout, batch_norm=batch_norm
        )
        self.net = nn.Sequential(*layers, nn.Linear(width, output_dim))

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.net(x)
