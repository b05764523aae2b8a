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


# fused feature attention: features recomputed block by block, never stored


def _upcast(dtype: torch.dtype) -> torch.dtype:
    """Working precision: float32 for half inputs (RACE.md section 5), else the input's own."""
    return torch.promote_types(dtype, torch.float32)


class FeatureAttention(torch.autograd.Function):
    """linear_attention(phi(q), phi(k), v) for a row-wise feature map phi, memory O(N D).

    Tokens are processed in blocks of about BLOCK_TOKENS; each block's features are computed in
    the working precision (float32 for half inputs), used, and dropped. The forward pass saves
    q, k, v and, per block, the (S x D) state before it; the backward pass recomputes the
    features of a block with a small autograd graph to pull their gradients back to q, k and
    the parameters of phi. Beside q, k, v, the output and the three gradients, memory is a few
    blocks of temporaries.

    With g = dL/dO, den_t = phi(q_t).A_t + eps and out_t = num_t / den_t:
        gn_t = g_t / den_t,  dden_t = -(gn_t . out_t)
        dphi(q_t) = sum_{j<=t} (gn_t . v_j) phi(k_j) + dden_t A_t
        dphi(k_j) = sum_{t>=j} (v_j . gn_t + dden_t) phi(q_t)
        dv_j      = sum_{t>=j} (phi(k_j) . phi(q_t)) gn_t
    (sums over all positions when not causal).
    """

    @staticmethod
    def forward(ctx, q, k, v, keep, feature_fn, causal, eps, chunk, *params):
        work = _upcast(q.dtype)
        ctx.setup = (feature_fn, causal, eps, chunk, len(params))
        n = q.shape[-2]
        out = torch.empty_like(v)
        with torch.autocast(q.device.type, enabled=False):
            features = _BlockFeatures(q, k, keep, feature_fn, params, work)
            if not causal:
                kv = ksum = 0
                for start, stop in _blocks(n, chunk):
                    fk = features.keys(start, stop)
                    kv = kv + fk.transpose(-1, -2) @ v[..., start:stop, :].to(work)  # (.., S, D)
                    ksum = ksum + fk.sum(-2)  # (..., S)
                for start, stop in _blocks(n, chunk):
                    fq = features.queries(start, stop)
                    den = fq @ ksum.unsqueeze(-1) + eps
                    out[..., start:stop, :] = (fq @ kv).div_(den)
                ctx.save_for_backward(q, k, v, keep, kv, ksum, *params)
                return out
            state = ksum = 0
            before = []  # (state, key sums) before each block, for the backward pass
            for start, stop in _blocks(n, chunk):
                fq, fk = features.queries(start, stop), features.keys(start, stop)
                if before == []:
                    state = fk.new_zeros(*fk.shape[:-2], fk.shape[-1], v.shape[-1])
                    ksum = fk.new_zeros(*fk.shape[:-2], fk.shape[-1])
                before.append((state, ksum))
                num, state = _block_product(fq, fk, v[..., start:stop, :].to(work), state, chunk)
                key_sums = fk.cumsum(-2) + ksum.unsqueeze(-2)  # A_t, (..., block, S)
                den = (fq * key_sums).sum(-1, keepdim=True) + eps
                out[..., start:stop, :] = num.div_(den)
                ksum = key_sums[..., -1, :]
            states = torch.stack([s for s, _ in before])
            sums = torch.stack([s for _, s in before])
            ctx.save_for_backward(q, k, v, keep, states, sums, *params)
        return out

    @staticmethod
    def backward(ctx, grad):
        feature_fn, causal, eps, chunk, num_params = ctx.setup
        q, k, v, keep, first, second, *params = ctx.saved_tensors
        work = _upcast(q.dtype)
        want_q, want_k, want_v = ctx.needs_input_grad[:3]
        want_params = [p.requires_grad for p in params]
        with torch.autocast(q.device.type, enabled=False):
            features = _BlockFeatures(q, k, keep, feature_fn, params, work, want_params)
            dq = torch.empty_like(q) if want_q else None
            dk = torch.empty_like(k) if want_k else None
            dv = torch.empty_like(v) if want_v else None
            if causal:
                _causal_backward(grad, v, first, second, features, eps, chunk, dq, dk, dv)
            else:
                _global_backward(grad, v, first, second, features, eps, chunk, dq, dk, dv)
        param_grads = [g if want else None for g, want in zip(features.param_grads, want_params)]
        return (dq, dk, dv, None, None, None, None, None, *param_grads)


