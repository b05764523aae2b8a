"""Chunked causal products: the engine that the fused kernel and causal_linear share.

Causal sums go chunk by chunk over a running state (RACE.md section 4): for queries a, keys b
and values c, an inter-chunk term from the state sum_j b_j c_j^T (S x D) before the chunk and
an intra-chunk term from a masked C x C product. A call walks its tokens in blocks of whole
chunks (BLOCK_TOKENS tokens), so temporaries are a few blocks and the N x S x D tensor of prefix
states is never built.

Notation: R rows, T tokens of a block, G chunks in it, C chunk size, S features, D values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Tokens per block (and per group of short rows): temporaries are a few BLOCK_TOKENS * max(S, D, C).
BLOCK_TOKENS = 32768


def token_blocks(n: int, chunk: int) -> list[tuple[int, int]]:
    """(start, stop) of the token blocks: whole chunks, about BLOCK_TOKENS tokens each."""
    block = max(chunk, (BLOCK_TOKENS // chunk) * chunk)
    return [(start, min(start + block, n)) for start in range(0, n, block)]


def chunk_and_blocks(n: int, chunk: int) -> tuple[int, list[tuple[int, int]]]:
    """(the chunk size, at most n, and the token blocks) of a call over n tokens."""
    chunk = max(1, min(chunk, n))
    return chunk, token_blocks(n, chunk)


def _chunks(x, chunk: int):
    """(R, T, X) with T a multiple of chunk -> (R * T / chunk, chunk, X), a view where possible."""
    return x.reshape(-1, chunk, x.shape[-1])


def _pad_tokens(x, tokens: int):
    return F.pad(x, (0, 0, 0, tokens)) if tokens else x


def _use_loop(states, loop: bool | None) -> bool:
    """Scan by a loop of in-place adds on the CPU (several times faster there than cumsum over a
    leading axis), by one cumsum kernel on a GPU (cheaper than G launches); `loop` forces it."""
    return states.device.type == "cpu" if loop is None else loop


def scan_chunk_states(x, y, edge, *, reverse: bool = False, loop: bool | None = None):
    """The running sums of the chunk states s_g = x_g^T y_g, seeded with edge, in one buffer.

    x (R G, C, S), y (R G, C, D), edge (R, S, D) -> scan (R, G + 1, S, D) with
        scan[:, g] = edge + sum_{g' < g} s_g'     (the state before chunk g; scan[:, G] after all)
    or, reverse, scan[:, g] = edge + sum_{g' >= g} s_g' (scan[:, g + 1] is the state after chunk g).
    The products are written into the buffer and summed in place there, so neither the chunk
    states nor their shifted copy is a separate tensor.
    """
    rows = edge.shape[0]
    scan = x.new_empty(rows, x.shape[0] // rows + 1, x.shape[-1], y.shape[-1])
    states, end = (scan[:, :-1], scan[:, -1]) if reverse else (scan[:, 1:], scan[:, 0])
    end.copy_(edge)
    if rows == 1:  # one row: the chunk states are a contiguous slice of the buffer
        torch.bmm(x.mT, y, out=states[0])
    else:
        states.copy_(torch.bmm(x.mT, y).unflatten(0, (rows, -1)))
    if not _use_loop(scan, loop):
        return scan.copy_(scan.flip(1).cumsum(1).flip(1)) if reverse else scan.cumsum_(1)
    chunks = scan.shape[1] - 1
    for g in (range(chunks - 1, -1, -1) if reverse else range(1, chunks + 1)):
        scan[:, g].add_(scan[:, g + 1 if reverse else g - 1])  # .add_: `+=` would copy it back
    return scan


def causal_chunks(a, b, c, state, chunk: int, out):
    """out[t] = a_t @ state + sum_{j <= t in the block} (a_t . b_j) c_j; returns the new state.

    a, b (R, T, S), c, out (R, T, D); state (R, S, D) = sum of b_j c_j^T before the block. The
    next state adds the block's own sum. The products write straight into out when it is
    contiguous, of a's dtype and T a multiple of chunk; otherwise into a temporary copied over.
    """
    rows, length = a.shape[:2]
    pad = -length % chunk  # zero rows add nothing; their outputs are dropped
    direct = pad == 0 and out.dtype == a.dtype and out.is_contiguous()
    result = out if direct else a.new_empty(rows, length + pad, c.shape[-1])
    ac, bc, cc = (_chunks(_pad_tokens(x, pad), chunk) for x in (a, b, c))
    oc = result.view(-1, chunk, c.shape[-1])  # a view, so the products below write into result
    scan = scan_chunk_states(bc, cc, state)
    torch.bmm(ac, scan[:, :-1].flatten(0, 1), out=oc)
    oc.baddbmm_(torch.bmm(ac, bc.mT).tril_(), cc)
    if not direct:
        out.copy_(result[:, :length])
    return scan[:, -1].clone()


def causal_backward_chunks(g, v, fk, fqn, state, later, chunk: int):
    """The three causal products of the backward pass over one block, sharing their scores.

    g, v (R, T, D), fk, fqn (R, T, S), any T (padded to whole chunks here); state (R, S, D) = sum of
    phi(k_j) v_j^T before the block; later (R, D, S) = sum of g_t fqn_t^T after it. Returns
        P_t   = sum_{j<=t} (g_t . v_j) fk_j          (R, T, S)
        dfk_j = sum_{t>=j} (v_j . g_t) fqn_t         (R, T, S)
        dv_j  = sum_{t>=j} (fk_j . fqn_t) g_t        (R, T, D)
    and `later` moved to the block's start. The scores g_t . v_j serve P (j <= t) and, transposed,
    dfk (t >= j).
    """
    rows, length = g.shape[:2]
    pad = -length % chunk  # zero rows add nothing; their results are dropped
    gc, vc, fkc, fqc = (_chunks(_pad_tokens(x, pad), chunk) for x in (g, v, fk, fqn))
    scores = torch.bmm(gc, vc.mT).tril_()  # (R G, C, C): g_t . v_j for j <= t
    ahead = scan_chunk_states(vc, fkc, state.mT)[:, :-1].flatten(0, 1)  # (R G, D, S)
    prod = torch.bmm(scores, fkc).baddbmm_(gc, ahead)  # (R G, C, S)
    del ahead
    behind = scan_chunk_states(gc, fqc, later, reverse=True)
    new_later = behind[:, 0].clone()
    behind = behind[:, 1:].flatten(0, 1)  # (R G, D, S): the sums over the chunks after each
    dfk = torch.bmm(scores.mT, fqc).baddbmm_(vc, behind)
    dv = torch.bmm(torch.bmm(fkc, fqc.mT).triu_(), gc).baddbmm_(fkc, behind.mT)
    return (*(x.view(rows, length + pad, -1)[:, :length] for x in (prod, dfk, dv)), new_later)
