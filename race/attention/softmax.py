"""Softmax attention through torch.nn.functional.scaled_dot_product_attention (scale 1/sqrt(D))."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Attention


def allowed_keys(key_padding_mask, causal: bool, n: int):
    """(B, 1, N, N) bool mask of the keys each query may attend to, never an empty row.

    A row with no allowed key (a padded query whose keys are all padding) gets its own
    position back, so softmax stays finite and causality is kept; such outputs are padding.
    """
    allowed = (~key_padding_mask)[:, None, None, :]  # (B, 1, 1, N)
    if causal:
        allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=allowed.device).tril()
    else:
        allowed = allowed.expand(-1, -1, n, -1)
    diagonal = torch.eye(n, dtype=torch.bool, device=allowed.device)
    empty = ~allowed.any(-1, keepdim=True)
    return allowed | (empty & diagonal)


class SoftmaxAttention(Attention):
    """Exact softmax attention; fused kernels (flash / memory-efficient) when no mask is given."""

    # SDPA accumulates in float32 internally; casting would only cost memory and speed.
    float32_internal = False

    def __init__(self, head_dim: int, num_heads: int):
        super().__init__(head_dim, num_heads)

    def attend(self, q, k, v, causal, key_padding_mask):
        if key_padding_mask is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        mask = allowed_keys(key_padding_mask, causal, q.shape[-2])
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
