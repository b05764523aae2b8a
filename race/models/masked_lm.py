"""Masked language model (BERT-style): a bidirectional encoder and an LM head on every position."""

from __future__ import annotations

import torch
from torch import nn

from .decoder import LanguageModelHead, init_gpt2
from .encoder import TransformerEncoder


class MaskedLM(nn.Module):
    """(B, N) corrupted ids, (B, N) padding mask -> (B, N, vocab_size) logits of the originals.

    Keyword arguments as TransformerEncoder (dim, depth, heads, mlp_dim, dropout, positions,
    attention, attention_options, checkpointing); tie_weights shares the token table and the
    LM head, as BERT does.
    """

    def __init__(self, vocab_size: int, max_seq_len: int, tie_weights: bool = True, **encoder):
        super().__init__()
        self.encoder = TransformerEncoder(vocab_size, max_seq_len, cls_token=False, **encoder)
        tokens = self.encoder.embedding.tokens if tie_weights else None
        self.head = LanguageModelHead(self.encoder.dim, vocab_size, tokens)
        init_gpt2(self)  # BERT's initialisation too (N(0, 0.02))

    def forward(self, input_ids: torch.Tensor, padding_mask: torch.Tensor | None = None):
        x, _ = self.encoder(input_ids, padding_mask)  # (B, N, C)
        return self.head(x)  # (B, N, V)
