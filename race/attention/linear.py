"""Linear attention with elu(x) + 1 features (Katharopoulos et al. 2020, Transformers are RNNs)."""

from __future__ import annotations

import torch.nn.functional as F

from .base import Attention, keep_mask
from .causal_linear import DEFAULT_CHUNK, linear_attention
from .recurrent import linear_attention_step


def elu_features(x):
    """phi(x) = elu(x) + 1 > 0."""
    return F.elu(x) + 1


class LinearAttention(Attention):
    def __init__(
        self, head_dim: int, num_heads: int, eps: float = 1e-6, chunk_size: int = DEFAULT_CHUNK
    ):
        super().__init__(head_dim, num_heads)
        if not eps > 0:
            raise ValueError(f"linear eps must be positive, got {eps!r}")
        self.eps, self.chunk_size = eps, chunk_size

    def attend(self, q, k, v, causal, key_padding_mask):
        q_features, k_features = elu_features(q), elu_features(k)
        keep = keep_mask(key_padding_mask, k_features)
        if keep is not None:
            k_features = k_features * keep
        return linear_attention(
            q_features, k_features, v, causal=causal, eps=self.eps, chunk=self.chunk_size
        )

    def decode(self, q, k, v, cache):
        return linear_attention_step(elu_features(q), elu_features(k), v, cache, eps=self.eps)
