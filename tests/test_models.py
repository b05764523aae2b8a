"""race.models: shapes, padding that changes nothing, causality, the retrieval head, seeds."""

import pytest
import torch

from race.attention import available_attention
from race.models import (
    DualEncoderClassifier,
    SequenceClassifier,
    TransformerStack,
    pool,
    sinusoidal_positions,
)

TINY = dict(dim=16, depth=2, heads=2, mlp_dim=32, dropout=0.0)


def options_for(name, seq_len):
    return {"max_seq_len": seq_len} if name == "linformer" else {}


@pytest.mark.parametrize("name", available_attention())
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_classifier_shape_and_padding_changes_nothing(name, pooling):
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=20, max_seq_len=12, num_classes=5, pooling=pooling,
                               attention=name, attention_options=options_for(name, 12),
                               **TINY).double().eval()
    ids = torch.randint(1, 20, (3, 8))
    logits = model(ids, torch.zeros(3, 8, dtype=torch.bool))
    assert logits.shape == (3, 5) and logits.dtype == torch.float64
    padded_ids = torch.cat([ids, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[:, 8:] = True
    padded = model(padded_ids, mask)
    if name == "linformer":
        # Linformer's projection rows depend on the length: padding must merely stay finite
        assert torch.isfinite(padded).all()
    elif name == "sigmoid":
        # sigmoid attention's bias -log(N) uses the padded length N
        assert torch.isfinite(padded).all()
    else:
        torch.testing.assert_close(padded, logits)


def test_mean_pooling_ignores_padding():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    mask = torch.tensor([[False, False, True]])
    assert pool(x, mask, "mean").item() == 2.0
    assert pool(x, None, "cls").item() == 1.0
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool(x, mask, "max")


@pytest.mark.parametrize("name", ["race", "softmax", "linear", "performer"])
def test_causal_stack_sees_only_the_past(name):
    torch.manual_seed(0)
    stack = TransformerStack(16, 2, 2, 32, attention=name, causal=True).double().eval()
    x = torch.randn(2, 10, 16, dtype=torch.float64)
    changed = x.clone()
    changed[:, 6:] = torch.randn(2, 4, 16, dtype=torch.float64)
    torch.testing.assert_close(stack(changed)[:, :6], stack(x)[:, :6])


def test_dual_encoder_reads_both_documents():
    torch.manual_seed(0)
    model = DualEncoderClassifier(vocab_size=30, max_seq_len=10, num_classes=2,
                                  attention="race", **TINY).eval()
    assert model.head.classifier.net[0].in_features == 4 * 16  # [x1, x2, x1 * x2, x1 - x2]
    a, b = torch.randint(1, 30, (2, 4, 10))
    no_padding = torch.zeros(4, 10, dtype=torch.bool)
    logits = model(a, no_padding, b, no_padding)
    assert logits.shape == (4, 2)
    assert not torch.allclose(logits, model(a, no_padding, a, no_padding))


def test_layers_hash_with_different_hyperplanes():
    stack = TransformerStack(16, 2, 2, 32, attention="race", attention_options={"seed": 3})
    first, second = (block.attention.attention.planes for block in stack.blocks)
    assert not torch.equal(first, second)
    again = TransformerStack(16, 2, 2, 32, attention="race", attention_options={"seed": 3})
    assert torch.equal(again.blocks[0].attention.attention.planes, first)


def test_sinusoidal_positions_and_length_check():
    table = sinusoidal_positions(4, 6)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0] * 3))
    model = SequenceClassifier(10, 8, 3, positions="sinusoidal", attention="softmax", **TINY)
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="positions must be one of"):
        SequenceClassifier(10, 8, 3, positions="rotary", attention="softmax", **TINY)
