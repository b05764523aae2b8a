"""Straightforward einsum RACE (paper normalisation): the baseline the engine is measured against.

Same math and same planes as `race` (RaceAttention), written the obvious way and differentiated
by plain autograd, which keeps every intermediate alive for the backward pass:

    phi(x)  = softmax_r(tanh(W_l x) . c_r / tau)                     per table l, concatenated
    non-causal: O_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j) + eps)
    causal:     the same with sums over j <= i, computed in chunks of C tokens: an exclusive
                cumsum of per-chunk states (N/C x S x D) plus a masked C x C product per chunk.

b batch, h heads, n length, g chunks, c chunk size, s features, d head size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from race.attention.race import RaceAttention, corners

REFERENCE_CHUNK = 64


def soft_hash_reference(x, planes, tau):
    """(b, h, n, d), (l, p, d) -> (b, h, n, l * 2**p), written with einsum."""
    z = torch.tanh(torch.einsum("bhnd,lpd->bhnlp", x, planes))
    logits = torch.einsum("bhnlp,rp->bhnlr", z, corners(planes.shape[1], x.device, x.dtype)) / tau
    return logits.softmax(-1).flatten(-2)


def race_reference(q, k, v, planes, tau, *, causal: bool, eps: float = 1e-6,
                   chunk: int = REFERENCE_CHUNK):
    """RACE attention of one ensemble, paper normalisation, by einsum (RACE.md sections 3-4)."""
    fq, fk = soft_hash_reference(q, planes, tau), soft_hash_reference(k, planes, tau)
    if not causal:
        kv = torch.einsum("bhns,bhnd->bhsd", fk, v)
        num = torch.einsum("bhns,bhsd->bhnd", fq, kv)
        den = torch.einsum("bhns,bhs->bhn", fq, fk.sum(-2))
        return num / (den.unsqueeze(-1) + eps)
    n = q.shape[-2]
    pad = -n % chunk
    fqc, fkc, vc = (F.pad(x, (0, 0, 0, pad)).unflatten(-2, (-1, chunk)) for x in (fq, fk, v))
    states = torch.einsum("bhgcs,bhgcd->bhgsd", fkc, vc)
    before = states.cumsum(2) - states  # state each chunk sees from the chunks before it
    inter = torch.einsum("bhgcs,bhgsd->bhgcd", fqc, before)
    mask = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    scores = torch.einsum("bhgcs,bhgjs->bhgcj", fqc, fkc) * mask
    intra = torch.einsum("bhgcj,bhgjd->bhgcd", scores, vc)
    num = (inter + intra).flatten(2, 3)[..., :n, :]
    den = torch.einsum("bhns,bhns->bhn", fq, fk.cumsum(-2))
    return num / (den.unsqueeze(-1) + eps)


class RaceReference(RaceAttention):
    """`race` with the einsum forward above; takes race's options, supports paper normalisation."""

    def __init__(self, head_dim: int, num_heads: int, **options):
        super().__init__(head_dim, num_heads, **options)
        if self.normalization != "paper" or self.ensembles != 1:
            raise ValueError(
                "race_reference implements normalization='paper' with ensembles=1 only; "
                f"got normalization={self.normalization!r}, ensembles={self.ensembles}"
            )

    def attend(self, q, k, v, causal, key_padding_mask):
        if key_padding_mask is not None:
            raise ValueError("race_reference takes no key_padding_mask; use race for padded inputs")
        planes = self.planes[0].to(q.dtype)
        return race_reference(q, k, v, planes, self.tau().to(q.dtype), causal=causal, eps=self.eps)
