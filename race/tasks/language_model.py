"""Causal language modelling (wikitext103, ptb): next-token cross-entropy, perplexity.

Metrics: train/loss (per step), {val,test}/loss and {val,test}/ppl = exp(mean loss per target
token over the whole split), so that perplexity does not depend on the batch size. Checkpoints
carry the tokenizer (checkpoint["tokenizer"]) so that race.generate can encode and decode text.
"""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from race.attention import build_attention
from race.models import DecoderLM

from .classification import DEFAULT_OPTIMIZER, DEFAULT_SCHEDULER, split_attention
from .optim import optimizers_for

IGNORE_INDEX = -100  # labels without a loss (race.data.masking.IGNORE_INDEX)
# model-config keys that only classifiers read (conf/model/transformer.yaml has them)
CLASSIFIER_ONLY = ("pooling", "classifier_dim")


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(B, N, V) logits, (B, N) labels with IGNORE_INDEX where no loss is taken ->
    (mean cross-entropy over the labelled tokens, their count)."""
    keep = labels != IGNORE_INDEX  # (B, N)
    count = int(keep.sum())
    if count == 0:  # e.g. an MLM block where no token was selected: no signal, no NaN
        return logits.sum() * 0.0, 0
    # only the labelled positions go through the (V-wide) softmax, in float32
    loss = F.cross_entropy(logits[keep].float(), labels[keep])
    return loss, count


def tokenizer_record(tokenizer) -> dict | None:
    """What race.generate needs to rebuild a race.data TextTokenizer (None: no tokenizer)."""
    if tokenizer is None:
        return None
    backend = tokenizer.backend
    return {"kind": tokenizer.kind, "offset": tokenizer.offset, "eos_id": tokenizer.eos_id,
            "description": tokenizer.description,
            "json": backend.to_str() if backend is not None else None}


class LanguageModelTask(L.LightningModule):
    """Shared part of the causal and masked LM tasks: token-weighted loss, perplexity, AdamW
    with a warm-up then decay schedule (race.tasks.optim). Subclasses build the model."""

    causal = False

    def __init__(self, vocab_size: int, seq_len: int, model: dict, attention: dict,
                 optimizer: dict | None = None, scheduler: dict | None = None, pad_id: int = 0):
        super().__init__()
        self.optimizer_config = {**DEFAULT_OPTIMIZER, **(optimizer or {})}
        self.scheduler_config = {**DEFAULT_SCHEDULER, **(scheduler or {})}
        name, options = split_attention(attention)
        model = {key: value for key, value in model.items() if key not in CLASSIFIER_ONLY}
        if self.causal:
            self.check_causal(name, options, model)
        self.model = self.build_model(vocab_size, seq_len,
                                      {**model, "attention": name, "attention_options": options})
        for split in ("val", "test"):
            setattr(self, f"{split}_loss", MeanMetric())

    def build_model(self, vocab_size: int, seq_len: int, model: dict) -> nn.Module:
        raise NotImplementedError

    @staticmethod
    def check_causal(name: str, options: dict, model: dict) -> None:
        """Refuse, before any data is read, an attention that cannot be causal (Linformer)."""
        heads = int(model.get("heads", 4))
        attention = build_attention(name, head_dim=int(model.get("dim", 128)) // heads,
                                    num_heads=heads, **options)
        if not attention.supports_causal:
            raise ValueError(
                f"attn={name} cannot be causal (it mixes all positions of the sequence), so it "
                "cannot train a causal language model: choose attn=race, softmax, linear, "
                "performer, angular or sigmoid")

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(batch["input_ids"], batch["padding_mask"])  # (B, N, V)

    def shared_step(self, batch: dict, split: str) -> torch.Tensor:
        loss, count = token_loss(self(batch), batch["labels"])
        if split == "train":
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True,
                     batch_size=batch["labels"].shape[0])
        elif count:
            getattr(self, f"{split}_loss").update(loss.detach(), weight=count)
        return loss

    def training_step(self, batch, batch_idx):
        return self.shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self.shared_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self.shared_step(batch, "test")

    def log_split(self, split: str) -> None:
        metric = getattr(self, f"{split}_loss")
        if metric.update_count == 0:
            return
        loss = metric.compute()  # token-weighted mean over the split (synced across ranks)
        metric.reset()
        self.log(f"{split}/loss", loss, prog_bar=split == "val", sync_dist=False)
        self.log(f"{split}/ppl", torch.exp(loss.clamp(max=math.log(1e30))),
                 prog_bar=split == "val")

    def on_validation_epoch_end(self):
        self.log_split("val")

    def on_test_epoch_end(self):
        self.log_split("test")

    def configure_optimizers(self):
        return optimizers_for(self, self.optimizer_config, self.scheduler_config)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        record = tokenizer_record(getattr(datamodule, "tokenizer", None))
        if record is not None:
            checkpoint["tokenizer"] = record


class CausalLMTask(LanguageModelTask):
    """Trains a DecoderLM (causal blocks) on next-token prediction.

    model: the sizes (dim, depth, heads, mlp_dim, dropout, positions) plus tie_weights and
    checkpointing; attention: {"name", **options}. causal_race_temperature: RACE's temperature
    option in this task ("fixed", as the released causal code; null keeps attn.temperature).
    """

    causal = True

    def __init__(self, vocab_size: int, seq_len: int, model: dict, attention: dict,
                 optimizer: dict | None = None, scheduler: dict | None = None, pad_id: int = 0,
                 causal_race_temperature: str | None = "fixed"):
        used = dict(attention)
        if used.get("name") == "race" and causal_race_temperature is not None:
            used["temperature"] = causal_race_temperature
        super().__init__(vocab_size, seq_len, model, used, optimizer, scheduler, pad_id)
        self.save_hyperparameters()  # the arguments as given; loading applies the same rule

    def build_model(self, vocab_size: int, seq_len: int, model: dict) -> nn.Module:
        return DecoderLM(vocab_size, seq_len, **model)
