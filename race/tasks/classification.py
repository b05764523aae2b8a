"""Sequence classification (ListOps, text, image, Pathfinder): cross-entropy on pooled states.

Metrics: train/loss, train/acc (per step), val/loss, val/acc, test/loss, test/acc, and
{val,test}/majority_acc (always answering the most frequent label) as the floor to beat.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from race.attention import available_attention
from race.models import SequenceClassifier

from .metrics import MajorityClassAccuracy
from .optim import optimizers_for

DEFAULT_OPTIMIZER = {"lr": 1e-3, "weight_decay": 0.0, "betas": (0.9, 0.999)}
DEFAULT_SCHEDULER = {"name": "cosine", "warmup_steps": 0, "min_ratio": 0.0}
SPLITS = ("train", "val", "test")


def split_attention(attention: dict) -> tuple[str, dict]:
    """{"name": ..., **options} (the attn config) -> (name, options)."""
    options = dict(attention)
    name = options.pop("name", None)
    if name is None:
        raise ValueError(f"the attention config needs a `name` (one of {available_attention()})")
    return name, options


class ClassificationTask(L.LightningModule):
    """Trains `model` (the encoder sizes) with `attention` ({"name", **options}) on one label.

    optimizer: {lr, weight_decay, betas}; scheduler: {name, warmup_steps, min_ratio} (see
    race.tasks.optim.schedule_factor), stepped every optimizer step.
    """

    def __init__(self, vocab_size: int, seq_len: int, num_classes: int, model: dict,
                 attention: dict, optimizer: dict | None = None, scheduler: dict | None = None,
                 pad_id: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.optimizer_config = {**DEFAULT_OPTIMIZER, **(optimizer or {})}
        self.scheduler_config = {**DEFAULT_SCHEDULER, **(scheduler or {})}
        name, options = split_attention(attention)
        # pad_id is kept in the hyperparameters for the record: the batches' padding_mask marks
        # padding, so the model never needs the id
        self.model = self.build_model(vocab_size, seq_len, num_classes,
                                      {**model, "attention": name, "attention_options": options})
        # one metric object per split (state is per split): train_loss, val_acc, test_majority...
        for split in SPLITS:
            setattr(self, f"{split}_loss", MeanMetric())
            setattr(self, f"{split}_acc", MulticlassAccuracy(num_classes, average="micro"))
            if split != "train":
                setattr(self, f"{split}_majority", MajorityClassAccuracy(num_classes))

    def build_model(self, vocab_size, seq_len, num_classes, model: dict) -> nn.Module:
        return SequenceClassifier(vocab_size, seq_len, num_classes, **model)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(batch["input_ids"], batch["padding_mask"])

    # steps

    def shared_step(self, batch: dict, split: str):
        logits = self(batch)  # (B, num_classes)
        labels = batch["labels"]
        loss = F.cross_entropy(logits.float(), labels)
        batch_size = labels.shape[0]
        loss_metric, acc_metric = getattr(self, f"{split}_loss"), getattr(self, f"{split}_acc")
        loss_metric(loss.detach(), weight=batch_size)
        acc_metric(logits.detach(), labels)
        # train metrics per step (a run is counted in steps), val/test per epoch
        per_step = split == "train"
        for metric_name, metric in (("loss", loss_metric), ("acc", acc_metric)):
            self.log(f"{split}/{metric_name}", metric, on_step=per_step, on_epoch=not per_step,
                     prog_bar=metric_name == "loss" or split == "val", batch_size=batch_size)
        if split != "train":
            majority = getattr(self, f"{split}_majority")
            majority(labels)
            self.log(f"{split}/majority_acc", majority, on_step=False, on_epoch=True,
                     batch_size=batch_size)
        return loss

    def training_step(self, batch, batch_idx):
        return self.shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self.shared_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self.shared_step(batch, "test")

    # optimization

    def configure_optimizers(self):
        return optimizers_for(self, self.optimizer_config, self.scheduler_config)
