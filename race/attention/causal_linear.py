"""Linear attention over non-negative features: the engine shared by race, linear and performer.

Notation: b batch, h heads, n length, s feature size (S), d value size (D).

    causal_product(a, b, c)[t] = sum_{j <= t} (a_t . b_j) c_j

is computed chunk by chunk (RACE.md section 4): an inter-chunk term from the running state
sum_j b_j c_j^T (S x D) and an intra-chunk term from a masked C x C product. Chunks are grouped
into blocks that are processed as one batched product, so the Python loop runs over blocks, not
chunks. The N x S x D tensor of prefix states is never built, and the custom autograd Function
saves only its inputs: the backward pass is three more products of the same kind.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_CHUNK = 64
# Tokens per block: bounds the temporaries of one step to about BLOCK_TOKENS * (S + D + C).
BLOCK_TOKENS = 8192


def _triangle(chunk: int, reverse: bool, device) -> torch.Tensor:
    ones = torch.ones(chunk, chunk, dtype=torch.bool, device=device)
    return ones.triu() if reverse else ones.tril()


def causal_product_reference(a, b, c, reverse: bool = False):
    """Plain masked quadratic form of causal_product, for tests and the reader."""
    scores = a @ b.transpose(-1, -2)  # (b, h, n, n)
    n = a.shape[-2]
    mask = _triangle(n, reverse, a.device)
    return scores.masked_fill(~mask, 0) @ c


def _block_product(a, b, c, state, chunk: int, reverse: bool = False):
    """One block of causal_product with the sum over the tokens outside the block given.

    out[t] = a_t @ state + sum_{j <= t in the block} (a_t . b_j) c_j (j >= t when reverse);
    state (..., S, D) is sum b_j c_j^T over the tokens before the block (after it when reverse).
    Returns (out, state + sum over the block of b_j c_j^T).
    """
    length = a.shape[-2]
    chunk = max(1, min(chunk, length))
    groups = -(-length // chunk)
    pad = groups * chunk - length
    if pad:  # zero rows contribute nothing and their outputs are dropped
        a, b, c = (F.pad(x, (0, 0, 0, pad)) for x in (a, b, c))
    ab = a.unflatten(-2, (groups, chunk))  # (..., G, C, S)
    bb = b.unflatten(-2, (groups, chunk))
    cb = c.unflatten(-2, (groups, chunk))  # (..., G, C, D)
    chunk_states = bb.transpose(-1, -2) @ cb  # (..., G, S, D)
    if reverse:
        later = chunk_states.flip(-3).cumsum(-3).flip(-3)
        seen = torch.cat([later[..., 1:, :, :], torch.zeros_like(later[..., :1, :, :])], -3)
        total = later[..., 0, :, :]
    else:
        earlier = chunk_states.cumsum(-3)
        seen = torch.cat([torch.zeros_like(earlier[..., :1, :, :]), earlier[..., :-1, :, :]], -3)
        total = earlier[..., -1, :, :]
    del chunk_states
    seen += state.unsqueeze(-3)  # state each chunk sees from outside itself
    out = ab @ seen  # (..., G, C, D)
    del seen
    scores = (ab @ bb.transpose(-1, -2)).masked_fill_(~_triangle(chunk, reverse, a.device), 0)
    out += scores @ cb
    return out.flatten(-3, -2)[..., :length, :], state + total


def _blocks(n: int, chunk: int, reverse: bool = False) -> list[tuple[int, int]]:
    """(start, stop) of the token blocks, whole chunks of about BLOCK_TOKENS tokens each."""
    chunk = max(1, min(chunk, n))
    block = max(chunk, (BLOCK_TOKENS // chunk) * chunk)
    spans = [(start, min(start + block, n)) for start in range(0, n, block)]
    return spans[::-1] if reverse else spans


def _causal_product_forward(a, b, c, chunk: int = DEFAULT_CHUNK, reverse: bool = False):
    """out[t] = sum_{j<=t} (a_t . b_j) c_j, or sum_{j>=t} when reverse. No autograd graph."""
    *batch, n, s = a.shape
    out = c.new_empty(*batch, n, c.shape[-1])
    state = a.new_zeros(*batch, s, c.shape[-1])  # sum of b_j c_j^T over the blocks already done
    for start, stop in _blocks(n, chunk, reverse):
        part = slice(start, stop)
        out[..., part, :], state = _block_product(
            a[..., part, :], b[..., part, :], c[..., part, :], state, chunk, reverse
        )
    return out


class CausalProduct(torch.autograd.Function):
    """Autograd for causal_product that saves only a, b, c (memory O(N (S + D)))."""

    @staticmethod
    def forward(ctx, a, b, c, chunk):
        ctx.save_for_backward(a, b, c)
        ctx.chunk = chunk
        return _causal_product_forward(a, b, c, chunk)

    @staticmethod
    def backward(ctx, grad):
        a, b, c = ctx.saved_tensors
        chunk = ctx.chunk
        grad = grad.contiguous()
        da = db = dc = None
        # out_t = sum_{j<=t} (a_t.b_j) c_j, so with g = dL/dout:
        if ctx.needs_input_grad[0]:  # da_t = sum_{j<=t} (g_t . c_j) b_j
            da = _causal_product_forward(grad, c, b, chunk)
        if ctx.needs_input_grad[1]:  # db_j = sum_{t>=j} (c_j . g_t) a_t
            db = _causal_product_forward(c, grad, a, chunk, reverse=True)
        if ctx.needs_input_grad[2]:  # dc_j = sum_{t>=j} (b_j . a_t) g_t
            dc = _causal_product_forward(b, a, grad, chunk, reverse=True)
        return da, db, dc, None


def causal_product(a, b, c, chunk: int = DEFAULT_CHUNK):
    """sum_{j<=t} (a_t . b_j) c_j for every t; a, b (..., N, S), c (..., N, D)."""
    if torch.is_grad_enabled() and any(x.requires_grad for x in (a, b, c)):
        return CausalProduct.apply(a, b, c, chunk)
    return _causal_product_forward(a, b, c, chunk)


def linear_attention(q_features, k_features, v, *, causal: bool, eps=1e-6, chunk=DEFAULT_CHUNK):
    """Normalised linear attention O_t = phi(q_t)^T B_t / (phi(q_t)^T A_t + eps).

    A and B are sums of phi(k_j) and phi(k_j) v_j^T over all j (non-causal) or over j <= t
    (causal). Features must be non-negative; padded keys must already have zero features.
    eps is a float or a tensor broadcastable to (..., N, 1).
    """
    if causal:
        numerator = causal_product(q_features, k_features, v, chunk)
        key_sums = k_features.cumsum(-2)  # (..., N, S): A_t, size of the features only
        denominator = (q_features * key_sums).sum(-1, keepdim=True)
    else:
        kv = k_features.transpose(-1, -2) @ v  # (..., S, D)
        numerator = q_features @ kv
        denominator = q_features @ k_features.sum(-2).unsqueeze(-1)  # (..., N, 1)
    return numerator / (denominator + eps)
