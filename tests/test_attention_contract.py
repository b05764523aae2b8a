"""The registry and the contract every method meets: names, options, shapes, dtypes, precision."""

import pytest
import torch
from conftest import devices

from race.attention import (
    MultiHeadAttention,
    attention_options,
    available_attention,
    build_attention,
)

NAMES = ["angular", "linear", "linformer", "performer", "race", "sigmoid", "softmax"]


def build(name, D=16, H=2, **options):
    if name == "linformer":
        options.setdefault("max_seq_len", 1 << 17)
        options.setdefault("k", 16)
    return build_attention(name, D, H, **options)


def test_registry_names():
    assert available_attention() == NAMES


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown attention 'flash'.*angular.*softmax"):
        build_attention("flash", 16, 2)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_lists_the_accepted_ones(name):
    with pytest.raises(ValueError, match=f"{name}.*'hyperplane'.*it takes"):
        build(name, hyperplane=4)


def test_options_and_defaults():
    race = attention_options("race")
    assert race["hyperplanes"] == 3 and race["tables"] == 3 and race["ensembles"] == 1
    assert race["normalization"] == "paper" and race["temperature"] == "learned"
    assert attention_options("performer")["features"] == 256
    assert attention_options("angular")["gamma"] == 8
    assert attention_options("linformer")["k"] == 128
    assert attention_options("softmax") == {}


def test_linformer_rejects_causal_and_needs_its_length():
    with pytest.raises(ValueError, match="max_seq_len"):
        build_attention("linformer", 16, 2)
    attn = build("linformer", max_seq_len=32)
    x = torch.randn(1, 2, 8, 16)
    with pytest.raises(ValueError, match="cannot be causal"):
        attn(x, x, x, causal=True)
    with pytest.raises(ValueError, match="max_seq_len=32"):
        y = torch.randn(1, 2, 40, 16)
        attn(y, y, y)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((1, 2, 8, 16), (1, 2, 8, 16), (1, 2, 9, 16)), "share one shape"),
        (((2, 8, 16),) * 3, "4-D tensor"),
        (((1, 3, 8, 16),) * 3, "num_heads=2"),
        (((1, 2, 8, 12),) * 3, "head_dim=16"),
    ],
)
def test_bad_shapes_name_the_fix(shapes, message):
    attn = build("race")
    with pytest.raises(ValueError, match=message):
        attn(*(torch.randn(s) for s in shapes))


def test_bad_dtype_and_mask_are_rejected():
    attn = build("race")
    x = torch.randn(1, 2, 8, 16)
    with pytest.raises(ValueError, match="dtype"):
        attn(x.long(), x.long(), x.long())
    with pytest.raises(ValueError, match="key_padding_mask"):
        attn(x, x, x, key_padding_mask=torch.zeros(1, 8))
    with pytest.raises(ValueError, match="key_padding_mask"):
        attn(x, x, x, key_padding_mask=torch.zeros(1, 7, dtype=torch.bool))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("N", [1, 3, 100])
def test_any_length_batch_and_heads(name, N):
    attn = build(name, D=5, H=3)
    x = torch.randn(4, 3, N, 5)
    out = attn(x, x, x)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", NAMES)
def test_autocast_keeps_input_dtype_and_float32_accuracy(name, half, device):
    torch.manual_seed(0)
    attn = build(name).to(device)
    layer = torch.nn.Linear(16, 16).to(device)
    x = torch.randn(2, 2, 50, 16, device=device)
    causal = name != "linformer"
    expected = attn(layer(x), layer(x), layer(x), causal=causal)
    with torch.autocast(device_type=device, dtype=half):
        h = layer(x)  # half precision, as a projection under autocast gives it
        assert h.dtype == half
        out = attn(h, h, h, causal=causal)
    assert out.dtype == half and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), expected, rtol=0.05, atol=0.05)
    # half inputs without autocast are computed in float32 too
    out = attn(x.to(half), x.to(half), x.to(half), causal=causal)
    assert out.dtype == half and torch.isfinite(out).all()


LONG = 65_536


FAST_AT_65K = ("race", "linear", "performer")  # the quadratic ones take minutes: slow
LONG_CASES = [
    pytest.param(name, causal, marks=() if name in FAST_AT_65K else pytest.mark.slow,
                 id=f"{name}-{'causal' if causal else 'full'}")
    for name in NAMES for causal in (False, True) if not (causal and name == "linformer")
]  # fmt: skip


