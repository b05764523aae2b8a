"""Sequence classifier: encoder, pooling, classification head."""

from __future__ import annotations

from torch import nn

from .encoder import TransformerEncoder
from .heads import ClassificationHead
from .pooling import POOLINGS, pool


class SequenceClassifier(nn.Module):
    """(B, N) ids, (B, N) padding mask -> (B, num_classes) logits.

    Encoder keyword arguments (dim, depth, heads, mlp_dim, dropout, positions, attention,
    attention_options) go to TransformerEncoder; classifier_dim is the hidden size of
    the classification head (defaults to mlp_dim).
    """

    head_class = ClassificationHead

    def __init__(self, vocab_size: int, max_seq_len: int, num_classes: int, pooling: str = "cls",
                 classifier_dim: int | None = None, **encoder):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.encoder = TransformerEncoder(vocab_size, max_seq_len,
                                          cls_token=pooling == "cls", **encoder)
        hidden = classifier_dim or encoder.get("mlp_dim", 2 * self.encoder.dim)
        self.head = self.head_class(self.encoder.dim, hidden, num_classes)

    def features(self, input_ids, padding_mask=None):
        x, mask = self.encoder(input_ids, padding_mask)
        return pool(x, mask, self.pooling)  # (B, C)

    def forward(self, input_ids, padding_mask=None):
        return self.head(self.features(input_ids, padding_mask))
