"""Exact angular attention: the kernel RACE estimates, computed in full (RACE.md section 1).

    sim(q, k) = (1 - arccos(cos(q, k)) / pi) ** gamma
    O_i = sum_j sim(q_i, k_j) v_j / sum_j sim(q_i, k_j)

Quadratic in time; chunked over queries so that memory stays O(chunk x N).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F

from .base import Attention
from .quadratic import DEFAULT_QUERY_CHUNK, chunked_kernel_attention


def angular_similarity(q, k, gamma: float):
    """(b, h, n_q, d), (b, h, n_k, d) -> (b, h, n_q, n_k) sharpened angular similarity."""
    cosine = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-1, -2)
    # arccos has an infinite slope at +-1: stay a hair inside so gradients remain finite
    margin = 10 * torch.finfo(cosine.dtype).eps
    cosine = cosine.clamp(-1 + margin, 1 - margin)
    return (1 - torch.arccos(cosine) / math.pi) ** gamma


class AngularAttention(Attention):
    def __init__(
        self, head_dim: int, num_heads: int, gamma: float = 8, chunk_size: int = DEFAULT_QUERY_CHUNK
    ):
        super().__init__(head_dim, num_heads)
        if not gamma > 0:
            raise ValueError(f"angular gamma must be positive, got {gamma!r}")
        self.gamma, self.chunk_size = gamma, chunk_size

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma}"

    def attend(self, q, k, v, causal, key_padding_mask):
        return chunked_kernel_attention(
            q,
            k,
            v,
            partial(angular_similarity, gamma=self.gamma),
            causal=causal,
            key_padding_mask=key_padding_mask,
            normalize=True,
            chunk=self.chunk_size,
        )
