"""Dual encoder for LRA retrieval: one shared encoder reads both documents."""

from __future__ import annotations

from .classifier import SequenceClassifier
from .heads import RetrievalHead


class DualEncoderClassifier(SequenceClassifier):
    """Two (B, N) documents -> (B, num_classes) logits; same arguments as SequenceClassifier.

    Each document is encoded and pooled on its own; the head reads [x1, x2, x1 * x2, x1 - x2].
    """

    head_class = RetrievalHead

    def forward(self, input_ids_1, padding_mask_1, input_ids_2, padding_mask_2):
        x1 = self.features(input_ids_1, padding_mask_1)
        x2 = self.features(input_ids_2, padding_mask_2)
        return self.head(x1, x2)
