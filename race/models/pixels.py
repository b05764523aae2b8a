"""Real-valued pixel or patch tokens: a linear embedding with learned positions (ViT-style).

    pixels (B, N, pixel_dim) -> Linear(pixel_dim, dim) + position -> encoder -> pooling -> head

pixel_dim = channels * patch^2: cifar10 one RGB pixel per token (3), fashion_mnist one grey
pixel (1), food101 4 x 4 RGB patches (48); see race.data.image_patches for the layout.
"""

from __future__ import annotations

import torch
from torch import nn

from .classifier import SequenceClassifier
from .embeddings import PositionalEmbedding


class PixelEmbedding(PositionalEmbedding):
    """(B, N, pixel_dim) floats -> (B, N, dim): a linear projection + position + dropout."""

    def __init__(self, pixel_dim: int, dim: int, max_seq_len: int, positions: str = "learned",
                 dropout: float = 0.0):
        super().__init__(dim, max_seq_len, positions, dropout)
        self.projection = nn.Linear(pixel_dim, dim)

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.dim() != 3 or pixels.shape[-1] != self.projection.in_features:
            raise ValueError(f"pixels must be (B, N, {self.projection.in_features}), got "
                             f"{tuple(pixels.shape)}: build the model with the data's pixel_dim")
        return self.projection(pixels)


class PixelClassifier(SequenceClassifier):
    """(B, N, pixel_dim) pixels, (B, N) padding mask -> (B, num_classes) logits.

    A SequenceClassifier (same encoder, pooling and head arguments) whose token table is
    replaced by a PixelEmbedding, so that the CLS token and pooling logic live in one place.
    """

    def __init__(self, pixel_dim: int, max_seq_len: int, num_classes: int, **classifier):
        # vocab_size 1: a placeholder table, replaced right below
        super().__init__(1, max_seq_len, num_classes, **classifier)
        self.encoder.embedding = PixelEmbedding(
            pixel_dim, self.encoder.dim, max_seq_len, classifier.get("positions", "learned"),
            classifier.get("dropout", 0.1))
