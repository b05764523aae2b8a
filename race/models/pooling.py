"""Sequence -> one vector: the CLS state or the mean over real (non-padding) positions."""

from __future__ import annotations

import torch

POOLINGS = ("cls", "mean")


def pool(x: torch.Tensor, padding_mask: torch.Tensor | None, mode: str) -> torch.Tensor:
    """(B, N, C) states, (B, N) True-on-padding mask -> (B, C)."""
    if mode == "cls":
        return x[:, 0]
    if mode == "mean":
        if padding_mask is None:
            return x.mean(dim=1)
        keep = (~padding_mask).unsqueeze(-1).to(x.dtype)  # (B, N, 1)
        return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {mode!r}")
