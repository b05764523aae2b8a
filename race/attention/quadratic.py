"""Exact quadratic attention with an arbitrary weight function, chunked over queries.

Used by angular and sigmoid attention, for which no fused kernel exists. Each chunk of queries
builds a (chunk x N) weight matrix at most; in training every chunk is checkpointed so that the
backward pass recomputes its weights instead of keeping N x N of them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

# Queries per chunk: a chunk holds DEFAULT_QUERY_CHUNK x N weights per (batch, head).
DEFAULT_QUERY_CHUNK = 512


def _attend_chunk(q_chunk, k, v, keep, start, weight_fn, causal, normalize):
    weights = weight_fn(q_chunk, k)  # (b, h, c, n)
    if keep is not None:
        weights = weights * keep  # (b, 1, 1, n): zero on padded keys
    if causal:
        rows = torch.arange(start, start + q_chunk.shape[-2], device=q_chunk.device)
        cols = torch.arange(k.shape[-2], device=q_chunk.device)
        weights = weights.masked_fill(cols[None, :] > rows[:, None], 0)
    out = weights @ v
    if normalize:
        out = out / weights.sum(-1, keepdim=True).clamp_min(torch.finfo(out.dtype).tiny)
    return out


def chunked_kernel_attention(
    q,
    k,
    v,
    weight_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    causal: bool,
    key_padding_mask=None,
    normalize: bool,
    chunk: int = DEFAULT_QUERY_CHUNK,
):
    """out_i = sum_j w(q_i, k_j) v_j [/ sum_j w(q_i, k_j)] over allowed keys j."""
    n = q.shape[-2]
    keep = None if key_padding_mask is None else (~key_padding_mask)[:, None, None, :].to(q.dtype)
    use_checkpoint = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))
    outputs = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        # causal: keys after the chunk's last query are never seen
        k_seen, v_seen = (k, v) if not causal else (k[..., :stop, :], v[..., :stop, :])
        keep_seen = keep if keep is None or not causal else keep[..., :stop]
        args = (
            q[..., start:stop, :],
            k_seen,
            v_seen,
            keep_seen,
            start,
            weight_fn,
            causal,
            normalize,
        )
        if use_checkpoint:
            outputs.append(checkpoint(_attend_chunk, *args, use_reentrant=False))
        else:
            outputs.append(_attend_chunk(*args))
    return torch.cat(outputs, dim=-2)
