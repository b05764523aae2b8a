"""The fused kernel that the scaling study leans on (RACE, and linear attention over given
features for linear and performer): exact in float64, O(N D) memory."""

import pytest
import torch
import torch.nn.functional as F

from race.attention import build_attention, chunk_products, race_kernel
from race.attention.causal_linear import linear_attention, linear_attention_reference
from race.attention.race import soft_hash
from race.attention.race_kernel import (
    fused_linear_attention,
    fused_race_attention,
    hash_backward,
    hash_from_projection,
)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(chunk_products, "BLOCK_TOKENS", 12)  # many blocks on small inputs


def _inputs(generator, length=41, dim=5, layout="contiguous"):
    shape = (2, 3, length, dim)
    if layout == "heads-last":  # (B, N, H, D) memory seen as (B, H, N, D), as multi-head layers do
        return [torch.randn(2, length, 3, dim, generator=generator, dtype=torch.float64)
                .transpose(1, 2).requires_grad_() for _ in range(3)]
    return [torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True)
            for _ in range(3)]


def _assert_same_outputs_and_gradients(fused, plain, inputs, names, generator):
    """fused == plain, and so are their gradients with respect to each of inputs (one random
    weighting of the outputs, so every output element counts)."""
    weight = torch.randn(plain.shape, generator=generator, dtype=torch.float64)
    mine = torch.autograd.grad((fused * weight).sum(), inputs, retain_graph=True)
    theirs = torch.autograd.grad((plain * weight).sum(), inputs)
    torch.testing.assert_close(fused, plain)
    for name, a, b in zip(names, mine, theirs):
        torch.testing.assert_close(a, b, msg=lambda m, name=name: f"d{name}: {m}")


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "heads-last"])
@pytest.mark.parametrize("length", [5, 41, 48])  # 2 rows a group / ragged last block / whole chunks
def test_equals_linear_attention_over_stored_features(causal, masked, layout, length):
    g = torch.Generator().manual_seed(1)
    q, k, v = _inputs(g, length, layout=layout)
    planes = torch.randn(2, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)  # a learned temperature
    keep = (torch.rand(2, 1, length, 1, generator=g) > 0.3).double() if masked else None
    fused = fused_race_attention(q, k, v, planes, tau, causal=causal, keep=keep, chunk=4)
    k_features = soft_hash(k, planes, tau) * (1 if keep is None else keep)
    stored = linear_attention_reference(soft_hash(q, planes, tau), k_features, v, causal=causal)
    _assert_same_outputs_and_gradients(fused, stored, (q, k, v, planes, tau),
                                       "q k v planes tau".split(), g)


def test_hash_backward_matches_autograd():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(7, 12, generator=g, dtype=torch.float64, requires_grad=True)  # L=4, P=3
    tau = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    z = torch.tanh(a)
    phi = hash_from_projection(z, tau, 3)
    dphi = torch.randn(phi.shape, generator=g, dtype=torch.float64)
    da, dtau = torch.autograd.grad(phi, (a, tau), dphi)
    mine_da, mine_dtau = hash_backward(z.detach(), phi.detach(), dphi, tau.detach(), 3)
    torch.testing.assert_close(mine_da, da)
    torch.testing.assert_close(mine_dtau, dtau)


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck(causal):
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 14, 3, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    planes = torch.randn(1, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)

    def fn(q, k, v, planes, tau):
        return fused_race_attention(q, k, v, planes, tau, causal=causal, chunk=3)

    assert torch.autograd.gradcheck(fn, (q, k, v, planes, tau))


@pytest.mark.parametrize("causal", [False, True])
def test_half_inputs_stay_half_and_match_float32(causal):
    attn = build_attention("race", 16, 2, temperature="fixed")
    q, k, v = (torch.randn(1, 2, 50, 16) for _ in range(3))
    exact = attn(q, k, v, causal=causal)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = attn(*(x.bfloat16() for x in (q, k, v)), causal=causal)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), exact, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("rows", [1, 2])  # one row writes the products into the scan buffer
