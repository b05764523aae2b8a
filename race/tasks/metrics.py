"""Majority-class accuracy: the score of always answering the most frequent label."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class MajorityClassAccuracy(Metric):
    """Fraction of the labels seen that belong to the most frequent class (synced across ranks)."""

    full_state_update = False

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.add_state("counts", default=torch.zeros(num_classes, dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, labels: torch.Tensor) -> None:
        self.counts += torch.bincount(labels.flatten(), minlength=self.num_classes)

    def compute(self) -> torch.Tensor:
        return self.counts.max().float() / self.counts.sum().clamp(min=1).float()