class _BlockFeatures:
    """phi of a block of queries or keys, with the vector-Jacobian product back to its inputs."""

    def __init__(self, q, k, keep, feature_fn, params, work, want_params=None):
        self.q, self.k, self.keep, self.fn, self.work = q, k, keep, feature_fn, work
        self.params = [p.detach().to(work) for p in params]
        self.want_params = want_params or [False] * len(params)
        self.param_grads = [torch.zeros_like(p) for p in self.params]

    def _phi(self, x, start, stop, is_key):
        f = self.fn(x, *self.params)
        if is_key and self.keep is not None:  # a padded key holds no feature mass
            f = f * self.keep[..., start:stop, :].to(f.dtype)
        return f

    def queries(self, start, stop):
        return self._phi(self.q[..., start:stop, :].to(self.work), start, stop, False)

    def keys(self, start, stop):
        return self._phi(self.k[..., start:stop, :].to(self.work), start, stop, True)

    def with_graph(self, is_key, start, stop):
        """(features, pull) where pull(dphi, out) writes dL/dx of the block into out."""
        source = self.k if is_key else self.q
        params = [p.requires_grad_(w) for p, w in zip(self.params, self.want_params)]
        with torch.enable_grad():
            x = source[..., start:stop, :].detach().to(self.work).requires_grad_()
            f = self._phi(x, start, stop, is_key)

        def pull(dphi, out):
            wanted = [x] + [p for p in params if p.requires_grad]
            grads = torch.autograd.grad(f, wanted, dphi)
            if out is not None:
                out[..., start:stop, :] = grads[0]
            extra = iter(grads[1:])
            for i, p in enumerate(params):
                if p.requires_grad:
                    self.param_grads[i] += next(extra)

        return f.detach(), pull


def _global_backward(grad, v, kv, ksum, features, eps, chunk, dq, dk, dv):
    work, n = features.work, v.shape[-2]
    dkv = dksum = 0
    for start, stop in _blocks(n, chunk):
        fq, pull = features.with_graph(False, start, stop)
        den = fq @ ksum.unsqueeze(-1) + eps
        gn = grad[..., start:stop, :].to(work) / den
        dfq = gn @ kv.transpose(-1, -2)  # (..., block, S)
        # gn . num = gn . (phi(q) kv) = phi(q) . (gn kv^T): no need to recompute the numerator
        dden = -(fq * dfq).sum(-1, keepdim=True) / den
        dkv = dkv + fq.transpose(-1, -2) @ gn  # (..., S, D)
        dksum = dksum + (fq * dden).sum(-2)
        if dq is not None or any(features.want_params):
            pull(dfq.add_(dden * ksum.unsqueeze(-2)), dq)
    if dk is None and dv is None and not any(features.want_params):
        return
    for start, stop in _blocks(n, chunk):
        fk, pull = features.with_graph(True, start, stop)
        vb = v[..., start:stop, :].to(work)
        if dv is not None:
            dv[..., start:stop, :] = fk @ dkv
        pull(vb @ dkv.transpose(-1, -2) + dksum.unsqueeze(-2), dk)


def _causal_backward(grad, v, states, sums, features, eps, chunk, dq, dk, dv):
    work, n = features.work, v.shape[-2]
    spans = _blocks(n, chunk)
    # sums over the tokens after the block of phi(q_t) gn_t^T and of phi(q_t) dden_t
    later = later_sums = 0
    for index in reversed(range(len(spans))):
        start, stop = spans[index]
        state, ksum = states[index], sums[index]
        fq, pull_q = features.with_graph(False, start, stop)
        fk, pull_k = features.with_graph(True, start, stop)
        vb = v[..., start:stop, :].to(work)
        key_sums = fk.cumsum(-2) + ksum.unsqueeze(-2)
        den = (fq * key_sums).sum(-1, keepdim=True) + eps
        gn = grad[..., start:stop, :].to(work) / den
        dfq, _ = _block_product(gn, vb, fk, state.transpose(-1, -2), chunk)
        # gn_t . num_t = phi(q_t) . sum_{j<=t} (gn_t . v_j) phi(k_j): the numerator is not needed
        dden = -(fq * dfq).sum(-1, keepdim=True) / den
        if isinstance(later, int):
            later = fq.new_zeros(state.shape)
            later_sums = fq.new_zeros(ksum.shape)
        weighted = fq * dden
        dfq += dden * key_sums
        pull_q(dfq, dq)
        dfk, _ = _block_product(vb, gn, fq, later.transpose(-1, -2), chunk, reverse=True)
        dfk += weighted.flip(-2).cumsum(-2).flip(-2) + later_sums.unsqueeze(-2)
        pull_k(dfk, dk)
        dvb, later = _block_product(fk, fq, gn, later, chunk, reverse=True)
        if dv is not None:
            dv[..., start:stop, :] = dvb
        later_sums = later_sums + weighted.sum(-2)


def feature_attention(q, k, v, feature_fn, params=(), *, causal: bool, keep=None,
                      eps: float = 1e-6, chunk: int = DEFAULT_CHUNK):
    """linear_attention(phi(q), phi(k) * keep, v) with phi(x) = feature_fn(x, *params).

    phi must act on each token on its own (row-wise) and give non-negative features; keep is
    None or a (B, 1, N, 1) multiplier (0 on padded keys). Computes in float32 for half inputs
    and returns q's dtype; never stores the features (see FeatureAttention).
    """
    return FeatureAttention.apply(q, k, v, keep, feature_fn, causal, eps, chunk, *params)
