"""Transformer building blocks (plain nn.Modules) around the attention registry.

    embeddings -> TransformerStack (pre-LN blocks, causal flag) -> pooling -> head

TransformerEncoder is the token encoder every LRA task uses; SequenceClassifier and
DualEncoderClassifier put the classification and retrieval heads on it; DecoderLM (causal,
with token-by-token decoding) and MaskedLM are the language models; PixelClassifier reads real-
valued pixels or patches.
"""

from .block import FeedForward, TransformerBlock, TransformerStack
from .classifier import SequenceClassifier
from .decoder import DecoderLM, DecodeState, LanguageModelHead
from .embeddings import POSITIONS, TokenEmbedding, sinusoidal_positions
from .encoder import TransformerEncoder
from .heads import ClassificationHead, RetrievalHead
from .masked_lm import MaskedLM
from .pixels import PixelClassifier, PixelEmbedding
from .pooling import POOLINGS, pool
from .retrieval import DualEncoderClassifier

__all__ = [
    "POOLINGS",
    "POSITIONS",
    "ClassificationHead",
    "DecodeState",
    "DecoderLM",
    "DualEncoderClassifier",
    "FeedForward",
    "LanguageModelHead",
    "MaskedLM",
    "PixelClassifier",
    "PixelEmbedding",
    "RetrievalHead",
    "SequenceClassifier",
    "TokenEmbedding",
    "TransformerBlock",
    "TransformerEncoder",
    "TransformerStack",
    "pool",
    "sinusoidal_positions",
]
