"""Dual encoder for LRA retrieval: one shared encoder reads both documents."""

from __future__ import annotations

from torch import nn

from .encoder import TransformerEncoder
from .heads import RetrievalHead
from .pooling import POOLINGS, pool


class DualEncoderClassifier(nn.Module):
    """Two (B, N) documents -> (B, num_classes) logits; same arguments as SequenceClassifier."""

    def __init__(self, vocab_size: int, max_seq_len: int, num_classes: int, pooling: str = "cls",
                 classifier_dim: int | None = None, **encoder):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.encoder = TransformerEncoder(vocab_size, max_seq_len,
                                          cls_token=pooling == "cls", **encoder)
        hidden = classifier_dim or encoder.get("mlp_dim", 2 * self.encoder.dim)
        self.head = RetrievalHead(self.encoder.dim, hidden, num_classes)

    def features(self, input_ids, padding_mask=None):
        x, mask = self.encoder(input_ids, padding_mask)
        return pool(x, mask, self.pooling)  # (B, C)

    def forward(self, input_ids_1, padding_mask_1, input_ids_2, padding_mask_2):
        x1 = self.features(input_ids_1, padding_mask_1)
        x2 = self.features(input_ids_2, padding_mask_2)
        return self.head(x1, x2)
