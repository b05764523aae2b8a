"""A dataset of variable-length token sequences stored flat: one tensor plus offsets.

This is the on-disk and in-memory layout of generated splits: ``tokens`` (all sequences
concatenated, a small integer dtype), ``offsets`` (int64, len = n + 1) and ``labels`` (int64, n).
It is compact (ListOps at LRA settings is ~100 MB as uint8 instead of ~1.5 GB padded int64) and
loads with one ``torch.load``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset


def pack_sequences(
    sequences: Sequence[Sequence[int]], labels: Sequence[int], dtype=torch.uint8
) -> dict[str, torch.Tensor]:
    """Lists of token ids + labels -> {"tokens", "offsets", "labels"} tensors."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    offsets = torch.zeros(len(sequences) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(lengths, 0)
    flat = [token for sequence in sequences for token in sequence]
    return {
        "tokens": torch.tensor(flat, dtype=dtype),
        "offsets": offsets,
        "labels": torch.tensor(list(labels), dtype=torch.long),
    }


class RaggedTokenDataset(Dataset):
    """Item i -> (LongTensor ids of sequence i, int label)."""

    def __init__(self, tokens: torch.Tensor, offsets: torch.Tensor, labels: torch.Tensor):
        if offsets.numel() != labels.numel() + 1:
            raise ValueError("offsets must have one more entry than labels")
        self.tokens, self.offsets, self.labels = tokens, offsets, labels

    @classmethod
    def from_packed(cls, packed: dict[str, torch.Tensor]) -> RaggedTokenDataset:
        return cls(packed["tokens"], packed["offsets"], packed["labels"])

    def __len__(self) -> int:
        return self.labels.numel()

    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.tokens[start:end].long(), int(self.labels[index])
