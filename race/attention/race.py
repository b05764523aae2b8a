"""RACE attention: soft locality-sensitive hashing over a sharpened angular kernel.

Joshi et al., "RACE Attention: A Strictly Linear-Time Attention for Long-Sequence Training"
(arXiv 2510.04008). Equations refer to ../shared/RACE.md. Notation: b batch, h heads, n length,
d head size, l tables (L), p hyperplanes per table (P), r buckets (R = 2**P), s = L * R features.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from .base import Attention, keep_mask
from .causal_linear import DEFAULT_CHUNK, causal_product
from .race_kernel import fused_race_attention, hash_from_projection
from .recurrent import linear_attention_step

NORMALIZATIONS = ("paper", "bucket")
TEMPERATURES = ("learned", "fixed")
TAU_RANGE = (0.01, 10.0)  # clamp of the learned temperature, as in the released code


# kernel functions


def corners(hyperplanes: int, device=None, dtype=None) -> torch.Tensor:
    """The R = 2**P corners of {-1, +1}^P, shape (R, P)."""
    signs = list(itertools.product((-1.0, 1.0), repeat=hyperplanes))
    return torch.tensor(signs, device=device, dtype=dtype)


def soft_hash(x, planes, tau):
    """Soft bucket assignment of RACE.md section 2, concatenated over tables.

    x (..., n, d), planes (l, p, d), tau scalar -> phi(x) (..., n, l * 2**p), each table's
    block a probability vector over its buckets, ordered as `corners`.
    """
    z = torch.tanh(x @ planes.flatten(0, 1).T)  # (..., n, l * p)
    return hash_from_projection(z, tau, planes.shape[1])


def race_attention(
    q,
    k,
    v,
    planes,
    tau,
    *,
    causal: bool = False,
    key_padding_mask=None,
    normalization: str = "paper",
    eps: float = 1e-6,
    chunk: int = DEFAULT_CHUNK,
):
    """RACE attention of one ensemble (RACE.md sections 3 and 4).

    q, k, v (b, h, n, d); planes (l, p, d); tau a float or 0-dim tensor.
    normalization "paper": O_i = sum_l phi_l(q_i)^T B_l / (sum_l phi_l(q_i)^T A_l + eps).
    normalization "bucket": O_i = sum_l sum_r phi_l(q_i)_r B_lr / (A_lr + eps).
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if normalization == "paper":
        # linear attention over phi, only the hyperplane projections stored (memory O(N D))
        tau = torch.as_tensor(tau, dtype=planes.dtype, device=q.device)
        keep = keep_mask(key_padding_mask, q)
        return fused_race_attention(q, k, v, planes, tau, causal=causal, keep=keep, eps=eps,
                                    chunk=chunk)
    q_features = soft_hash(q, planes, tau)
    k_features = soft_hash(k, planes, tau)
    keep = keep_mask(key_padding_mask, k_features)
    if keep is not None:  # a padded key holds no mass in any bucket
        k_features = k_features * keep
    if causal:
        # bucket means at time t: divide the query's weights by the prefix counts A_t
        counts = k_features.cumsum(-2)  # (b, h, n, s)
        return causal_product(q_features / (counts + eps), k_features, v, chunk)
    counts = k_features.sum(-2).unsqueeze(-1)  # (b, h, s, 1)
    bucket_means = (k_features.transpose(-1, -2) @ v) / (counts + eps)  # (b, h, s, d)
    return q_features @ bucket_means


# classes


class RaceAttention(Attention):
    """RACE attention with M ensembles of L tables of P hyperplanes (outputs averaged over M).

    Hyperplanes are drawn once from `seed`, kept in the buffer `planes` (M, L, P, D), never
    learned. temperature "learned": tau = exp(theta), theta initialised to log(tau_init or 1),
    clamped to [0.01, 10]; "fixed": tau = tau_init or sqrt(D).
    """

    def __init__(
        self,
        head_dim: int,
        num_heads: int,
        hyperplanes: int = 3,
        tables: int = 3,
        ensembles: int = 1,
        normalization: str = "paper",
        temperature: str = "learned",
        tau_init: float | None = None,
        eps: float = 1e-6,
        seed: int = 0,
        chunk_size: int = DEFAULT_CHUNK,
    ):
        super().__init__(head_dim, num_heads)
        for label, value in (
            ("hyperplanes", hyperplanes),
            ("tables", tables),
            ("ensembles", ensembles),
            ("chunk_size", chunk_size),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"race option {label} must be a positive integer, got {value!r}")
        if hyperplanes > 16:
            raise ValueError(f"hyperplanes={hyperplanes} gives 2**{hyperplanes} buckets; use <= 16")
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"race normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        if temperature not in TEMPERATURES:
            raise ValueError(f"race temperature must be one of {TEMPERATURES}, got {temperature!r}")
        if tau_init is not None and not tau_init > 0:
            raise ValueError(f"race tau_init must be positive, got {tau_init!r}")
        if not eps > 0:
            raise ValueError(f"race eps must be positive, got {eps!r}")
        self.hyperplanes, self.tables, self.ensembles = hyperplanes, tables, ensembles
        self.normalization, self.temperature = normalization, temperature
        self.eps, self.seed, self.chunk_size = eps, seed, chunk_size
        generator = torch.Generator().manual_seed(seed)
        planes = torch.randn(ensembles, tables, hyperplanes, head_dim, generator=generator)
        self.register_buffer("planes", planes)  # (M, L, P, D)
        if temperature == "learned":
            self.log_tau = nn.Parameter(torch.tensor(math.log(tau_init or 1.0)))
        else:
            self.register_buffer("fixed_tau", torch.tensor(tau_init or math.sqrt(head_dim)))

    def tau(self) -> torch.Tensor:
        """Current temperature as a 0-dim tensor."""
        if self.temperature == "learned":
            return self.log_tau.exp().clamp(*TAU_RANGE)
        return self.fixed_tau

    @property
    def num_features(self) -> int:
        """S = L * 2**P features per ensemble."""
        return self.tables * 2**self.hyperplanes

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, hyperplanes={self.hyperplanes}, tables={self.tables}, "
            f"ensembles={self.ensembles}, normalization={self.normalization!r}, "
            f"temperature={self.temperature!r}"
        )

    @property
    def upcasts_itself(self) -> bool:
        """The paper form upcasts block by block, so half inputs are never copied whole."""
        return self.normalization == "paper"

    def attend(self, q, k, v, causal, key_padding_mask):
        work = torch.promote_types(q.dtype, torch.float32)
        tau = self.tau().to(work)
        planes = self.planes.to(work)
        outputs = [
            race_attention(
                q,
                k,
                v,
                planes[m],
                tau,
                causal=causal,
                key_padding_mask=key_padding_mask,
                normalization=self.normalization,
                eps=self.eps,
                chunk=self.chunk_size,
            )
            for m in range(self.ensembles)
        ]
        return outputs[0] if len(outputs) == 1 else torch.stack(outputs).mean(0)

    def decode(self, q, k, v, cache):
        """One token with the running per-bucket sums of each ensemble as the state."""
        tau = self.tau().to(q.dtype)
        planes = self.planes.to(q.dtype)
        states = cache if cache is not None else [None] * self.ensembles
        outputs, new_states = [], []
        for m, state in enumerate(states):
            out, state = linear_attention_step(
                soft_hash(q, planes[m], tau), soft_hash(k, planes[m], tau), v, state,
                eps=self.eps, normalization=self.normalization,
            )  # fmt: skip
            outputs.append(out)
            new_states.append(state)
        return torch.stack(outputs).mean(0), new_states
