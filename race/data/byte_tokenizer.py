"""Byte-level tokenizer of the LRA text tasks (Text = IMDB, Retrieval = AAN).

id = byte + 1, so id 0 stays the padding id and the vocabulary has 257 entries. Text is encoded
as UTF-8 and truncated to ``max_len`` bytes (a multi-byte character may be cut, as in LRA).
"""

from __future__ import annotations

import torch

PAD_ID = 0
BYTE_OFFSET = 1
VOCAB_SIZE = 256 + BYTE_OFFSET


def text_to_bytes(text: str | bytes, max_len: int | None = None) -> bytes:
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    return data if max_len is None else data[:max_len]


def encode(text: str | bytes, max_len: int | None = None) -> torch.Tensor:
    """-> LongTensor of ids (byte + 1), at most ``max_len`` long."""
    data = text_to_bytes(text, max_len)
    if not data:
        return torch.zeros(0, dtype=torch.long)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long() + BYTE_OFFSET


def decode(ids) -> str:
    """Ids -> text; padding dropped, invalid UTF-8 (e.g. a cut character) replaced."""
    data = bytes(int(i) - BYTE_OFFSET for i in ids if int(i) != PAD_ID)
    return data.decode("utf-8", errors="replace")
