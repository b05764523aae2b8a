"""Token encoder: embeddings (+ an optional CLS token) and a transformer stack."""

from __future__ import annotations

import torch
from torch import nn

from race.attention import attention_options as attention_options_of

from .block import TransformerStack
from .embeddings import TokenEmbedding


class TransformerEncoder(nn.Module):
    """(B, N) ids and (B, N) padding mask -> (B, N', dim) states and their (B, N') mask.

    cls_token=True prepends one learned vector without a position (N' = N + 1) for CLS pooling;
    checkpointing=True recomputes each block in the backward pass (TransformerStack).
    """

    def __init__(self, vocab_size: int, max_seq_len: int, dim: int = 128, depth: int = 2,
                 heads: int = 4, mlp_dim: int = 256, dropout: float = 0.1,
                 positions: str = "learned", attention: str = "race",
                 attention_options: dict | None = None, cls_token: bool = False,
                 causal: bool = False, checkpointing: bool = False):
        super().__init__()
        self.dim = dim
        self.embedding = TokenEmbedding(vocab_size, dim, max_seq_len, positions, dropout)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if cls_token else None
        options = dict(attention_options or {})
        if "max_seq_len" in attention_options_of(attention) and options.get("max_seq_len") is None:
            options["max_seq_len"] = max_seq_len  # an attention that needs the length gets ours
        if cls_token and options.get("max_seq_len") is not None:
            # attention configured for the data's length (linformer) also sees the CLS token
            options["max_seq_len"] = int(options["max_seq_len"]) + 1
        self.stack = TransformerStack(dim, depth, heads, mlp_dim, dropout, attention, options,
                                      causal=causal, checkpointing=checkpointing)

    def forward(self, input_ids: torch.Tensor, padding_mask: torch.Tensor | None = None):
        x = self.embedding(input_ids)  # (B, N, C)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
            if padding_mask is not None:
                keep_cls = padding_mask.new_zeros(padding_mask.shape[0], 1)
                padding_mask = torch.cat([keep_cls, padding_mask], dim=1)  # (B, N + 1)
        return self.stack(x, key_padding_mask=padding_mask), padding_mask
