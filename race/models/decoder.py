"""Causal decoder language model (GPT-2 layout) with token-by-token decoding.

    ids (B, N) -> token table + learned positions -> causal pre-LN blocks -> final LayerNorm
               -> LM head (tied to the token table, or its own matrix) -> logits (B, N, V)

decode_step feeds one token at a time through every block with a per-layer cache
(MultiHeadAttention.decode_step): the recurrent state of race / linear / performer (O(S D) per
token, nothing grows with the context) or the key/value cache of softmax. generate samples with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .block import TransformerStack
from .embeddings import TokenEmbedding


def init_gpt2(module: nn.Module) -> None:
    """GPT-2's initialisation, N(0, 0.02) for every matrix and table, zero biases: with a tied
    head, nn.Embedding's N(0, 1) would start the model far from uniform predictions."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Embedding)):
            nn.init.normal_(layer.weight, mean=0.0, std=0.02)
        if isinstance(layer, nn.Linear) and layer.bias is not None:
            nn.init.zeros_(layer.bias)


class LanguageModelHead(nn.Module):
    """(B, N, dim) -> (B, N, vocab_size) logits; tie=True shares the token table's weights."""

    def __init__(self, dim: int, vocab_size: int, tokens: nn.Embedding | None = None):
        super().__init__()
        self.decoder = nn.Linear(dim, vocab_size, bias=False)
        if tokens is not None:
            self.decoder.weight = tokens.weight  # tied (Press & Wolf 2017), as GPT-2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(x)


@dataclass
class DecodeState:
    """Where decoding stands: how many tokens were fed, and one attention cache per block."""

    position: int = 0
    layers: list | None = field(default=None)


class DecoderLM(nn.Module):
    """(B, N) token ids -> (B, N, vocab_size) next-token logits; every block is causal.

    Keyword arguments as TransformerEncoder (dim, depth, heads, mlp_dim, dropout, positions,
    attention, attention_options, checkpointing); tie_weights shares the token table and the
    LM head.
    """

    def __init__(self, vocab_size: int, max_seq_len: int, dim: int = 128, depth: int = 2,
                 heads: int = 4, mlp_dim: int = 256, dropout: float = 0.1,
                 positions: str = "learned", attention: str = "race",
                 attention_options: dict | None = None, tie_weights: bool = True,
                 checkpointing: bool = False):
        super().__init__()
        self.vocab_size, self.max_seq_len = vocab_size, max_seq_len
        self.embedding = TokenEmbedding(vocab_size, dim, max_seq_len, positions, dropout)
        # the causal stack ends with the final LayerNorm (GPT-2's ln_f)
        self.stack = TransformerStack(dim, depth, heads, mlp_dim, dropout, attention,
                                      attention_options, causal=True, checkpointing=checkpointing)
        self.head = LanguageModelHead(dim, vocab_size,
                                      self.embedding.tokens if tie_weights else None)
        init_gpt2(self)

    def forward(self, input_ids: torch.Tensor, padding_mask: torch.Tensor | None = None):
        # padding only ever trails real tokens, so causal attention already keeps it out of every
        # real position; the mask is passed on for the methods that use it anyway
        x = self.stack(self.embedding(input_ids), key_padding_mask=padding_mask)  # (B, N, C)
        return self.head(x)  # (B, N, V)

    # decoding

    def embed_at(self, input_ids: torch.Tensor, position: int) -> torch.Tensor:
        """(B, 1) ids of the token at `position` -> (B, 1, dim), as forward() embeds it there."""
        embedding = self.embedding
        if position >= self.max_seq_len:
            raise ValueError(f"position {position} is past the model's max_seq_len="
                             f"{self.max_seq_len}: shorten the prompt or max_new_tokens")
        x = embedding.tokens(input_ids)  # (B, 1, C)
        if embedding.positions != "none":
            x = x + embedding.position_table[position].to(x.dtype)
        return embedding.dropout(x)

    def decode_step(self, input_ids: torch.Tensor, state: DecodeState | None = None):
        """The next token of each sequence, (B, 1) ids -> (B, vocab_size) logits, new state.

        Start with state=None; the logits equal forward()'s at the same position.
        """
        state = state or DecodeState()
        x = self.embed_at(input_ids, state.position)
        x, layers = self.stack.decode_step(x, state.layers)
        return self.head(x)[:, -1], DecodeState(state.position + 1, layers)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 stop_id: int | None = None) -> torch.Tensor:
        """(B, T) prompt ids -> (B, T + new) ids, sampled one token at a time.

        temperature 0 is greedy decoding; top_k keeps the k most likely tokens; stop_id ends
        a single sequence (B = 1) early when sampled.
        """
        if prompt.dim() != 2 or prompt.shape[1] < 1:
            raise ValueError(f"prompt must be (B, T) ids with T >= 1, got {tuple(prompt.shape)}")
        if prompt.shape[1] + max_new_tokens > self.max_seq_len:
            raise ValueError(
                f"prompt ({prompt.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) exceeds "
                f"the model's context of {self.max_seq_len} learned positions: lower "
                "max_new_tokens or shorten the prompt")
        state, logits = None, None
        for t in range(prompt.shape[1]):  # the prompt builds the state token by token
            logits, state = self.decode_step(prompt[:, t:t + 1], state)
        tokens = [prompt]
        for _ in range(max_new_tokens):
            next_id = sample(logits, temperature, top_k, generator)  # (B, 1)
            tokens.append(next_id)
            if stop_id is not None and prompt.shape[0] == 1 and int(next_id) == stop_id:
                break
            logits, state = self.decode_step(next_id, state)
        return torch.cat(tokens, dim=1)


def sample(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, V) logits -> (B, 1) ids: greedy at temperature 0, else softmax(logits / T) over the
    top_k most likely tokens (all when top_k is None)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1 (or None for all tokens), got {top_k}")
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probabilities = torch.softmax(logits, dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator)
