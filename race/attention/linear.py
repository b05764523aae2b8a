"""Linear attention with elu(x) + 1 features (Katharopoulos et al. 2020, Transformers are RNNs)."""

from __future__ import annotations

from .base import Attention, keep_mask
from .causal_linear import DEFAULT_CHUNK
from .race_kernel import elu_features, fused_linear_attention
from .recurrent import linear_attention_step


class LinearAttention(Attention):
    def __init__(
        self, head_dim: int, num_heads: int, eps: float = 1e-6, chunk_size: int = DEFAULT_CHUNK
    ):
        super().__init__(head_dim, num_heads)
        if not eps > 0:
            raise ValueError(f"linear eps must be positive, got {eps!r}")
        self.eps, self.chunk_size = eps, chunk_size

    def attend(self, q, k, v, causal, key_padding_mask):
        return fused_linear_attention(  # elu_features of q and k, rebuilt block by block
            q, k, v, causal=causal, feature_map="elu", keep=keep_mask(key_padding_mask, k),
            eps=self.eps, chunk=self.chunk_size,
        )

    def decode(self, q, k, v, cache):
        return linear_attention_step(elu_features(q), elu_features(k), v, cache, eps=self.eps)
