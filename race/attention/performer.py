"""Performer: FAVOR+ positive orthogonal random features (Choromanski et al. 2021).

phi(x) = exp(w_i . x' - |x'|^2 / 2) / sqrt(m), x' = x / D**(1/4), so that
E[phi(q) . phi(k)] = exp(q . k / sqrt(D)). Rows of W are blocks of orthonormal vectors rescaled
by chi-distributed norms. Exponentials are stabilised by subtracting a maximum (per query row,
one per (batch, head) for keys); eps is rescaled by the same factors so that the output equals
the unstabilised num / (den + eps) exactly, which keeps causal outputs independent of later keys.
The features are built inside the fused kernel (race_kernel, feature map "favor") block by
block, so neither the N x m features nor their autograd copies are stored.
"""

from __future__ import annotations

import math

import torch

from .base import Attention, keep_mask
from .causal_linear import DEFAULT_CHUNK
from .race_kernel import favor_logits, fused_linear_attention
from .recurrent import linear_attention_step


def orthogonal_gaussian(features: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """(features, dim) rows orthogonal in blocks of dim, norms distributed as Gaussian rows."""
    blocks = []
    for _ in range(-(-features // dim)):
        gaussian = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
        q, _ = torch.linalg.qr(gaussian)
        blocks.append(q.T)
    rows = torch.cat(blocks)[:features]
    norms = torch.randn(features, dim, generator=generator, dtype=torch.float64).norm(dim=1)
    return (rows * norms[:, None]).float()


class PerformerAttention(Attention):
    def __init__(
        self,
        head_dim: int,
        num_heads: int,
        features: int = 256,
        redraw_interval: int = 0,
        eps: float = 1e-6,
        seed: int = 0,
        chunk_size: int = DEFAULT_CHUNK,
    ):
        super().__init__(head_dim, num_heads)
        if not isinstance(features, int) or features < 1:
            raise ValueError(f"performer features must be a positive integer, got {features!r}")
        if not isinstance(redraw_interval, int) or redraw_interval < 0:
            raise ValueError(
                f"performer redraw_interval must be >= 0 (0 = never), got {redraw_interval!r}"
            )
        if not eps > 0:
            raise ValueError(f"performer eps must be positive, got {eps!r}")
        self.features, self.redraw_interval = features, redraw_interval
        self.eps, self.seed, self.chunk_size = eps, seed, chunk_size
        self.register_buffer("projection", self._draw(0))  # (m, d)
        # counters live in buffers so that a resumed checkpoint redraws on the same schedule
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))

    def _draw(self, index: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return orthogonal_gaussian(self.features, self.head_dim, generator)

    @torch.no_grad()
    def redraw(self):
        self.draws += 1
        self.projection.copy_(self._draw(int(self.draws)))

    def extra_repr(self) -> str:
        extra = f"features={self.features}, redraw_interval={self.redraw_interval}"
        return f"{super().extra_repr()}, {extra}"

    def attend(self, q, k, v, causal, key_padding_mask):
        if self.training and self.redraw_interval > 0:
            self.calls += 1
            if int(self.calls) % self.redraw_interval == 0:
                self.redraw()
        return fused_linear_attention(
            q, k, v, causal=causal, feature_map="favor", projection=self.projection,
            keep=keep_mask(key_padding_mask, k), eps=self.eps, chunk=self.chunk_size,
        )

    def decode(self, q, k, v, cache):
        """Recurrent step; the key stabiliser is a running maximum and the state is rescaled
        when it grows (the output does not depend on the stabiliser, see the module docstring)."""
        projection = self.projection.to(q.dtype)
        q_logits, k_logits = favor_logits(q, projection), favor_logits(k, projection)
        q_shift = q_logits.amax(-1, keepdim=True)  # (b, h, 1, 1)
        shift = k_logits.amax((-1, -2), keepdim=True)
        state = None
        if cache is not None:
            state, old_shift = cache
            shift = torch.maximum(shift, old_shift)
            state = state.scaled(torch.exp(old_shift - shift))
        scale = self.features**-0.5
        q_features = torch.exp(q_logits - q_shift) * scale
        k_features = torch.exp(k_logits - shift) * scale
        eps = torch.exp(math.log(self.eps) - q_shift - shift)
        out, state = linear_attention_step(q_features, k_features, v, state, eps=eps)
        return out, (state, shift)
