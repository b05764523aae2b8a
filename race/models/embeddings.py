"""Token embeddings with absolute positions: a learned table or fixed sinusoids."""

from __future__ import annotations

import math

import torch
from torch import nn

POSITIONS = ("learned", "sinusoidal", "none")


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sin/cos table of "Attention is all you need" (sec. 3.5)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (N, 1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class PositionalEmbedding(nn.Module):
    """embed(x) (B, N, dim) + an absolute position (learned table, fixed sinusoids or none) +
    dropout. Subclasses say how a token becomes a vector (a table of ids, a pixel projection)."""

    def __init__(self, dim: int, max_seq_len: int, positions: str = "learned",
                 dropout: float = 0.0):
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
        self.max_seq_len, self.positions = max_seq_len, positions
        if positions == "learned":
            self.position_table = nn.Parameter(torch.randn(max_seq_len, dim) * 0.02)
        elif positions == "sinusoidal":
            # not persistent: a function of the shape, so old checkpoints load at any length
            self.register_buffer("position_table", sinusoidal_positions(max_seq_len, dim),
                                 persistent=False)
        self.dropout = nn.Dropout(dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        if n > self.max_seq_len:
            raise ValueError(
                f"sequence of length {n} exceeds the model's max_seq_len={self.max_seq_len}; "
                "build the model for the data's seq_len"
            )
        h = self.embed(x)  # (B, N, C)
        if self.positions != "none":
            h = h + self.position_table[:n].to(h.dtype)
        return self.dropout(h)


class TokenEmbedding(PositionalEmbedding):
    """(B, N) token ids -> (B, N, dim) vectors: token table + position + dropout."""

    def __init__(self, vocab_size: int, dim: int, max_seq_len: int, positions: str = "learned",
                 dropout: float = 0.0):
        super().__init__(dim, max_seq_len, positions, dropout)
        # no padding_idx: padded positions are masked downstream, and in image tasks id 0 is a
        # real pixel (black) whose embedding must train
        self.tokens = nn.Embedding(vocab_size, dim)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.tokens(input_ids)
