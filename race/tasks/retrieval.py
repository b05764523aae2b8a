"""LRA retrieval: are two documents related? A dual encoder reads each one (shared weights)."""

from __future__ import annotations

import torch
from torch import nn

from race.models import DualEncoderClassifier

from .classification import ClassificationTask


class RetrievalTask(ClassificationTask):
    """Batches {input_ids_1, padding_mask_1, input_ids_2, padding_mask_2, labels}; seq_len is
    the length of one document. Same metrics and optimization as ClassificationTask."""

    def build_model(self, vocab_size, seq_len, num_classes, model: dict) -> nn.Module:
        return DualEncoderClassifier(vocab_size, seq_len, num_classes, **model)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(batch["input_ids_1"], batch["padding_mask_1"],
                          batch["input_ids_2"], batch["padding_mask_2"])
