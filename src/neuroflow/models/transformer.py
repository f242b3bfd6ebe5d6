"""Transformer encoder over a sequence: value embedding + learned positions, pre-norm blocks.

Attention is written out (as in nanoGPT) rather than taken from nn.MultiheadAttention, whose
fused inference fast path does not trace to ONNX reliably; the maths is the same. A tabular
input [D] is read as D tokens of one value (each feature a token).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neuroflow.models.rnn import WindowNorm, sequence_shape


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"model.heads={heads} must divide model.d_model={d_model}")
        self.heads = heads
        self.d_model = d_model
        self.scale = 1.0 / math.sqrt(d_model // heads)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Sizes come from the module, not the tensor, so the exported graph keeps a free batch.
        length, d, hd = x.shape[1], self.d_model, self.d_model // self.heads
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (t.reshape(-1, length, self.heads, hd).transpose(1, 2) for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)
        y = (self.drop(att) @ v).transpose(1, 2).reshape(-1, length, d)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, heads, dropout)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.mlp(self.ln2(x)))


class TransformerNet(nn.Module):
    def __init__(
        self,
        input_shape: list[int],
        output_dim: int,
        *,
        d_model: int = 32,
        heads: int = 2,
        layers: int = 1,
        dropout: float = 0.0,
        window_norm: str = "none",
        season: int = 1,
    ) -> None:
        super().__init__()
        self.shape = sequence_shape(input_shape)
        length, width = self.shape
        self.norm = WindowNorm(window_norm, season)
        self.embed = nn.Linear(width, d_model)
        self.position = nn.Parameter(torch.zeros(1, length, d_model))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.Sequential(*(Block(d_model, heads, dropout) for _ in range(layers)))
        self.ln = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, level = self.norm(x.reshape(-1, *self.shape))
        z = self.blocks(self.embed(seq) + self.position)
        # Read out from the last step (the most recent value) plus the mean of all steps.
        pooled = self.ln(z[:, -1, :] + z.mean(dim=1))
        return self.norm.restore(self.out(pooled), level)
