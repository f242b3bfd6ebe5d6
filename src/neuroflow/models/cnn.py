"""Convolutional network: [Conv → [BatchNorm] → activation → MaxPool] per width, then an MLP.

The input arrives flat (N, C·H·W), exactly as the exported graph's preprocessing produces it,
and is viewed as an image here; a 1-D `input_shape` ([D]) is read as one channel of length D,
so the same network runs over a plain feature vector with Conv1d.
"""

from __future__ import annotations

import torch
from torch import nn

from neuroflow.models.mlp import ACTIVATIONS, MLP


class CNN(nn.Module):
    def __init__(
        self,
        input_shape: list[int],
        output_dim: int,
        channels: list[int],
        hidden: list[int],
        *,
        kernel_size: int = 3,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if len(input_shape) == 1:
            shape = [1, input_shape[0]]
        elif len(input_shape) in (2, 3):
            shape = list(input_shape)
        else:
            raise ValueError(f"cnn: input_shape {input_shape} is not [D], [C, L] or [C, H, W]")
        two_d = len(shape) == 3
        conv = nn.Conv2d if two_d else nn.Conv1d
        norm = nn.BatchNorm2d if two_d else nn.BatchNorm1d
        pool = nn.MaxPool2d if two_d else nn.MaxPool1d
        self.shape = shape
        layers: list[nn.Module] = []
        width, spatial = shape[0], shape[1:]
        for out_ch in channels:
            layers.append(conv(width, out_ch, kernel_size, padding=kernel_size // 2))
            if batch_norm:
                layers.append(norm(out_ch))
            layers.append(ACTIVATIONS[activation]())
            if min(spatial) >= 2:  # pool while there is something left to halve
                layers.append(pool(2))
                spatial = [s // 2 for s in spatial]
            width = out_ch
        self.features = nn.Sequential(*layers)
        flat = width
        for s in spatial:
            flat *= s
        self.classifier = MLP(flat, output_dim, hidden, activation, dropout, batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x.reshape(-1, *self.shape))
        return self.classifier(z.flatten(1))
