"""RACE specifics: soft hash, buffers, temperature, ensembles, the functional form, the theory."""

import math

import dense_reference as ref
import pytest
import torch

from race.attention import RaceAttention, build_attention, race_attention, soft_hash


def qkv(B=2, H=2, N=24, D=8, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, N, D, generator=g, dtype=torch.float64) * scale for _ in range(3)]


def test_soft_hash_is_a_probability_vector_per_table():
    x = qkv()[0]
    planes = torch.randn(3, 2, 8, dtype=torch.float64)
    phi = soft_hash(x, planes, 0.5)
    assert phi.shape == (2, 2, 24, 3 * 4)
    assert (phi >= 0).all()
    torch.testing.assert_close(phi.unflatten(-1, (3, 4)).sum(-1), torch.ones(2, 2, 24, 3).double())
    # same buckets as the corner-by-corner reference, up to the order of the corners
    tables = ref.race_tables(x, planes, 0.5)
    for l, table in enumerate(tables):
        mine = phi[..., 4 * l : 4 * (l + 1)]
        torch.testing.assert_close(mine.sort(-1).values, table.sort(-1).values)


def test_planes_buffer_shape_seed_and_checkpointing():
    attn = RaceAttention(16, 4, hyperplanes=2, tables=3, ensembles=5, seed=7)
    assert attn.planes.shape == (5, 3, 2, 16)
    assert "planes" in attn.state_dict() and "planes" not in dict(attn.named_parameters())
    again = RaceAttention(16, 4, hyperplanes=2, tables=3, ensembles=5, seed=7)
    other = RaceAttention(16, 4, hyperplanes=2, tables=3, ensembles=5, seed=8)
    assert torch.equal(attn.planes, again.planes) and not torch.equal(attn.planes, other.planes)
    # unscaled N(0, 1) entries
    big = RaceAttention(64, 1, hyperplanes=4, tables=64, seed=1).planes
    assert abs(big.mean().item()) < 0.05 and abs(big.std().item() - 1) < 0.05
    # a checkpoint restores the very same hyperplanes into a model built with another seed
    other.load_state_dict(attn.state_dict())
    assert torch.equal(other.planes, attn.planes)


def test_temperature_conventions():
    learned = RaceAttention(16, 2)
    assert learned.tau().item() == pytest.approx(1.0) and learned.log_tau.requires_grad
    with torch.no_grad():
        learned.log_tau.fill_(10.0)
    assert learned.tau().item() == pytest.approx(10.0)  # clamped to [0.01, 10]
    with torch.no_grad():
        learned.log_tau.fill_(-10.0)
    assert learned.tau().item() == pytest.approx(0.01)
    assert RaceAttention(16, 2, tau_init=0.5).tau().item() == pytest.approx(0.5)
    fixed = RaceAttention(16, 2, temperature="fixed")
    assert fixed.tau().item() == pytest.approx(4.0)  # sqrt(D)
    assert not list(fixed.parameters())
    assert RaceAttention(16, 2, temperature="fixed", tau_init=2.0).tau().item() == 2.0
    assert fixed.tau().dim() == 0


def test_learned_temperature_receives_gradient():
    attn = RaceAttention(8, 2).double()
    q, k, v = qkv()
    attn(q, k, v).pow(2).sum().backward()
    assert attn.log_tau.grad is not None and attn.log_tau.grad.abs() > 0


