"""Classification heads: one pooled vector, or two (LRA retrieval's dual encoder)."""

from __future__ import annotations

import torch
from torch import nn


class ClassificationHead(nn.Module):
    """(B, C) -> (B, num_classes) through one hidden layer, as in the LRA classifiers."""

    def __init__(self, dim: int, hidden_dim: int, num_classes: int, in_features: int | None = None):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features or dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, num_classes)
        )

    def forward(self, x):
        return self.net(x)


class RetrievalHead(nn.Module):
    """Two (B, C) document vectors -> logits from [x1, x2, x1 * x2, x1 - x2] (LRA retrieval)."""

    def __init__(self, dim: int, hidden_dim: int, num_classes: int):
        super().__init__()
        self.classifier = ClassificationHead(dim, hidden_dim, num_classes, in_features=4 * dim)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.cat([x1, x2, x1 * x2, x1 - x2], dim=-1))  # (B, 4C) in
