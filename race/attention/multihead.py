"""Multi-head attention layer: q/k/v/out projections around any attention of the registry."""

from __future__ import annotations

from torch import nn

from .registry import build_attention


class MultiHeadAttention(nn.Module):
    """(B, N, dim) -> (B, N, dim). Options go to the attention (see build_attention)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        attention: str = "race",
        bias: bool = True,
        dropout: float = 0.0,
        **options,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.attention = build_attention(attention, dim // heads, heads, **options)

    def forward(self, x, key_padding_mask=None, causal: bool = False):
        B, N, C = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.heads, C // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, N, D)
        out = self.attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)
        out = out.transpose(1, 2).reshape(B, N, C)  # (B, N, H * D)
        return self.dropout(self.out(out))

    def decode_step(self, x, cache=None):
        """One new position x (B, 1, dim) of causal decoding -> (B, 1, dim), cache."""
        B, N, C = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.heads, C // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, 1, D)
        out, cache = self.attention.decode_step(q, k, v, cache)
        return self.dropout(self.out(out.transpose(1, 2).reshape(B, N, C))), cache
