"""Sigmoid attention (Ramapuram et al. 2024): out_i = sum_j sigmoid(q_i . k_j / sqrt(D) + b) v_j.

b = -log(N) with N the sequence length; no normalisation over keys.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from .base import Attention
from .quadratic import DEFAULT_QUERY_CHUNK, chunked_kernel_attention


def sigmoid_weights(q, k, bias: float):
    return torch.sigmoid(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5 + bias)


class SigmoidAttention(Attention):
    def __init__(self, head_dim: int, num_heads: int, chunk_size: int = DEFAULT_QUERY_CHUNK):
        super().__init__(head_dim, num_heads)
        self.chunk_size = chunk_size

    def attend(self, q, k, v, causal, key_padding_mask):
        bias = -math.log(k.shape[-2])
        return chunked_kernel_attention(
            q,
            k,
            v,
            partial(sigmoid_weights, bias=bias),
            causal=causal,
            key_padding_mask=key_padding_mask,
            normalize=False,
            chunk=self.chunk_size,
        )

    def decode(self, q, k, v, cache):
        raise ValueError(
            "sigmoid attention's bias -log(N) depends on the final sequence length, so "
            "token-by-token decoding cannot match its causal forward pass; decode with race, "
            "linear, performer, softmax or angular"
        )