@pytest.mark.parametrize("loop", [True, False])  # the CPU's loop and the GPU's cumsum
def test_chunk_state_scans(loop, rows):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(rows * 6, 5, 3, generator=g, dtype=torch.float64)
    y = torch.randn(rows * 6, 5, 2, generator=g, dtype=torch.float64)
    edge = torch.randn(rows, 3, 2, generator=g, dtype=torch.float64)
    states = torch.einsum("gcs,gcd->gsd", x, y).unflatten(0, (rows, 6))
    zero = torch.zeros_like(states[:, :1])
    before = edge[:, None] + torch.cat([zero, states], 1).cumsum(1)
    from_here = edge[:, None] + torch.cat([states, zero], 1).flip(1).cumsum(1).flip(1)
    torch.testing.assert_close(chunk_products.scan_chunk_states(x, y, edge, loop=loop), before)
    torch.testing.assert_close(
        chunk_products.scan_chunk_states(x, y, edge, reverse=True, loop=loop), from_here)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("eps_kind", ["number", "per-query"])  # the performer's eps is per query
@pytest.mark.parametrize("layout", ["contiguous", "heads-last"])
@pytest.mark.parametrize("length", [5, 41, 48])
@pytest.mark.parametrize("feature_map", ["given", "elu"])
def test_linear_attention_equals_quadratic_form(causal, eps_kind, layout, length, feature_map):
    g = torch.Generator().manual_seed(5)
    q, k, v = _inputs(g, length, layout=layout)
    keep = (torch.rand(2, 1, length, 1, generator=g) > 0.3).double()
    eps = (0.5 if eps_kind == "number"
           else torch.rand(2, 3, length, 1, generator=g, dtype=torch.float64))
    if feature_map == "given":  # padded keys zeroed by the caller, as the performer does
        q_features, k_features = torch.exp(q), torch.exp(k) * keep
        fused = linear_attention(q_features, k_features, v, causal=causal, eps=eps, chunk=4)
    else:
        q_features, k_features = F.elu(q) + 1, (F.elu(k) + 1) * keep
        fused = fused_linear_attention(q, k, v, causal=causal, feature_map="elu", keep=keep,
                                       eps=eps, chunk=4)
    plain = linear_attention_reference(q_features, k_features, v, causal=causal, eps=eps)
    _assert_same_outputs_and_gradients(fused, plain, (q, k, v), "qkv", g)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("feature_map", ["given", "elu"])
def test_linear_attention_gradcheck(causal, feature_map):
    g = torch.Generator().manual_seed(6)
    q, k, v = (torch.rand(1, 2, 14, 3, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    eps = torch.rand(1, 2, 14, 1, generator=g, dtype=torch.float64)

    shift = 0.5 if feature_map == "elu" else 0.0  # elu: both sides of 0; given: positive features

    def fn(q, k, v):
        return fused_linear_attention(q - shift, k - shift, v, causal=causal, eps=eps, chunk=3,
                                      feature_map=feature_map)

    assert torch.autograd.gradcheck(fn, (q, k, v))


def _unshifted_favor(x, projection):
    """The performer's features with no stabiliser at all: exp(logits) / sqrt(m)."""
    return torch.exp(race_kernel.favor_logits(x, projection)) / projection.shape[0] ** 0.5


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "heads-last"])
@pytest.mark.parametrize("length", [5, 41, 48])
@pytest.mark.parametrize("padding", ["none", "some", "row of pads"])
def test_favor_features_equal_unshifted_quadratic_form(causal, layout, length, padding):
    """Shifted inside the kernel, the output and gradients are those of the plain formula with
    the plain eps; large inputs make the unshifted exponentials span many orders of magnitude."""
    g = torch.Generator().manual_seed(7)
    q, k, v = _inputs(g, length, layout=layout)
    with torch.no_grad():
        q.mul_(3), k.mul_(3)
    projection = torch.randn(11, 5, generator=g, dtype=torch.float64)
    keep = None
    if padding != "none":
        keep = (torch.rand(2, 1, length, 1, generator=g) > 0.3).double()
        if padding == "row of pads":
            keep[1] = 0
    fused = fused_linear_attention(q, k, v, causal=causal, feature_map="favor", keep=keep,
                                   eps=0.25, chunk=4, projection=projection)
    k_features = _unshifted_favor(k, projection)
    if keep is not None:
        k_features = k_features * keep
    plain = linear_attention_reference(_unshifted_favor(q, projection), k_features, v,
                                       causal=causal, eps=0.25)
    _assert_same_outputs_and_gradients(fused, plain, (q, k, v), "qkv", g)