@pytest.mark.parametrize("normalization", ["paper", "bucket"])
@pytest.mark.parametrize("causal", [False, True])
def test_functional_form_equals_module(normalization, causal):
    attn = RaceAttention(8, 2, ensembles=1, normalization=normalization, tau_init=0.7).double()
    q, k, v = qkv()
    mask = torch.zeros(2, 24, dtype=torch.bool)
    mask[0, -5:] = True
    expected = attn(q, k, v, causal=causal, key_padding_mask=mask)
    out = race_attention(
        q, k, v, attn.planes[0].double(), attn.tau().double(),
        causal=causal, key_padding_mask=mask, normalization=normalization, eps=attn.eps,
    )  # fmt: skip
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize("normalization", ["paper", "bucket"])
def test_ensembles_average_their_outputs(normalization):
    attn = RaceAttention(8, 2, ensembles=3, normalization=normalization).double()
    q, k, v = qkv()
    tau = attn.tau().double()
    each = [
        race_attention(q, k, v, attn.planes[m].double(), tau, normalization=normalization)
        for m in range(3)
    ]
    torch.testing.assert_close(attn(q, k, v), torch.stack(each).mean(0))
    assert not torch.allclose(each[0], each[1])


def test_paper_and_bucket_agree_only_in_the_hard_single_table_limit():
    q, k, v = qkv(N=16, scale=4.0)
    g = torch.Generator().manual_seed(0)
    planes = torch.randn(1, 3, 8, generator=g, dtype=torch.float64)
    # tau 1e-5: at 1e-3 a token within ~1e-3 of a hyperplane still splits its mass (2 of 50 draws)
    hard = dict(planes=planes, tau=1e-5)
    paper = race_attention(q, k, v, **hard, normalization="paper")
    bucket = race_attention(q, k, v, **hard, normalization="bucket")
    torch.testing.assert_close(paper, bucket, rtol=1e-4, atol=1e-4)
    soft = dict(planes=torch.randn(2, 3, 8, generator=g, dtype=torch.float64), tau=1.0)
    paper = race_attention(q, k, v, **soft, normalization="paper")
    bucket = race_attention(q, k, v, **soft, normalization="bucket")
    assert (paper - bucket).abs().max() > 1e-2


def test_converges_to_exact_angular_attention():
    """RACE.md section 8: many tables and a small tau give angular attention with gamma = P."""
    P = 2
    q, k, v = qkv(B=1, H=1, N=24, D=6, seed=3, scale=3.0)
    exact = ref.angular(q, k, v, gamma=P)

    def error(tables, tau=0.01):
        g = torch.Generator().manual_seed(11)
        planes = torch.randn(tables, P, 6, generator=g, dtype=torch.float64)
        est = race_attention(q, k, v, planes, tau, normalization="paper")
        return (est - exact).norm() / exact.norm()

    few, many = error(4), error(4000)
    assert many < 0.05, many
    assert many < few / 4, (few, many)
    # a soft hash (tau = 1) converges to another kernel: the sharpness matters
    assert error(4000, tau=1.0) > 0.1


def test_causal_output_equals_the_output_of_the_prefix():
    """The causal output at t equals the non-causal output of the prefix 1..t."""
    attn = build_attention("race", 8, 2, normalization="bucket").double()
    q, k, v = qkv(N=30)
    causal = attn(q, k, v, causal=True)
    for t in (0, 9, 29):
        prefix = attn(q[:, :, : t + 1], k[:, :, : t + 1], v[:, :, : t + 1])
        torch.testing.assert_close(causal[:, :, t], prefix[:, :, t])


@pytest.mark.parametrize(
    ("option", "value"),
    [("normalization", "softmax"), ("temperature", "annealed"), ("hyperplanes", 0),
     ("tables", -1), ("tau_init", 0.0), ("eps", 0.0), ("ensembles", 1.5)],
)  # fmt: skip
def test_bad_options_are_rejected_with_the_choices(option, value):
    with pytest.raises(ValueError, match=option):
        RaceAttention(8, 2, **{option: value})


def test_extra_repr_names_the_settings():
    text = repr(RaceAttention(8, 2, hyperplanes=4, tables=4, normalization="bucket"))
    assert "hyperplanes=4" in text and "tables=4" in text and "bucket" in text
    assert math.isclose(RaceAttention(8, 2, hyperplanes=4, tables=4).num_features, 64)
