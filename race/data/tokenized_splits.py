"""Text splits read, tokenised and cached once, shared by the text, LM and MLM data modules.

Cache layout (all under data_dir, default <repo>/data, through race.data.cache):
    tokenizers/<dataset>-<kind>-<vocab>-<hash>.pt       a tokenizer trained on a training split
    tokenized/<dataset>-<split>-<tokenizer fingerprint>-<hash>.pt   one tokenised split
The hash covers every setting that changes the content: dataset, split, data source (local
path or hub name), val_fraction and seed when val is carved from train, the tokenizer
fingerprint (a hash of its whole serialisation, so a changed tokenizer never reuses a stale
cache) and the layout settings of the caller (seq_len, packing).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from .cache import cache_path, cached_payload
from .text_sources import TextDatasetSpec, load_text_split, row_texts
from .text_tokenizers import TextTokenizer, TokenizerRecipe

ROWS_PER_BATCH = 1000


class TextSource:
    """One dataset's rows, from a local copy or the hub, with the options that select them."""

    def __init__(self, spec: TextDatasetSpec, *, data_path: str | os.PathLike | None,
                 data_dir: Path, val_fraction: float, seed: int):
        self.spec, self.data_dir = spec, data_dir
        self.data_path = None if data_path is None else str(Path(data_path).expanduser())
        self.val_fraction, self.seed = val_fraction, seed

    def settings(self, split: str) -> dict:
        """What identifies the rows of `split` (the cache key's share)."""
        carved = split == "val" or (split == "train" and self.spec.hub_splits["val"] is None)
        return {
            "dataset": self.spec.name,
            "split": split,
            "source": self.source_id(),
            "val_fraction": self.val_fraction if carved else None,
            "split_seed": self.seed if carved else None,
        }

    def source_id(self) -> str:
        """The hub name, or the local copy's path plus a digest of its files' names, sizes and
        modification times (so an edited local copy is tokenised anew)."""
        if self.data_path is None:
            return f"hub:{self.spec.hub_name}/{self.spec.hub_config}"
        root = Path(self.data_path)
        listing = sorted((str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns)
                         for f in root.rglob("*") if f.is_file() and ".cache" not in f.parts)
        digest = hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:12]
        return f"{self.data_path}@{digest}"

    def rows(self, split: str):
        return load_text_split(self.spec, split, data_path=self.data_path,
                               cache_dir=self.data_dir / "hf_datasets",
                               val_fraction=self.val_fraction, seed=self.seed)

    def texts(self, split: str) -> Iterator[list]:
        """Batches of texts (strings, or (a, b) pairs for sentence-pair datasets)."""
        rows = self.rows(split)
        for start in range(0, len(rows), ROWS_PER_BATCH):
            yield row_texts(self.spec, rows[start:start + ROWS_PER_BATCH])

    def labels(self, split: str) -> np.ndarray:
        return np.asarray(self.rows(split)[self.spec.label_field], dtype=np.int64)


def build_tokenizer(recipe: TokenizerRecipe, source: TextSource) -> TextTokenizer:
    """The recipe's tokenizer; a trained kind is trained once on the training split and cached."""
    if not recipe.needs_training:
        return recipe.build()
    settings = {**source.settings("train"), "kind": recipe.kind, "vocab_size": recipe.vocab_size}
    path = cache_path(source.data_dir / "tokenizers",
                      f"{source.spec.name}-{recipe.kind}-{recipe.vocab_size}", settings)

    def train() -> dict:
        def flat_texts():
            for batch in source.texts("train"):
                for text in batch:
                    yield from (text if isinstance(text, tuple) else (text,))

        tokenizer = recipe.build(train_texts=flat_texts)
        serialised = torch.frombuffer(bytearray(tokenizer.backend.to_str().encode()),
                                      dtype=torch.uint8)
        return {"tokenizer": {"json": serialised}}

    payload = cached_payload(path, settings, train)
    return recipe.from_json(bytes(payload["tokenizer"]["json"].numpy()).decode())


def token_dtype(vocab_size: int) -> torch.dtype:
    return torch.uint16 if vocab_size <= 2**16 else torch.int32


def cached_split(source: TextSource, split: str, tokenizer: TextTokenizer, layout: dict,
                 build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """`build()`'s tensors for one split, cached under a key of source, tokenizer and layout."""
    settings = {**source.settings(split), "tokenizer": tokenizer.fingerprint, **layout}
    path = cache_path(source.data_dir / "tokenized",
                      f"{source.spec.name}-{split}-{tokenizer.fingerprint}", settings)
    return cached_payload(path, settings, lambda: {split: build()})[split]


def encode_texts(tokenizer: TextTokenizer, texts: list,
                 max_len: int | None = None) -> list[np.ndarray]:
    """Ids of each text, at most `max_len` of them; a pair (a, b) becomes a + [SEP] + b, the
    longer of the two cut first when the pair does not fit."""
    if not texts or not isinstance(texts[0], tuple):
        encoded = tokenizer.encode_batch(texts)
        return encoded if max_len is None else [ids[:max_len] for ids in encoded]
    firsts = tokenizer.encode_batch([a for a, _ in texts])
    seconds = tokenizer.encode_batch([b for _, b in texts])
    sep = np.array([tokenizer.sep_id], dtype=np.int64)
    pairs = []
    for a, b in zip(firsts, seconds):
        if max_len is not None and len(a) + len(b) + 1 > max_len:
            budget = max_len - 1
            short = min(len(a), len(b), budget // 2)
            keep_a, keep_b = (budget - short, short) if len(a) >= len(b) else (short,
                                                                               budget - short)
            a, b = a[:keep_a], b[:keep_b]
        pairs.append(np.concatenate([a, sep, b]))
    return pairs