@pytest.mark.parametrize(("name", "causal"), LONG_CASES)
def test_bf16_at_65k_tokens_stays_finite(name, causal):
    torch.manual_seed(0)
    attn = build(name, D=32, H=2)
    x = (torch.randn(1, 2, LONG, 32) * 3).bfloat16().requires_grad_()
    mask = torch.zeros(1, LONG, dtype=torch.bool)
    mask[:, -1000:] = True
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(x, x, x, causal=causal, key_padding_mask=mask)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    out.float().sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_multihead_layer(name):
    options = {"max_seq_len": 64} if name == "linformer" else {}
    layer = MultiHeadAttention(32, 4, attention=name, **options)
    assert layer.attention.head_dim == 8 and layer.attention.num_heads == 4
    x = torch.randn(3, 20, 32, requires_grad=True)
    mask = torch.zeros(3, 20, dtype=torch.bool)
    mask[0, 15:] = True
    out = layer(x, key_padding_mask=mask, causal=name != "linformer")
    assert out.shape == (3, 20, 32)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_multihead_layer_passes_options_and_checks_dim():
    layer = MultiHeadAttention(32, 4, attention="race", hyperplanes=4, tables=2)
    assert layer.attention.planes.shape == (1, 2, 4, 8)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(30, 4)
    with pytest.raises(ValueError, match="does not take"):
        MultiHeadAttention(32, 4, attention="softmax", tables=2)


def test_performer_redraws_on_schedule_in_training_only():
    attn = build("performer", features=8, redraw_interval=2, seed=3)
    first = attn.projection.clone()
    x = torch.randn(1, 2, 6, 16)
    attn.eval()
    for _ in range(3):
        attn(x, x, x)
    assert torch.equal(attn.projection, first)
    attn.train()
    attn(x, x, x)
    assert torch.equal(attn.projection, first)
    attn(x, x, x)  # second training call: redraw
    second = attn.projection.clone()
    assert not torch.equal(second, first)
    twin = build("performer", features=8, redraw_interval=2, seed=3)
    twin.load_state_dict(attn.state_dict())  # counters travel with the checkpoint
    twin.train()
    for module in (attn, twin):
        module(x, x, x)
        module(x, x, x)
    assert torch.equal(attn.projection, twin.projection)
    assert not torch.equal(attn.projection, second)


def test_performer_features_are_orthogonal_blocks():
    attn = build("performer", D=8, features=16)
    w = attn.projection.double()
    block = w[:8] / w[:8].norm(dim=1, keepdim=True)
    torch.testing.assert_close(block @ block.T, torch.eye(8, dtype=torch.float64), atol=1e-5,
                               rtol=0)  # fmt: skip


DECODERS = ["race", "linear", "performer", "softmax", "angular"]


@pytest.mark.parametrize(
    ("name", "options"),
    [(n, {}) for n in DECODERS] + [("race", {"normalization": "bucket", "ensembles": 2})],
)
def test_step_by_step_decoding_equals_the_causal_forward(name, options):
    attn = build(name, **options).double()
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 23, 16, generator=g, dtype=torch.float64) * 2 for _ in range(3))
    full = attn(q, k, v, causal=True)
    cache, steps = None, []
    for t in range(23):
        out, cache = attn.decode_step(q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1],
                                      cache)  # fmt: skip
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, dim=-2), full, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", ["race", "linear", "performer"])
def test_recurrent_state_does_not_grow_with_the_context(name):
    attn = build(name)
    x = torch.randn(1, 2, 1, 16)
    _, cache = attn.decode_step(x, x, x)
    size = lambda c: sum(t.numel() for t in torch.utils._pytree.tree_leaves(c)  # noqa: E731
                         if isinstance(t, torch.Tensor))  # fmt: skip
    first = size(cache)
    for _ in range(10):
        _, cache = attn.decode_step(x, x, x, cache)
    assert size(cache) == first
    _, kv_cache = build("softmax").decode_step(x, x, x)
    assert size(build("softmax").decode_step(x, x, x, kv_cache)[1]) > size(kv_cache)


def test_decoding_is_refused_where_it_cannot_match_the_forward_pass():
    x = torch.randn(1, 2, 1, 16)
    with pytest.raises(ValueError, match="sigmoid"):
        build("sigmoid").decode_step(x, x, x)
    with pytest.raises(ValueError, match="cannot be causal"):
        build("linformer").decode_step(x, x, x)
    with pytest.raises(ValueError, match="one position"):
        y = torch.randn(1, 2, 3, 16)
        build("race").decode_step(y, y, y)


def test_multihead_decoding_matches_its_causal_forward():
    torch.manual_seed(0)
    layer = MultiHeadAttention(16, 2, attention="race").double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    full = layer(x, causal=True)
    cache, steps = None, []
    for t in range(9):
        y, cache = layer.decode_step(x[:, t : t + 1], cache)
        steps.append(y)
    torch.testing.assert_close(torch.cat(steps, 1), full)
