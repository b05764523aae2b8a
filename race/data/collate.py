"""Samples -> batch dicts of the data-module contract (docs/CONTRACTS.md).

A sample is ``(ids, label)`` (classification) or ``(ids_1, ids_2, label)`` (retrieval), ``ids``
a 1-D LongTensor no longer than ``seq_len``. Every batch is padded to the full ``seq_len`` so that
shapes never change between batches (Linformer's projection needs a fixed length).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_sequences(
    sequences: Sequence[torch.Tensor], seq_len: int, pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-D id tensors into (B, seq_len) ids and a (B, seq_len) mask, True on padding.

    The mask comes from the lengths, not from ``ids == pad_id``: pixel tokens use id 0 as a value.
    """
    ids = torch.full((len(sequences), seq_len), pad_id, dtype=torch.long)  # (B, N)
    padding_mask = torch.ones((len(sequences), seq_len), dtype=torch.bool)  # (B, N)
    for row, sequence in enumerate(sequences):
        n = sequence.numel()
        if n > seq_len:
            raise ValueError(
                f"a sequence of {n} tokens does not fit seq_len={seq_len}; raise seq_len "
                f"(data.seq_len) to at least {n}, or truncate/filter the data to {seq_len} tokens"
            )
        ids[row, :n] = sequence
        padding_mask[row, :n] = False
    return ids, padding_mask


class ClassificationCollate:
    """[(ids, label)] -> {"input_ids", "padding_mask", "labels"}. A class so it pickles."""

    def __init__(self, seq_len: int, pad_id: int = 0):
        self.seq_len, self.pad_id = seq_len, pad_id

    def __call__(self, samples):
        ids, padding_mask = pad_sequences([s[0] for s in samples], self.seq_len, self.pad_id)
        labels = torch.tensor([int(s[1]) for s in samples], dtype=torch.long)  # (B,)
        return {"input_ids": ids, "padding_mask": padding_mask, "labels": labels}


class RetrievalCollate:
    """[(ids_1, ids_2, label)] -> {"input_ids_1", "padding_mask_1", "input_ids_2", ...}."""

    def __init__(self, seq_len: int, pad_id: int = 0):
        self.seq_len, self.pad_id = seq_len, pad_id

    def __call__(self, samples):
        ids_1, mask_1 = pad_sequences([s[0] for s in samples], self.seq_len, self.pad_id)
        ids_2, mask_2 = pad_sequences([s[1] for s in samples], self.seq_len, self.pad_id)
        labels = torch.tensor([int(s[2]) for s in samples], dtype=torch.long)  # (B,)
        return {
            "input_ids_1": ids_1,
            "padding_mask_1": mask_1,
            "input_ids_2": ids_2,
            "padding_mask_2": mask_2,
            "labels": labels,
        }
