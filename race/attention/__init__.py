"""Attention methods behind one registry: build_attention(name, head_dim, num_heads, **options)."""

from .base import Attention
from .multihead import MultiHeadAttention
from .race import RaceAttention, race_attention, soft_hash
from .registry import ATTENTION, attention_options, available_attention, build_attention

__all__ = [
    "ATTENTION",
    "Attention",
    "MultiHeadAttention",
    "RaceAttention",
    "attention_options",
    "available_attention",
    "build_attention",
    "race_attention",
    "soft_hash",
]
