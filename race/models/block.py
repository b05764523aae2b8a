"""Pre-LayerNorm transformer block and the stack of them (with a causal flag for LMs)."""

from __future__ import annotations

import torch
from torch import nn

from race.attention import MultiHeadAttention


class FeedForward(nn.Module):
    """dim -> mlp_dim -> GELU -> dim, dropout after the activation and after the output."""

    def __init__(self, dim: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(mlp_dim, dim), nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


class TransformerBlock(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x)). Attention options go to the registry."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0,
                 attention: str = "race", **attention_options):
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(dim, heads, attention=attention, dropout=dropout,
                                            **attention_options)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_dim, dropout)

    def forward(self, x, key_padding_mask=None, causal: bool = False):
        x = x + self.attention(self.attention_norm(x), key_padding_mask=key_padding_mask,
                               causal=causal)
        return x + self.mlp(self.mlp_norm(x))


class TransformerStack(nn.Module):
    """depth blocks and a final LayerNorm; causal=True makes every block causal (for LMs).

    Seeded attention options (RACE hyperplanes, Performer features) get seed + layer index,
    so that the layers hash with different random projections.
    """

    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int, dropout: float = 0.0,
                 attention: str = "race", attention_options: dict | None = None,
                 causal: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        options = dict(attention_options or {})
        self.causal = causal
        blocks = []
        for layer in range(depth):
            layer_options = dict(options)
            if "seed" in layer_options:
                layer_options["seed"] = int(layer_options["seed"]) + layer
            blocks.append(TransformerBlock(dim, heads, mlp_dim, dropout, attention,
                                           **layer_options))
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None):
        if key_padding_mask is not None and not key_padding_mask.any():
            key_padding_mask = None  # lets softmax take the fused kernels (e.g. image tasks)
        for block in self.blocks:
            x = block(x, key_padding_mask=key_padding_mask, causal=self.causal)
        return self.norm(x)
