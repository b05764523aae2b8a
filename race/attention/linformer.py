"""Linformer (Wang et al. 2020): keys and values projected along the sequence to length k.

    K' = E K, V' = F V with learned E, F in R^{k x max_seq_len} (shared by the heads),
    O = softmax(Q K'^T / sqrt(D)) V'.

A projection along the sequence mixes every position, so Linformer cannot be causal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Attention, keep_mask


class LinformerAttention(Attention):
    supports_causal = False

    def __init__(self, head_dim: int, num_heads: int, k: int = 128, max_seq_len: int | None = None):
        super().__init__(head_dim, num_heads)
        if max_seq_len is None:
            raise ValueError(
                "linformer needs max_seq_len (the longest sequence it will see), e.g. "
                "build_attention('linformer', ..., max_seq_len=4096) or attn.max_seq_len=4096"
            )
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"linformer k must be a positive integer, got {k!r}")
        self.k, self.max_seq_len = k, max_seq_len
        std = k**-0.5
        self.key_projection = nn.Parameter(torch.randn(k, max_seq_len) * std)  # E
        self.value_projection = nn.Parameter(torch.randn(k, max_seq_len) * std)  # F

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, k={self.k}, max_seq_len={self.max_seq_len}"

    def attend(self, q, k, v, causal, key_padding_mask):
        n = q.shape[-2]
        if n > self.max_seq_len:
            raise ValueError(
                f"linformer was built with max_seq_len={self.max_seq_len} but got length {n}; "
                "raise attn.max_seq_len"
            )
        keep = keep_mask(key_padding_mask, k)
        if keep is not None:  # padded keys and values must not enter the projection
            k, v = k * keep, v * keep
        key_projection = self.key_projection[:, :n].to(q.dtype)
        value_projection = self.value_projection[:, :n].to(q.dtype)
        k = key_projection @ k  # (b, h, k, d)
        v = value_projection @ v
        return F.scaled_dot_product_attention(q, k, v)
