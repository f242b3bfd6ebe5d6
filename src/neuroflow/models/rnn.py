"""Recurrent networks (Elman RNN, LSTM, GRU) over a sequence, read out from the last step.

The flat input (N, L·F) is viewed as L steps of F values. With `window_norm`, each window is
first expressed relative to its own level (mean of the last `season` values) and the prediction
is mapped back: the network learns the shape of the series, not its level, so a trending series
whose test values lie beyond the training range is still forecast sensibly (a RevIN-style trick
that lives inside the module, so the exported graph does it too).
"""

from __future__ import annotations

import torch
from torch import nn

RECURRENT: dict[str, type[nn.RNN | nn.LSTM | nn.GRU]] = {
    "rnn": nn.RNN,
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}


class WindowNorm(nn.Module):
    """Normalise each window by its level; `restore` maps a 1-step output back."""

    def __init__(self, mode: str, season: int) -> None:
        super().__init__()
        if mode not in ("none", "additive", "multiplicative"):
            raise ValueError(f"model.window_norm={mode!r} is not known")
        self.mode = mode
        self.season = max(1, season)

    def level(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, L, F); the level of each window and feature: (N, 1, F)
        return x[:, -self.season :, :].mean(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mode == "none":
            return x, torch.zeros_like(x[:, :1, :1])
        level = self.level(x)[:, :, :1]
        if self.mode == "additive":
            return x - level, level
        level = level.abs().clamp_min(1e-6)
        return x / level - 1.0, level

    def restore(self, out: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        lv = level.reshape(-1, 1)
        if self.mode == "none":
            return out
        if self.mode == "additive":
            return out + lv
        return (out + 1.0) * lv


def sequence_shape(input_shape: list[int]) -> list[int]:
    """[L] or [L, F]; a tabular [D] is read as D steps of one value."""
    if len(input_shape) == 1:
        return [input_shape[0], 1]
    if len(input_shape) == 2:
        return list(input_shape)
    raise ValueError(f"recurrent networks need a [L] or [L, F] input_shape, not {input_shape}")


class RecurrentNet(nn.Module):
    def __init__(
        self,
        kind: str,
        input_shape: list[int],
        output_dim: int,
        *,
        hidden_size: int = 32,
        layers: int = 1,
        dropout: float = 0.0,
        window_norm: str = "none",
        season: int = 1,
    ) -> None:
        super().__init__()
        if kind not in RECURRENT:
            raise ValueError(f"model.type={kind!r} is not a recurrent network")
        self.shape = sequence_shape(input_shape)
        self.norm = WindowNorm(window_norm, season)
        self.rnn = RECURRENT[kind](
            input_size=self.shape[1],
            hidden_size=hidden_size,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,  # between stacked layers only
        )
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, level = self.norm(x.reshape(-1, *self.shape))
        states, _ = self.rnn(seq)
        out = self.out(self.drop(states[:, -1, :]))
        return self.norm.restore(out, level)
