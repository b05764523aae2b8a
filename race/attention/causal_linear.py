"""Linear attention over non-negative features, on the fused kernel of race_kernel.py.

Notation: s feature size (S), d value size (D), C chunk size.

    causal_product(a, b, c)[t] = sum_{j <= t} (a_t . b_j) c_j

runs chunk by chunk (RACE.md section 4): an inter-chunk term from the running state
sum_j b_j c_j^T (S x D) and an intra-chunk term from a masked C x C product, over blocks of
whole chunks (chunk_products.py). The fused kernel uses the same chunk products, so race,
linear, performer and RACE's bucket normalisation share one engine; the N x S x D tensor of
prefix states is never built, and the backward pass reuses each chunk's scores for two of its
three products.
"""

from __future__ import annotations

import torch

from .chunk_products import causal_backward_chunks, causal_chunks, chunk_and_blocks
from .race_kernel import fused_linear_attention

DEFAULT_CHUNK = 64


def _mask_future(scores):
    """(..., N, N) scores with the entries of keys after their query (j > t) set to 0."""
    n = scores.shape[-1]
    visible = torch.ones(n, n, dtype=torch.bool, device=scores.device).tril()
    return scores.masked_fill(~visible, 0)


def causal_product_reference(a, b, c):
    """Plain masked quadratic form of causal_product, for tests and the reader."""
    return _mask_future(a @ b.transpose(-1, -2)) @ c


def _as_rows(x):
    """(..., N, X) -> (R, N, X), a view when x's layout allows it."""
    return x.reshape(-1, *x.shape[-2:])


def _causal_product_forward(a, b, c, chunk: int):
    """(out (R, N, D), the state sum b_j c_j^T before each block (R, blocks, S, D))."""
    a, b, c = (_as_rows(x) for x in (a, b, c))
    rows, n = a.shape[:2]
    chunk, spans = chunk_and_blocks(n, chunk)
    out = c.new_empty(rows, n, c.shape[-1])
    before = a.new_empty(rows, len(spans), a.shape[-1], c.shape[-1])
    state = a.new_zeros(rows, a.shape[-1], c.shape[-1])
    for index, (start, stop) in enumerate(spans):
        before[:, index] = state
        blocks = (x[:, start:stop] for x in (a, b, c))
        state = causal_chunks(*blocks, state, chunk, out[:, start:stop])
    return out, before


class CausalProduct(torch.autograd.Function):
    """Autograd for causal_product that saves a, b, c and one S x D state per block."""

    @staticmethod
    def forward(ctx, a, b, c, chunk):
        out, before = _causal_product_forward(a, b, c, chunk)
        ctx.save_for_backward(a, b, c, before)
        ctx.chunk = chunk
        return out.view(*a.shape[:-1], c.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        a, b, c, before = ctx.saved_tensors
        shapes = a.shape, b.shape, c.shape
        a, b, c, grad = (_as_rows(x) for x in (a, b, c, grad))
        rows, n = a.shape[:2]
        chunk, spans = chunk_and_blocks(n, ctx.chunk)
        # out_t = sum_{j<=t} (a_t.b_j) c_j, so with g = dL/dout: da_t = sum_{j<=t} (g_t.c_j) b_j,
        # db_j = sum_{t>=j} (c_j.g_t) a_t, dc_j = sum_{t>=j} (b_j.a_t) g_t, the kernel's
        # backward chunk products with (g, v, phi(k), phi(q)/den) = (g, c, b, a).
        da, db, dc = (torch.empty_like(x, memory_format=torch.contiguous_format) for x in (a, b, c))
        later = a.new_zeros(rows, c.shape[-1], a.shape[-1])  # sum of g_t a_t^T after the block
        for index in reversed(range(len(spans))):
            start, stop = spans[index]
            blocks = (x[:, start:stop] for x in (grad, c, b, a))
            *parts, later = causal_backward_chunks(*blocks, before[:, index], later, chunk)
            for dest, part in zip((da, db, dc), parts):
                dest[:, start:stop] = part
        return (*(x.view(shape) for x, shape in zip((da, db, dc), shapes)), None)


def causal_product(a, b, c, chunk: int = DEFAULT_CHUNK):
    """sum_{j<=t} (a_t . b_j) c_j for every t; a, b (..., N, S), c (..., N, D)."""
    if torch.is_grad_enabled() and any(x.requires_grad for x in (a, b, c)):
        return CausalProduct.apply(a, b, c, chunk)
    out, _ = _causal_product_forward(a, b, c, chunk)
    return out.view(*a.shape[:-1], c.shape[-1])


def linear_attention(q_features, k_features, v, *, causal: bool, eps=1e-6, chunk=DEFAULT_CHUNK):
    """Normalised linear attention O_t = phi(q_t)^T B_t / (phi(q_t)^T A_t + eps).

    A and B are sums of phi(k_j) and phi(k_j) v_j^T over all j (non-causal) or over j <= t
    (causal). Features (B, H, N, S) must be non-negative; padded keys must already have zero
    features. eps is a float or a tensor broadcastable to (B, H, N, 1) that takes no gradient.
    Runs on the fused kernel that RACE uses (race_kernel.FusedLinear).
    """
    if not q_features.dim() == k_features.dim() == v.dim() == 4:
        raise ValueError(
            "linear_attention takes (batch, heads, length, features) tensors, got shapes "
            f"{tuple(q_features.shape)}, {tuple(k_features.shape)}, {tuple(v.shape)}"
        )
    return fused_linear_attention(q_features, k_features, v, causal=causal, eps=eps, chunk=chunk)


def linear_attention_reference(q_features, k_features, v, *, causal: bool, eps=1e-6):
    """The same as a plain (masked) quadratic form, for tests and the reader."""
    scores = q_features @ k_features.transpose(-1, -2)  # (..., N, N)
    if causal:
        scores = _mask_future(scores)
    return (scores @ v) / (scores.sum(-1, keepdim=True) + eps)
