"""Pre-LayerNorm transformer block and the stack of them (with a causal flag for LMs)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

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

    def decode_step(self, x, cache=None):
        """One new position x (B, 1, dim) of causal decoding -> (B, 1, dim), the new cache."""
        attended, cache = self.attention.decode_step(self.attention_norm(x), cache)
        x = x + attended
        return x + self.mlp(self.mlp_norm(x)), cache


class TransformerStack(nn.Module):
    """depth blocks and a final LayerNorm; causal=True makes every block causal (for LMs).

    Seeded attention options (RACE hyperplanes, Performer features) get seed + layer index,
    so that the layers hash with different random projections. checkpointing=True keeps only
    each block's input during training and recomputes the block in the backward pass
    (activation checkpointing: less memory for long contexts, about one more forward pass).
    """

    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int, dropout: float = 0.0,
                 attention: str = "race", attention_options: dict | None = None,
                 causal: bool = False, checkpointing: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        options = dict(attention_options or {})
        self.causal, self.checkpointing = causal, checkpointing
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
            if self.checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, key_padding_mask, self.causal, use_reentrant=False)
            else:
                x = block(x, key_padding_mask=key_padding_mask, causal=self.causal)
        return self.norm(x)

    def decode_step(self, x: torch.Tensor, caches: list | None = None):
        """One new position x (B, 1, dim) -> normalised (B, 1, dim), one cache per block.

        Start with caches=None; equals forward() of a causal stack at each position.
        """
        if not self.causal:
            raise ValueError("decode_step needs a causal stack (TransformerStack(causal=True))")
        caches = list(caches) if caches is not None else [None] * len(self.blocks)
        for layer, block in enumerate(self.blocks):
            x, caches[layer] = block.decode_step(x, caches[layer])
        return self.norm(x), caches
