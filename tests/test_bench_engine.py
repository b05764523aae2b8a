"""The fused feature attention that the scaling study leans on: exact in float64, O(N D) memory."""

import pytest
import torch

from race.attention import build_attention, causal_linear
from race.attention.causal_linear import feature_attention, linear_attention
from race.attention.race import soft_hash


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(causal_linear, "BLOCK_TOKENS", 12)  # many blocks on small inputs


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_equals_linear_attention_over_stored_features(causal, masked):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 41, 5, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    planes = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)  # a learned temperature
    keep = (torch.rand(2, 1, 41, 1, generator=g) > 0.3).double() if masked else None
    fused = feature_attention(q, k, v, soft_hash, (planes, tau), causal=causal, keep=keep,
                              chunk=4)
    k_features = soft_hash(k, planes, tau) * (1 if keep is None else keep)
    stored = linear_attention(soft_hash(q, planes, tau), k_features, v, causal=causal, chunk=4)
    weight = torch.randn(stored.shape, generator=g, dtype=torch.float64)
    mine = torch.autograd.grad((fused * weight).sum(), (q, k, v, tau))
    theirs = torch.autograd.grad((stored * weight).sum(), (q, k, v, tau))
    torch.testing.assert_close(fused, stored)
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b)


def test_gradcheck_causal():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 1, 14, 3, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    planes = torch.randn(1, 2, 3, generator=g, dtype=torch.float64)
    tau = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    fn = lambda q, k, v, tau: feature_attention(q, k, v, soft_hash, (planes, tau), causal=True,  # noqa: E731
                                                chunk=3)
    assert torch.autograd.gradcheck(fn, (q, k, v, tau))


@pytest.mark.parametrize("causal", [False, True])
def test_half_inputs_stay_half_and_match_float32(causal):
    attn = build_attention("race", 16, 2, temperature="fixed")
    q, k, v = (torch.randn(1, 2, 50, 16) for _ in range(3))
    exact = attn(q, k, v, causal=causal)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = attn(*(x.bfloat16() for x in (q, k, v)), causal=causal)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), exact, atol=0.05, rtol=0.05)
