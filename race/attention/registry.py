"""Name -> attention class, and the one function that builds any of them."""

from __future__ import annotations

import inspect

from .angular import AngularAttention
from .base import Attention
from .linear import LinearAttention
from .linformer import LinformerAttention
from .performer import PerformerAttention
from .race import RaceAttention
from .sigmoid import SigmoidAttention
from .softmax import SoftmaxAttention

ATTENTION: dict[str, type[Attention]] = {
    "race": RaceAttention,
    "softmax": SoftmaxAttention,
    "linear": LinearAttention,
    "performer": PerformerAttention,
    "angular": AngularAttention,
    "linformer": LinformerAttention,
    "sigmoid": SigmoidAttention,
}


def available_attention() -> list[str]:
    return sorted(ATTENTION)


def attention_options(name: str) -> dict[str, object]:
    """The options a method takes and their defaults (head_dim and num_heads excluded)."""
    parameters = inspect.signature(_lookup(name).__init__).parameters
    return {
        key: p.default
        for key, p in parameters.items()
        if key not in ("self", "head_dim", "num_heads")
    }


def _lookup(name: str) -> type[Attention]:
    if name not in ATTENTION:
        raise ValueError(
            f"unknown attention {name!r}; available: {', '.join(available_attention())}"
        )
    return ATTENTION[name]


def build_attention(name: str, head_dim: int, num_heads: int, **options) -> Attention:
    """Build the attention `name` for heads of size head_dim; options are checked by name."""
    cls = _lookup(name)
    known = attention_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = ", ".join(known) if known else "no options"
        raise ValueError(f"attention {name!r} does not take option(s) {unknown}; it takes: {takes}")
    return cls(head_dim, num_heads, **options)