@pytest.mark.parametrize("causal", [False, True])
def test_favor_shift_ignores_padded_keys(causal):
    """Kept keys with logits of -150 +- 40 and padded keys of 0, in float32 (exp overflows past
    88): a shift taken over the padded keys too would flush every kept feature to zero, and a
    padded key's unmasked feature, exp(100) or more, would be inf (inf * 0 = nan after masking)."""
    g = torch.Generator().manual_seed(9)
    q, v = (torch.randn(1, 2, 16, 5, generator=g) for _ in range(2))
    direction = F.normalize(torch.randn(1, 2, 16, 5, generator=g), dim=-1)
    keep = torch.ones(1, 1, 16, 1)
    keep[..., 1::3, :] = 0
    k = direction * (300 ** 0.5 * 5 ** 0.25) * keep  # kept keys: |x'|^2 / 2 = 150; padded: 0
    projection = torch.randn(6, 5, generator=g)
    fused = fused_linear_attention(q, k, v, causal=causal, feature_map="favor", keep=keep,
                                   eps=1e-80, projection=projection)
    q64, k64, projection64 = (x.double() for x in (q, k, projection))
    plain = linear_attention_reference(_unshifted_favor(q64, projection64),
                                       _unshifted_favor(k64, projection64) * keep.double(),
                                       v.double(), causal=causal, eps=1e-80)
    assert fused.isfinite().all()
    torch.testing.assert_close(fused.double(), plain, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_favor_features_gradcheck(causal):
    g = torch.Generator().manual_seed(8)
    q, k, v = (torch.randn(1, 2, 14, 3, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    projection = torch.randn(4, 3, generator=g, dtype=torch.float64)

    def fn(q, k, v):
        return fused_linear_attention(q, k, v, causal=causal, feature_map="favor", eps=0.1,
                                      chunk=3, projection=projection)

    assert torch.autograd.gradcheck(fn, (q, k, v))


def test_linear_attention_rejects_bad_input():
    x = torch.rand(2, 7, 4)
    with pytest.raises(ValueError, match="batch, heads, length, features"):
        linear_attention(x, x, x, causal=True)
    x = x[None]
    with pytest.raises(ValueError, match="detach"):
        linear_attention(x, x, x, causal=True, eps=torch.ones(1, requires_grad=True))
    with pytest.raises(ValueError, match="feature_map must be one of"):
        fused_linear_attention(x, x, x, causal=True, feature_map="relu")
    with pytest.raises(ValueError, match="pass projection"):
        fused_linear_attention(x, x, x, causal=True, feature_map="favor")
    with pytest.raises(ValueError, match="pass projection"):
        fused_linear_attention(x, x, x, causal=True, feature_map="elu", projection=x[0, 0])
    with pytest.raises(ValueError, match="projection.detach"):
        fused_linear_attention(x, x, x, causal=True, feature_map="favor",
                               projection=torch.ones(3, 4, requires_grad=True))
    with pytest.raises(ValueError, match="eps as a number"):
        fused_linear_attention(x, x, x, causal=True, feature_map="favor", projection=x[0, 0],
                               eps=torch.ones(1))
