"""The fused kernel of the feature attentions: RACE (paper normalisation), linear, performer.

    O_t = phi(q_t)^T B_t / (phi(q_t)^T A_t + eps),  A_t = sum_j phi(k_j),
    B_t = sum_j phi(k_j) v_j^T

with sums over all j, or over j <= t when causal (RACE.md sections 2-4). A feature map gives
phi block by block and pulls dL/dphi back to its input. RACE's soft hash (FusedRace): z =
tanh(x W^T) holds the L * P hyperplane projections of a token and phi(x) its L * 2**P bucket
probabilities, built from z alone; only z is stored (9 numbers per token for (P, L) = (3, 3)
against the head's 128) and the soft hash's backward is written out by hand, so the backward
pass never reads q or k again. Linear attention (FusedLinear): elu(x) + 1 rebuilt from q and k,
the performer's positive random features rebuilt from q, k and one shift per token, or features
the caller computed (`linear_attention`). Beside q, k, v, the output and the three input
gradients, memory is what the map stores plus a few blocks of temporaries; no N x S feature
tensor is built by the kernel and no N x S x D tensor at all.

Work goes over groups of (batch, head) rows and blocks of tokens: short rows in groups of about
one block (few, large products), long rows one at a time as in-place views (no copy of q, k, v,
whatever their strides). Results are written straight into the output and gradient tensors.
Causal sums use the chunk products of chunk_products.py.
Half inputs are upcast a block at a time (float32 compute, RACE.md section 5).

Notation: t query position, j key position, s features (S; L * 2**P for RACE), d head size (D),
C chunk size, G chunks in a block.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import torch

from . import chunk_products
from .chunk_products import (
    causal_backward_chunks,
    causal_chunks,
    chunk_and_blocks,
    token_blocks,
)


@functools.lru_cache(maxsize=32)
def _bucket_matrices(tables: int, hyperplanes: int, device, dtype):
    """(up, table, to_log_phi): two (L * P, L * R) block-diagonal 0/1 matrices and their stack.

    up[l P + p, l R + r] = 1 when hyperplane p sends bucket r of table l up (bit p of r, the
    first hyperplane the most significant digit, as `race.corners`); table[l P + p, l R + r] = 1
    for every p and r of table l. `[up; -table; table]` maps [u, relu(u), log sigmoid(|u|)]
    to log phi.
    """
    bits = torch.tensor(list(itertools.product((0.0, 1.0), repeat=hyperplanes)), dtype=dtype)
    up = torch.block_diag(*[bits.T] * tables).to(device)
    table = torch.block_diag(*[torch.ones_like(bits.T)] * tables).to(device)
    return up, table, torch.cat([up, -table, table])


def hash_from_projection(z, tau, hyperplanes: int):
    """Soft bucket probabilities from the projections z = tanh(x W^T).

    z (..., n, L * P) -> phi (..., n, L * 2**P), each table's block a probability vector over its
    buckets. softmax_r(z . c_r / tau) over the corners c_r in {-1, +1}^P factorises over the
    hyperplanes: phi_r = prod_p sigmoid(c_rp u_p) with u = 2 z / tau. In logs, with
    log sigmoid(-u) = log sigmoid(|u|) - relu(u):
        log phi_r = sum_p [bit p of r] u_p - relu(u_p) + log sigmoid(|u_p|),
    one small product, every term bounded (no overflow at the smallest temperature), and no
    2**P exponentials per corner.
    """
    u = z * (2 / tau)
    *_, to_log_phi = _bucket_matrices(z.shape[-1] // hyperplanes, hyperplanes, z.device,
                                      z.dtype)
    terms = torch.cat([u, torch.relu(u), torch.sigmoid(u.abs()).log()], -1)
    return torch.exp(terms @ to_log_phi)


def hash_backward(z, phi, dphi, tau, hyperplanes: int):
    """Pull dL/dphi back through hash_from_projection and the tanh.

    Returns (dL/da for the pre-tanh projections a = x W^T, dL/dtau summed over the rows).
    With w = dphi * phi = dL/dlog(phi) and d log sigmoid(c u) / du = c sigmoid(-c u):
        du_p = sigmoid(-u_p) sum_{r: bit p set} w_r - sigmoid(u_p) sum_{r: bit p clear} w_r
             = sum_{r: bit p set} w_r - sigmoid(u_p) sum_r w_r    (sums within p's table).
    """
    u = z * (2 / tau)
    up, table, _ = _bucket_matrices(z.shape[-1] // hyperplanes, hyperplanes, z.device, z.dtype)
    weighted = dphi * phi
    du = (weighted @ up.T).sub_(torch.sigmoid(u).mul_(weighted @ table.T))
    dtau = -(du * u).sum() / tau
    return du.mul_(2 / tau).mul_(1 - z * z), dtau


def _group_size(n: int, blocks: int) -> int:
    """Rows per group: whole rows up to about BLOCK_TOKENS tokens; one row when a row is longer."""
    return 1 if blocks > 1 else max(1, chunk_products.BLOCK_TOKENS // n)


def _row_groups(x, size: int):
    """(R, N, X) groups of `size` consecutive (batch, head) rows of a (B, H, N, X) tensor, lazily.

    Views when x's layout allows it (always for one row, and for the contiguous outputs);
    otherwise each group is copied when it is reached, so at most one group's copy is alive.
    Many short rows per group make few large products; long rows go one at a time, in place.
    """
    heads, rows = x.shape[1], x.shape[0] * x.shape[1]
    try:
        flat = x.view(rows, *x.shape[2:])
    except RuntimeError:  # e.g. heads-last memory seen as (B, H, N, D)
        flat = None
    for first in range(0, rows, size):
        last = min(first + size, rows)
        if flat is not None:
            yield flat[first:last]
        elif last - first == 1:
            yield x[divmod(first, heads)].unsqueeze(0)
        else:
            yield torch.stack([x[divmod(r, heads)] for r in range(first, last)])


def _cumsum_tokens(x):
    """x.cumsum(-2) for (R, T, S) blocks: the scan along the fast axis is several times quicker."""
    return x.mT.contiguous().cumsum(-1).mT


def _into(dest, op, a, b):
    """dest = op(a, b), in place when the dtypes agree (else cast from the working dtype)."""
    if dest.dtype == a.dtype:
        op(a, b, out=dest)
    else:
        dest.copy_(op(a, b))


class _Hash:
    """The soft hash of one call, in the working precision, with its gradient accumulators."""

    def __init__(self, planes, tau, hyperplanes: int, work: torch.dtype):
        self.planes, self.tau = planes.detach().to(work), tau.detach().to(work)
        self.hyperplanes, self.work = hyperplanes, work
        self.features = planes.shape[0] // hyperplanes * 2**hyperplanes
        self.dplanes, self.dtau = torch.zeros_like(self.planes), torch.zeros_like(self.tau)

    def project(self, x, z):
        """z <- tanh(x W^T) for a block (z a view of the stored projections); returns phi(x)."""
        torch.tanh(x.to(self.work) @ self.planes.T, out=z)
        return self.phi(x, z)

    def phi(self, x, z):
        return hash_from_projection(z, self.tau, self.hyperplanes)

    def pull(self, z, phi, dphi, dx=None, x=None):
        """dx <- dL/dx of a block given dL/dphi; accumulates dL/dtau, and dL/dW when x is given."""
        da, dtau = hash_backward(z, phi, dphi, self.tau, self.hyperplanes)
        self.dtau += dtau
        if dx is not None:
            _into(dx, torch.matmul, da, self.planes)
        if x is not None:
            self.dplanes += (da.mT @ x.to(self.work)).sum(0)


class _Rows(NamedTuple):
    """A group of (batch, head) rows: (R, N, X) tensors, None where not needed."""

    q: torch.Tensor | None
    k: torch.Tensor | None
    v: torch.Tensor
    zq: torch.Tensor
    zk: torch.Tensor
    keep: torch.Tensor | None  # (R, N, 1), 0 on padded keys
    eps: float | torch.Tensor  # added to the denominators: a number or (R, N, 1), one per query

    def eps_at(self, start, stop):
        return self.eps if isinstance(self.eps, float) else self.eps[:, start:stop]


def _groups(q, k, v, zq, zk, keep, eps, work, size):
    """The _Rows groups of a call, lazily (see _row_groups)."""
    def split(x):
        return None if x is None else _row_groups(x, size)

    if keep is not None:  # (B, 1, N, 1) -> one (N, 1) per row
        keep = keep.to(work).expand(*v.shape[:2], -1, -1)
    if isinstance(eps, torch.Tensor):  # (B, H or 1, N, 1) -> one (N, 1) per row
        eps = eps.to(work).expand(*v.shape[:2], -1, -1)
    fields = [split(x) or itertools.repeat(None) for x in (q, k, v, zq, zk, keep)]
    fields.append(split(eps) if isinstance(eps, torch.Tensor) else itertools.repeat(float(eps)))
    return (_Rows(*row) for row in zip(*fields))


def _key_features(fmap, rows, start, stop, project):
    """(phi(k) of the block, the same with padded keys zeroed)."""
    if project:
        raw = fmap.project(rows.k[:, start:stop], rows.zk[:, start:stop])
    else:
        raw = fmap.phi(_block(rows.k, start, stop), rows.zk[:, start:stop])
    return raw, raw if rows.keep is None else raw * rows.keep[:, start:stop]


def _zeros(fmap, rows, *shape):
    return torch.zeros(rows.v.shape[0], *shape, dtype=fmap.work, device=rows.v.device)


def _global_forward(fmap, rows, out, spans):
    """out of a group, all keys visible; returns (B, A) = (sum phi(k) v^T, sum phi(k))."""
    kv = _zeros(fmap, rows, fmap.features, rows.v.shape[-1])
    ksum = _zeros(fmap, rows, fmap.features)
    for start, stop in spans:
        _, fk = _key_features(fmap, rows, start, stop, project=True)
        kv.baddbmm_(fk.mT, rows.v[:, start:stop].to(fmap.work))
        ksum += fk.sum(-2)
    for start, stop in spans:
        fq = fmap.project(rows.q[:, start:stop], rows.zq[:, start:stop])
        fq /= fq @ ksum.unsqueeze(-1) + rows.eps_at(start, stop)  # phi(q_t) / den_t
        _into(out[:, start:stop], torch.matmul, fq, kv)
    return kv, ksum


def _causal_forward(fmap, rows, out, spans, chunk, before, before_sums):
    """out of a group, keys j <= t visible; fills (B, A) before each block."""
    kv = _zeros(fmap, rows, fmap.features, rows.v.shape[-1])
    ksum = _zeros(fmap, rows, fmap.features)
    for index, (start, stop) in enumerate(spans):
        before[:, index], before_sums[:, index] = kv, ksum
        fq = fmap.project(rows.q[:, start:stop], rows.zq[:, start:stop])
        _, fk = _key_features(fmap, rows, start, stop, project=True)
        key_sums = _cumsum_tokens(fk) + ksum.unsqueeze(1)  # A_t, (R, T, S)
        fq /= (fq * key_sums).sum(-1, keepdim=True) + rows.eps_at(start, stop)
        ksum = key_sums[:, -1]
        vb = rows.v[:, start:stop].to(fmap.work)
        kv = causal_chunks(fq, fk, vb, kv, chunk, out[:, start:stop])


def _global_backward(fmap, rows, grad, kv, ksum, spans, dq, dk, dv, want_hash):
    """Gradients of a group, all keys visible (the formulas of FusedRace)."""
    work = fmap.work
    dkv, dksum = torch.zeros_like(kv), torch.zeros_like(ksum)
    for start, stop in spans:
        z = rows.zq[:, start:stop]
        fq = fmap.phi(_block(rows.q, start, stop), z)
        den = fq @ ksum.unsqueeze(-1) + rows.eps_at(start, stop)
        fqn = fq / den
        gb = grad[:, start:stop].to(work).contiguous()
        prod = gb @ kv.mT  # P_t = B^T g_t, (R, T, S)
        dden = -(fqn * prod).sum(-1, keepdim=True) / den
        dkv.baddbmm_(fqn.mT, gb)
        dksum += (fq * dden).sum(-2)
        if dq is not None or want_hash:
            dfq = prod.div_(den).add_(dden * ksum.unsqueeze(1))
            fmap.pull(z, fq, dfq, _block(dq, start, stop), _block(rows.q, start, stop))
    for start, stop in spans:
        raw, fk = _key_features(fmap, rows, start, stop, project=False)
        if dv is not None:
            _into(dv[:, start:stop], torch.matmul, fk, dkv)
        if dk is not None or want_hash:
            dfk = torch.baddbmm(dksum.unsqueeze(1), rows.v[:, start:stop].to(work), dkv.mT)
            if rows.keep is not None:
                dfk *= rows.keep[:, start:stop]
            fmap.pull(rows.zk[:, start:stop], raw, dfk, _block(dk, start, stop),
                       _block(rows.k, start, stop))


def _causal_backward(fmap, rows, grad, before, before_sums, spans, chunk, dq, dk, dv):
    """Gradients of a group, keys j <= t visible; blocks from the last to the first."""
    later = _zeros(fmap, rows, rows.v.shape[-1], fmap.features)
    later_sums = _zeros(fmap, rows, fmap.features)
    for index in reversed(range(len(spans))):  # one call per block: its temporaries die with it
        later, later_sums = _causal_backward_block(fmap, rows, grad, before[:, index],
                                                   before_sums[:, index], later, later_sums,
                                                   spans[index], chunk, dq, dk, dv)


def _causal_backward_block(fmap, rows, grad, before, before_sums, later, later_sums, span,
                           chunk, dq, dk, dv):
    """One block of _causal_backward; returns (later, later_sums) moved to the block's start."""
    start, stop = span
    fq = fmap.phi(_block(rows.q, start, stop), rows.zq[:, start:stop])
    raw, fk = _key_features(fmap, rows, start, stop, project=False)
    key_sums = _cumsum_tokens(fk) + before_sums.unsqueeze(1)
    den = (fq * key_sums).sum(-1, keepdim=True) + rows.eps_at(start, stop)
    fqn = fq / den
    gb = grad[:, start:stop].to(fmap.work).contiguous()
    vb = rows.v[:, start:stop].to(fmap.work)
    prod, dfk, dvb, later = causal_backward_chunks(gb, vb, fk, fqn, before, later, chunk)
    del gb, vb
    if dv is not None:
        dv[:, start:stop] = dvb
    del dvb
    dden = -(fqn * prod).sum(-1, keepdim=True) / den
    weighted = fq * dden  # dden_t phi(q_t): its sums over t >= j feed dphi(k_j)
    dfq = prod.div_(den).add_(dden * key_sums)
    del key_sums, fqn
    fmap.pull(rows.zq[:, start:stop], fq, dfq, _block(dq, start, stop),
              _block(rows.q, start, stop))
    del fq, dfq, prod
    total = weighted.sum(-2, keepdim=True)
    dfk += total - _cumsum_tokens(weighted) + weighted + later_sums.unsqueeze(1)
    if rows.keep is not None:
        dfk *= rows.keep[:, start:stop]
    fmap.pull(rows.zk[:, start:stop], raw, dfk, _block(dk, start, stop),
              _block(rows.k, start, stop))
    return later, later_sums + total.squeeze(1)


def _block(x, start, stop):
    return None if x is None else x[:, start:stop]


def _attend(fmap, groups, out, spans, size, causal, chunk):
    """Forward pass of every group into out; returns the sums the backward pass needs, (B, A):
    over all keys (R, S, D) and (R, S), or (causal) before each block (R, blocks, S, D) and
    (R, blocks, S)."""
    first, second = [], []
    with torch.autocast(out.device.type, enabled=False):  # float32 work on half inputs
        for rows, out_rows in zip(groups, _row_groups(out, size)):
            if causal:
                kv = rows.v.new_empty(len(rows.v), len(spans), fmap.features, out.shape[-1],
                                      dtype=fmap.work)
                ksum = kv.new_empty(len(rows.v), len(spans), fmap.features)
                _causal_forward(fmap, rows, out_rows, spans, chunk, kv, ksum)
            else:
                kv, ksum = _global_forward(fmap, rows, out_rows, spans)
            first.append(kv)
            second.append(ksum)
    return torch.cat(first), torch.cat(second)


def _attend_backward(fmap, groups, grad, grads, first, second, spans, size, causal, chunk,
                     want_map):
    """Backward pass of every group: writes (dq, dk, dv), the tensors not None in grads, in place.
    want_map: the feature map's own parameters need gradients."""
    split = [itertools.repeat(None) if x is None else _row_groups(x, size) for x in grads]
    offset = 0
    with torch.autocast(grad.device.type, enabled=False):
        for rows, g, dq, dk, dv in zip(groups, _row_groups(grad, size), *split):
            count = len(rows.v)
            kv, ksum = first[offset:offset + count], second[offset:offset + count]
            offset += count
            if causal:
                _causal_backward(fmap, rows, g, kv, ksum, spans, chunk, dq, dk, dv)
            else:
                _global_backward(fmap, rows, g, kv, ksum, spans, dq, dk, dv, want_map)


class FusedRace(torch.autograd.Function):
    """race_attention(normalization="paper") with memory O(N (D + L P)); see the module doc.

    Forward saves v, z of queries and keys, and (non-causal) B and A, or (causal) B and A before
    each block. With g = dL/dO, den_t = phi(q_t).A_t + eps, fqn_t = phi(q_t) / den_t and
    P_t = sum_{j<=t} (g_t . v_j) phi(k_j) (sums over all j when not causal):
        dden_t    = -(fqn_t . P_t) / den_t
        dphi(q_t) = P_t / den_t + dden_t A_t
        dphi(k_j) = sum_{t>=j} ((v_j . g_t) fqn_t + dden_t phi(q_t))
        dv_j      = sum_{t>=j} (phi(k_j) . fqn_t) g_t
    Output and gradients are allocated contiguous, so every group's block of them is a view.
    """

    @staticmethod
    def forward(ctx, q, k, v, keep, planes, tau, hyperplanes, causal, eps, chunk):
        work = torch.promote_types(q.dtype, torch.float32)
        fmap = _Hash(planes, tau, hyperplanes, work)
        batch, heads, n, _ = q.shape
        chunk, spans = chunk_and_blocks(n, chunk)
        size = _group_size(n, len(spans))
        zq = q.new_empty(batch, heads, n, planes.shape[0], dtype=work)
        zk = torch.empty_like(zq)
        out = v.new_empty(v.shape)
        groups = _groups(q, k, v, zq, zk, keep, eps, work, size)
        first, second = _attend(fmap, groups, out, spans, size, causal, chunk)
        ctx.save_for_backward(v, zq, zk, keep, planes, tau, first, second,
                              *((q, k) if ctx.needs_input_grad[4] else ()))
        ctx.setup = (hyperplanes, causal, eps, chunk, size)
        return out

    @staticmethod
    def backward(ctx, grad):
        v, zq, zk, keep, planes, tau, first, second, *inputs = ctx.saved_tensors
        hyperplanes, causal, eps, chunk, size = ctx.setup
        want_q, want_k, want_v, _, want_planes, want_tau = ctx.needs_input_grad[:6]
        fmap = _Hash(planes, tau, hyperplanes, zq.dtype)
        spans = token_blocks(v.shape[-2], chunk)
        grads = [v.new_empty(v.shape) if want else None for want in (want_q, want_k, want_v)]
        groups = _groups(*(inputs or (None, None)), v, zq, zk, keep, eps, zq.dtype, size)
        _attend_backward(fmap, groups, grad, grads, first, second, spans, size, causal, chunk,
                         want_planes or want_tau)
        return (*grads, None, fmap.dplanes if want_planes else None,
                fmap.dtau if want_tau else None, None, None, None, None)


class _GivenFeatures:
    """Features the caller computed, stored as they are: the kernel hands dL/dphi back and
    autograd takes it through the caller's feature map. The groups carry the features as z."""

    def __init__(self, features: int, work: torch.dtype):
        self.features, self.work = features, work

    def project(self, x, z):
        return z.to(self.work, copy=True)  # the forward divides the query block in place

    def phi(self, x, z):
        return z.to(self.work)

    def pull(self, z, phi, dphi, dx=None, x=None):
        if dx is not None:
            dx.copy_(dphi)


def elu_features(x):
    """phi(x) = elu(x) + 1 > 0, computed as exp(min(x, 0)) + max(x, 0): the same numbers, ten
    times faster than F.elu on the CPU (torch 2.x)."""
    return x.clamp(max=0).exp_().add_(x.relu())


class _EluFeatures(_GivenFeatures):
    """phi(x) = elu(x) + 1 (linear attention), rebuilt block by block from q and k themselves (the
    groups carry them as z), so nothing is stored; dphi/dx is 1 where x > 0 and exp(x) = phi
    elsewhere, that is min(phi, 1)."""

    def project(self, x, z):
        return self.phi(x, z)

    def phi(self, x, z):
        return elu_features(z.to(self.work))

    def pull(self, z, phi, dphi, dx=None, x=None):
        if dx is not None:
            _into(dx, torch.mul, dphi, phi.clamp(max=1))


def favor_logits(x, projection):
    """The performer's log features before their shift: x' W^T - |x'|^2 / 2 with x' = x D^-1/4,
    so that E exp(logits(q) + logits(k)) = m exp(q . k / sqrt(D)) over the m rows of W."""
    scale = x.shape[-1] ** -0.25
    half_norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square() * (scale**2 / 2)
    return (x @ (projection * scale).T).sub_(half_norm)


class _FavorFeatures:
    """The performer's positive random features phi(x) = exp(favor_logits(x) - shift) / sqrt(m),
    rebuilt block by block from q and k and their stored shifts (the groups' z, one number per
    token), so no N x m tensor is stored. With w = dL/dphi * phi = dL/dlogits and s = D^-1/4:
    dL/dx = w (s W) - s^2 (sum_i w_i) x."""

    def __init__(self, projection, work: torch.dtype):
        self.projection = projection.detach().to(work)
        self.features, self.work = projection.shape[0], work
        self.log_scale = -0.5 * math.log(self.features)

    def project(self, x, z):
        return self.phi(x, z)

    def phi(self, x, z):
        return favor_logits(x.to(self.work), self.projection).sub_(z - self.log_scale).exp_()

    def pull(self, z, phi, dphi, dx=None, x=None):
        if dx is None:
            return
        scale = x.shape[-1] ** -0.25
        weighted = dphi.mul_(phi)  # the drivers hand over dL/dphi and do not read it again
        total = weighted.sum(-1, keepdim=True).mul_(-(scale**2))
        if dx.dtype == self.work:  # the product written into dx, x's term added in place
            torch.matmul(weighted, self.projection * scale, out=dx)
            dx.addcmul_(x, total)
        else:
            dx.copy_((weighted @ (self.projection * scale)).addcmul_(x.to(self.work), total))


def favor_shifts(q, k, projection, keep, eps: float, work: torch.dtype):
    """(query shifts (B, H, N, 1), key shifts (B, H, N, 1), eps per query (B, H, N, 1)).

    A query's shift is the largest of its logits, a key's the largest logit over the kept keys of
    its row (+inf on padded keys, whose features are then 0). Every feature is at most 1/sqrt(m)
    and eps is rescaled by exp(-query shift - key shift), so the output equals the unshifted
    num / (den + eps) (RACE.md's eps, keys j <= t or all) whatever the shifts.
    """
    batch, heads, n, _ = q.shape
    step = max(1, chunk_products.BLOCK_TOKENS // (batch * heads))
    projection = projection.detach().to(work)
    q_shift = q.new_empty(batch, heads, n, 1, dtype=work)
    k_max = q.new_full((batch, heads, 1, 1), -math.inf, dtype=work)
    with torch.no_grad():
        for start in range(0, n, step):
            stop = min(start + step, n)
            q_logits = favor_logits(q[:, :, start:stop].to(work), projection)
            q_shift[:, :, start:stop] = q_logits.amax(-1, keepdim=True)
            del q_logits
            k_logits = favor_logits(k[:, :, start:stop].to(work), projection).amax(-1, keepdim=True)
            if keep is not None:
                k_logits.masked_fill_(keep[:, :, start:stop] == 0, -math.inf)
            k_max = torch.maximum(k_max, k_logits.amax(-2, keepdim=True))
        k_max.nan_to_num_(neginf=0.0)  # a row with every key padded: any finite shift will do
        k_shift = k_max.expand(batch, heads, n, 1)
        if keep is not None:
            k_shift = k_shift.masked_fill(keep == 0, math.inf)
        return q_shift, k_shift, torch.exp(math.log(eps) - q_shift - k_max)


_FEATURE_MAPS = ("given", "elu", "favor")


def _feature_map(name: str, features: int, work: torch.dtype, projection):
    if name == "favor":
        return _FavorFeatures(projection, work)
    return {"given": _GivenFeatures, "elu": _EluFeatures}[name](features, work)


class FusedLinear(torch.autograd.Function):
    """Normalised linear attention on the engine of FusedRace (same formulas). Feature maps:
    "given" stores the caller's phi(q) and phi(k); "elu" rebuilds elu + 1 from q and k; "favor"
    rebuilds the performer's features from q, k and one shift per token. Memory O(N (S + D)) for
    "given", O(N D) for the others; never an N x S x D tensor."""

    @staticmethod
    def forward(ctx, q, k, v, keep, eps, feature_map, causal, chunk, projection):
        work = torch.promote_types(q.dtype, torch.float32)
        fmap = _feature_map(feature_map, q.shape[-1], work, projection)
        n = v.shape[-2]
        chunk, spans = chunk_and_blocks(n, chunk)
        size = _group_size(n, len(spans))
        out = v.new_empty(v.shape)
        zq, zk = q, k
        if feature_map == "favor":
            zq, zk, eps = favor_shifts(q, k, projection, keep, eps, work)
        groups = _groups(q, k, v, zq, zk, keep, eps, work, size)
        first, second = _attend(fmap, groups, out, spans, size, causal, chunk)
        eps_tensor = eps if isinstance(eps, torch.Tensor) else None
        shifts = (zq, zk) if feature_map == "favor" else ()
        ctx.save_for_backward(q, k, v, keep, eps_tensor, first, second, projection, *shifts)
        ctx.setup = (None if eps_tensor is not None else eps, feature_map, causal, chunk, size)
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, keep, eps_tensor, first, second, projection, *shifts = ctx.saved_tensors
        eps, feature_map, causal, chunk, size = ctx.setup
        eps = eps_tensor if eps is None else eps
        fmap = _feature_map(feature_map, q.shape[-1], first.dtype, projection)
        spans = token_blocks(v.shape[-2], chunk)
        grads = [x.new_empty(x.shape) if want else None
                 for x, want in zip((q, k, v), ctx.needs_input_grad[:3])]
        groups = _groups(q, k, v, *(shifts or (q, k)), keep, eps, first.dtype, size)
        _attend_backward(fmap, groups, grad, grads, first, second, spans, size, causal, chunk,
                         False)
        return (*grads, None, None, None, None, None, None)


def fused_linear_attention(q, k, v, *, causal: bool, feature_map: str = "given", keep=None,
                           eps=1e-6, chunk: int = 64, projection=None):
    """O_t = phi(q_t)^T B_t / (phi(q_t)^T A_t + eps) with non-negative features phi.

    feature_map "given": q and k are the features phi(q), phi(k) (B, H, N, S); "elu": q and k
    are (B, H, N, D) and phi(x) = elu(x) + 1; "favor": q and k are (B, H, N, D) and phi the
    performer's exp(favor_logits(x)) / sqrt(m) with projection (m, D), shifted per token inside
    the kernel without changing the output. v (B, H, N, D); keep None or (B, 1, N, 1), 0 on
    padded keys; eps a number, or for "given" and "elu" a tensor broadcastable to (B, H, N, 1)
    that takes no gradient. Half inputs are computed in float32 and the output keeps v's dtype.
    """
    if feature_map not in _FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {sorted(_FEATURE_MAPS)}, got {feature_map!r}")
    if (projection is None) != (feature_map != "favor"):
        raise ValueError("pass projection (the performer's (m, D) rows) with feature_map='favor' "
                         f"and only then; got feature_map={feature_map!r}")
    if projection is not None and projection.requires_grad:
        raise ValueError("the performer's projection takes no gradient: pass projection.detach()")
    if isinstance(eps, torch.Tensor):
        if feature_map == "favor":
            raise ValueError("feature_map='favor' rescales eps itself: pass eps as a number")
        if eps.requires_grad:
            raise ValueError("linear attention's eps tensor takes no gradient: pass eps.detach()")
        eps = eps.expand(*v.shape[:-1], 1)
    return FusedLinear.apply(q, k, v, keep, eps, feature_map, causal, chunk, projection)


def fused_race_attention(q, k, v, planes, tau, *, causal: bool, keep=None, eps: float = 1e-6,
                         chunk: int = 64):
    """RACE attention of one ensemble in the paper normalisation, memory O(N (D + L P)).

    q, k, v (B, H, N, D) of any float dtype (half inputs are computed in float32 and the output
    keeps v's dtype); planes (L, P, D); tau a 0-dim tensor; keep None or (B, 1, N, 1), 0 on
    padded keys.
    """
    tables, hyperplanes, dim = planes.shape
    tau = torch.as_tensor(tau, device=q.device)
    return FusedRace.apply(q, k, v, keep, planes.reshape(tables * hyperplanes, dim), tau,
                           hyperplanes, causal, eps, chunk)
