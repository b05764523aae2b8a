"""Token datasets stored compactly: variable-length sequences flat (one tensor plus offsets),
pairs of them (retrieval), and fixed-length rows (images).

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


def pack_byte_strings(strings: Sequence[bytes], labels: Sequence[int]) -> dict[str, torch.Tensor]:
    """Byte strings + labels -> {"tokens" (uint8 bytes), "offsets", "labels"}; fast for text."""
    lengths = torch.tensor([len(s) for s in strings], dtype=torch.long)
    offsets = torch.zeros(len(strings) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(lengths, 0)
    flat = b"".join(strings)
    tokens = (
        torch.frombuffer(bytearray(flat), dtype=torch.uint8)
        if flat
        else torch.zeros(0, dtype=torch.uint8)
    )
    labels = torch.tensor(list(labels), dtype=torch.long)
    return {"tokens": tokens, "offsets": offsets, "labels": labels}


def _slice(tokens: torch.Tensor, offsets: torch.Tensor, index: int) -> torch.Tensor:
    return tokens[int(offsets[index]) : int(offsets[index + 1])]


class RaggedTokenDataset(Dataset):
    """Item i -> (LongTensor ids of sequence i, int label); ids = stored tokens + id_offset.

    id_offset lets raw bytes be stored as uint8 and served as byte + 1 (pad id 0 kept free).
    """

    def __init__(
        self,
        tokens: torch.Tensor,
        offsets: torch.Tensor,
        labels: torch.Tensor,
        id_offset: int = 0,
    ):
        if offsets.numel() != labels.numel() + 1:
            raise ValueError("offsets must have one more entry than labels")
        self.tokens, self.offsets, self.labels = tokens, offsets, labels
        self.id_offset = id_offset

    @classmethod
    def from_packed(cls, packed: dict[str, torch.Tensor], id_offset: int = 0):
        return cls(packed["tokens"], packed["offsets"], packed["labels"], id_offset)

    def __len__(self) -> int:
        return self.labels.numel()

    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        ids = _slice(self.tokens, self.offsets, index).long() + self.id_offset
        return ids, int(self.labels[index])


class RaggedPairDataset(Dataset):
    """Item i -> (ids of document 1, ids of document 2, int label), for dual-encoder retrieval."""

    def __init__(
        self, first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], id_offset: int = 0
    ):
        if not torch.equal(first["labels"], second["labels"]):
            raise ValueError("the two documents of a pair must share one label tensor")
        self.first, self.second, self.id_offset = first, second, id_offset
        self.labels = first["labels"]

    def __len__(self) -> int:
        return self.labels.numel()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        ids_1 = _slice(self.first["tokens"], self.first["offsets"], index).long()
        ids_2 = _slice(self.second["tokens"], self.second["offsets"], index).long()
        return ids_1 + self.id_offset, ids_2 + self.id_offset, int(self.labels[index])


class FixedLengthTokenDataset(Dataset):
    """Item i -> (tokens[i] as LongTensor, int label); for images flattened to pixel tokens."""

    def __init__(self, tokens: torch.Tensor, labels: torch.Tensor):
        if tokens.shape[0] != labels.shape[0]:
            raise ValueError("tokens and labels must have the same number of rows")
        self.tokens, self.labels = tokens, labels  # (N, L), (N,)

    def __len__(self) -> int:
        return self.labels.numel()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.tokens[index].long(), int(self.labels[index])
