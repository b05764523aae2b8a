"""Recurrent form of causal linear attention, for decoding one token at a time.

The state after t tokens is A_t = sum_{j<=t} phi(k_j) (S) and B_t = sum_{j<=t} phi(k_j) v_j^T
(S x D): each new token costs O(S D) and nothing grows with the context. It yields exactly the
outputs of the chunked causal kernel (chunk_products.py) at every position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LinearState:
    key_sums: torch.Tensor  # A_t, (b, h, s)
    kv: torch.Tensor  # B_t, (b, h, s, d)

    def scaled(self, factor):
        """The state with every key feature multiplied by factor (b, h, 1, 1)."""
        return LinearState(self.key_sums * factor[..., 0], self.kv * factor)


def linear_attention_step(q_features, k_features, v, state: LinearState | None, *, eps,
                          normalization: str = "paper"):  # fmt: skip
    """One step: features (b, h, 1, s), v (b, h, 1, d) -> output (b, h, 1, d), new state.

    "paper": phi(q)^T B_t / (phi(q)^T A_t + eps); "bucket": sum_s phi(q)_s B_t,s / (A_t,s + eps).
    """
    kv = k_features.transpose(-1, -2) @ v  # (b, h, s, d)
    key_sums = k_features[..., 0, :]
    if state is not None:
        kv, key_sums = state.kv + kv, state.key_sums + key_sums
    if normalization == "bucket":
        out = (q_features / (key_sums.unsqueeze(-2) + eps)) @ kv
    else:
        denominator = (q_features * key_sums.unsqueeze(-2)).sum(-1, keepdim=True)
        out = (q_features @ kv) / (denominator + eps)
    return out, LinearState(key_sums, kv)
