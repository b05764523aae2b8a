"""Every method of the registry against its dense float64 definition (tests/dense_reference.py)."""

import dense_reference as ref
import pytest
import torch
from conftest import devices

from race.attention import available_attention, build_attention, chunk_products

B, H, D = 2, 3, 8
LENGTHS = [1, 5, 16, 37, 70]  # 37 and 70 are not multiples of the chunk (8) or block (32)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Several chunks and several blocks even at tiny N, so every engine branch runs."""
    monkeypatch.setattr(chunk_products, "BLOCK_TOKENS", 32)


def make(name, **options):
    small = {
        "race": {"chunk_size": 8},
        "linear": {"chunk_size": 8},
        "performer": {"chunk_size": 8, "features": 16},
        "angular": {"chunk_size": 8},
        "sigmoid": {"chunk_size": 8},
        "linformer": {"max_seq_len": 80, "k": 6},
    }.get(name, {})
    return build_attention(name, D, H, **{**small, **options}).double()


def reference(name, attn, q, k, v, causal, mask):
    kwargs = dict(causal=causal, key_padding_mask=mask)
    if name == "race":
        form = ref.race_paper if attn.normalization == "paper" else ref.race_bucket
        return form(q, k, v, attn.planes[0].double(), attn.tau().double(), eps=attn.eps, **kwargs)
    if name == "performer":
        return ref.performer(q, k, v, attn.projection.double(), eps=attn.eps, **kwargs)
    if name == "linformer":
        return ref.linformer(
            q,
            k,
            v,
            attn.key_projection.double(),
            attn.value_projection.double(),
            key_padding_mask=mask,
        )
    if name == "linear":
        return ref.linear(q, k, v, eps=attn.eps, **kwargs)
    return getattr(ref, name)(q, k, v, **kwargs)


def inputs(N, device="cpu", seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, N, D, generator=g, dtype=torch.float64) * scale for _ in range(3))
    return q.to(device), k.to(device), v.to(device)


def padding(N, seed=0):
    g = torch.Generator().manual_seed(seed + 1)
    mask = torch.rand(B, N, generator=g) < 0.3
    mask[:, 0] = False  # every sequence keeps at least one real token
    return mask


CASES = [(name, {}) for name in available_attention()] + [
    ("race", {"normalization": "bucket"}),
    ("race", {"temperature": "fixed"}),
    ("race", {"hyperplanes": 2, "tables": 5, "tau_init": 0.3}),
]


def case_id(case):
    name, options = case
    return name + "".join(f"-{k}={v}" for k, v in options.items())


# linformer cannot be causal (its ValueError is tested in test_attention_contract.py)
CAUSAL_CASES = [
    (case, causal)
    for case in CASES
    for causal in (False, True)
    if not (causal and case[0] == "linformer")
]


CAUSAL_IDS = [case_id(c) + ("-causal" if causal else "-full") for c, causal in CAUSAL_CASES]


@pytest.mark.parametrize(("case", "causal"), CAUSAL_CASES, ids=CAUSAL_IDS)
@pytest.mark.parametrize("padded", [False, True], ids=["dense", "padded"])
@pytest.mark.parametrize("N", LENGTHS)
def test_matches_dense_reference(case, causal, padded, N):
    name, options = case
    attn = make(name, **options)
    q, k, v = inputs(N)
    mask = padding(N) if padded else None
    out = attn(q, k, v, causal=causal, key_padding_mask=mask)
    expected = reference(name, attn, q, k, v, causal, mask)
    assert out.shape == (B, H, N, D) and out.dtype == torch.float64
    real = slice(None) if mask is None else ~mask[:, None, :, None].expand_as(out)
    torch.testing.assert_close(out[real], expected[real], rtol=1e-9, atol=1e-10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("name", ["race", "linear", "performer", "softmax", "angular", "sigmoid"])
def test_matches_reference_on_device(name, device):
    attn = make(name).to(device)
    q, k, v = inputs(45, device)
    mask = padding(45).to(device)
    for causal in (False, True):
        out = attn(q, k, v, causal=causal, key_padding_mask=mask).cpu()
        expected = reference(name, attn.cpu(), q.cpu(), k.cpu(), v.cpu(), causal, mask.cpu())
        attn.to(device)
        real = ~mask[:, None, :, None].expand_as(out)
        torch.testing.assert_close(out[real], expected[real], rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name", [n for n in available_attention() if n != "linformer"])
def test_causal_outputs_ignore_the_future(name):
    attn = make(name)
    N, t = 40, 17
    q, k, v = inputs(N)
    out = attn(q, k, v, causal=True)
    q2, k2, v2 = (x.clone() for x in (q, k, v))
    for x in (q2, k2, v2):
        x[:, :, t + 1 :] = torch.randn_like(x[:, :, t + 1 :]) * 5
    out2 = attn(q2, k2, v2, causal=True)
    torch.testing.assert_close(out2[:, :, : t + 1], out[:, :, : t + 1], rtol=0, atol=1e-12)
    assert not torch.allclose(out2[:, :, t + 1 :], out[:, :, t + 1 :])


MODES = [
    (n, c) for n in available_attention() for c in (False, True) if not (c and n == "linformer")
]


@pytest.mark.parametrize(("name", "causal"), MODES)
def test_padded_positions_influence_nothing(name, causal):
    attn = make(name)
    N = 33
    q, k, v = inputs(N)
    mask = padding(N, seed=3)
    out = attn(q, k, v, causal=causal, key_padding_mask=mask)
    pad = mask[:, None, :, None].expand_as(q)
    q2, k2, v2 = (torch.where(pad, torch.randn_like(x) * 7, x) for x in (q, k, v))
    out2 = attn(q2, k2, v2, causal=causal, key_padding_mask=mask)
    torch.testing.assert_close(out2[~pad], out[~pad], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", available_attention())
def test_fully_padded_sequence_stays_finite(name):
    attn = make(name)
    q, k, v = inputs(9)
    mask = torch.zeros(B, 9, dtype=torch.bool)
    mask[1] = True  # the second sequence is padding only
    for causal in [False] if name == "linformer" else [False, True]:
        assert torch.isfinite(attn(q, k, v, causal=causal, key_padding_mask=mask)).all()


def test_left_padding_with_causal_softmax_is_finite():
    attn = make("softmax")
    q, k, v = inputs(10)
    mask = torch.zeros(B, 10, dtype=torch.bool)
    mask[:, :4] = True  # left padding: early padded queries have no real key before them
    out = attn(q, k, v, causal=True, key_padding_mask=mask)
    assert torch.isfinite(out).all()
    expected = ref.softmax(q, k, v, causal=True, key_padding_mask=mask)
    torch.testing.assert_close(out[:, :, 4:], expected[:, :, 4:])
