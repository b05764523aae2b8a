"""Masked language modelling (TinyStories): loss on the selected (masked) positions only.

The data module corrupts 15% of the tokens with BERT's 80/10/10 rule (race.data.masking) and
labels only those positions (IGNORE_INDEX elsewhere). Metrics: train/loss, {val,test}/loss and
{val,test}/ppl = exp(mean loss per selected token over the split).
"""

from __future__ import annotations

from torch import nn

from race.models import MaskedLM

from .language_model import LanguageModelTask


class MaskedLMTask(LanguageModelTask):
    """Trains a MaskedLM (bidirectional encoder + LM head) to recover the selected tokens.

    model: the sizes (dim, depth, heads, mlp_dim, dropout, positions) plus tie_weights and
    checkpointing; attention: {"name", **options}.
    """

    causal = False

    def __init__(self, vocab_size: int, seq_len: int, model: dict, attention: dict,
                 optimizer: dict | None = None, scheduler: dict | None = None, pad_id: int = 0):
        super().__init__(vocab_size, seq_len, model, attention, optimizer, scheduler, pad_id)
        self.save_hyperparameters()

    def build_model(self, vocab_size: int, seq_len: int, model: dict) -> nn.Module:
        return MaskedLM(vocab_size, seq_len, **model)
