"""Transformer building blocks (plain nn.Modules) around the attention registry.

    embeddings -> TransformerStack (pre-LN blocks, causal flag) -> pooling -> head

TransformerEncoder is the token encoder every LRA task uses; SequenceClassifier and
DualEncoderClassifier put the classification and retrieval heads on it.
"""

from .block import FeedForward, TransformerBlock, TransformerStack
from .classifier import SequenceClassifier
from .embeddings import POSITIONS, TokenEmbedding, sinusoidal_positions
from .encoder import TransformerEncoder
from .heads import ClassificationHead, RetrievalHead
from .pooling import POOLINGS, pool
from .retrieval import DualEncoderClassifier

__all__ = [
    "POOLINGS",
    "POSITIONS",
    "ClassificationHead",
    "DualEncoderClassifier",
    "FeedForward",
    "RetrievalHead",
    "SequenceClassifier",
    "TokenEmbedding",
    "TransformerBlock",
    "TransformerEncoder",
    "TransformerStack",
    "pool",
    "sinusoidal_positions",
]
