"""Image classification on real-valued pixel or patch tokens (cifar10, fashion_mnist, food101).

ClassificationTask (same loss, metrics and schedule) with a PixelClassifier: the batches carry
"pixels" (B, N, pixel_dim) floats instead of token ids (docs/CONTRACTS.md).
"""

from __future__ import annotations

import torch
from torch import nn

from race.models import PixelClassifier

from .classification import ClassificationTask


class ImageClassificationTask(ClassificationTask):
    """pixel_dim = channels * patch^2 of the data (cifar10 3, fashion_mnist 1, food101 48).

    vocab_size is accepted for the data-module interface and must be None (no token table).
    """

    def __init__(self, seq_len: int, num_classes: int, pixel_dim: int, model: dict,
                 attention: dict, optimizer: dict | None = None, scheduler: dict | None = None,
                 vocab_size: int | None = None, pad_id: int = 0):
        if vocab_size is not None:
            raise ValueError(f"image tasks embed real-valued pixels, not token ids (got "
                             f"vocab_size={vocab_size}): use an image data module whose "
                             "batches carry 'pixels'")
        self._pixel_dim = pixel_dim  # read by build_model, which the parent __init__ calls
        super().__init__(vocab_size, seq_len, num_classes, model, attention, optimizer,
                         scheduler, pad_id)

    def build_model(self, vocab_size, seq_len, num_classes, model: dict) -> nn.Module:
        return PixelClassifier(self._pixel_dim, seq_len, num_classes, **model)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(batch["pixels"], batch["padding_mask"])
