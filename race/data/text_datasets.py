"""Sequence classification on the paper's text datasets: imdb, sst2, yahoo, qnli, arxiv.

Batches follow docs/CONTRACTS.md: {"input_ids" (B, N), "padding_mask" (B, N), "labels" (B,)},
padded to the full seq_len. A document longer than seq_len keeps its first seq_len tokens; a
sentence pair (qnli) is question + [SEP] + sentence, the longer part cut first. arxiv packs the
documents of each class into sequences of exactly seq_len tokens (documents of one class joined
by [SEP], cut every seq_len tokens, the last piece of a class padded), as the paper did.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from .datamodule import TokenDataModule
from .ragged import RaggedTokenDataset
from .text_sources import SPLITS, text_dataset_spec
from .text_tokenizers import choose_tokenizer
from .tokenized_splits import TextSource, build_tokenizer, cached_split, encode_texts, token_dtype

# dataset -> (seq_len, tokenizer kind) the paper used (PAPER_RESULTS.md); overridable
CLASSIFICATION_DEFAULTS = {
    "imdb": (512, "wordpiece"),
    "sst2": (1024, "wordpiece"),
    "yahoo": (256, "wordpiece"),
    "qnli": (2048, "wordpiece"),
    "arxiv": (16384, "word"),  # 32768 and 65536 in the paper's other columns
}


class TextClassificationDataModule(TokenDataModule):
    """imdb / sst2 / yahoo / qnli / arxiv, tokenised once and cached under data_dir.

    Args:
        dataset: one of CLASSIFICATION_DEFAULTS.
        seq_len, tokenizer: default per dataset (above); tokenizer is a kind of
            race.data.text_tokenizers (gpt2, bytes, wordpiece, word).
        tokenizer_path: local tokenizer files (tokenizer.json, vocab.txt, vocab.json+merges.txt).
        tokenizer_vocab_size: size of a tokenizer trained locally (wordpiece 30522, word 50000).
        tokenizer_fallback: when the files are missing: bytes | train | error (see
            choose_tokenizer).
        data_path: local copy of the dataset in the hub's format; None reads the hub.
        val_fraction: share of train held out as val where the hub has no validation split.
        pack_per_class: pack documents per class to seq_len (default: only for arxiv).
    """

    def __init__(
        self,
        dataset: str,
        seq_len: int | None = None,
        tokenizer: str | None = None,
        tokenizer_path: str | os.PathLike | None = None,
        tokenizer_vocab_size: int | None = None,
        tokenizer_fallback: str | None = None,
        data_path: str | os.PathLike | None = None,
        val_fraction: float = 0.05,
        pack_per_class: bool | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | os.PathLike | None = None,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed,
                         data_dir=data_dir)
        if dataset not in CLASSIFICATION_DEFAULTS:
            raise ValueError(f"unknown text classification dataset {dataset!r}; choose one of "
                             f"{', '.join(CLASSIFICATION_DEFAULTS)}")
        default_len, default_kind = CLASSIFICATION_DEFAULTS[dataset]
        self.spec = text_dataset_spec(dataset)
        self.seq_len = seq_len or default_len
        self.pack_per_class = dataset == "arxiv" if pack_per_class is None else pack_per_class
        self.num_classes = self.spec.num_classes
        self.recipe = choose_tokenizer(tokenizer or default_kind, path=tokenizer_path,
                                       vocab_size=tokenizer_vocab_size, fallback=tokenizer_fallback)
        self.vocab_size = self.recipe.vocab_size
        self.source = TextSource(self.spec, data_path=data_path, data_dir=self.data_dir,
                                 val_fraction=val_fraction, seed=seed)
        self.tokenizer = None

    def load_splits(self) -> dict[str, Dataset]:
        self.tokenizer = build_tokenizer(self.recipe, self.source)
        layout = {"seq_len": self.seq_len, "pack_per_class": self.pack_per_class}
        return {
            split: RaggedTokenDataset.from_packed(
                cached_split(self.source, split, self.tokenizer, layout,
                             lambda split=split: self._tokenize(split)))
            for split in SPLITS
        }

    def _tokenize(self, split: str) -> dict[str, torch.Tensor]:
        max_len = None if self.pack_per_class else self.seq_len
        documents = [ids for texts in self.source.texts(split)
                     for ids in encode_texts(self.tokenizer, texts, max_len)]
        labels = self.source.labels(split)
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{self.spec.describe()} split {split!r} has labels outside "
                f"0..{self.num_classes - 1} (hidden test labels are -1): use a labelled split")
        if self.pack_per_class:
            documents, labels = pack_per_class(documents, labels, self.seq_len,
                                               self.tokenizer.sep_id)
        return ragged_tensors(documents, labels, token_dtype(self.vocab_size))


def pack_per_class(documents: list[np.ndarray], labels: np.ndarray, seq_len: int,
                   separator: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Join the documents of each class (in order, separated by `separator`) and cut the
    stream every seq_len tokens; the last, shorter piece of a class is kept (and padded)."""
    sequences, sequence_labels = [], []
    for label in np.unique(labels):
        parts = []
        for index in np.flatnonzero(labels == label):
            if parts:
                parts.append(np.array([separator], dtype=np.int64))
            parts.append(documents[index])
        stream = np.concatenate(parts)
        for start in range(0, len(stream), seq_len):
            sequences.append(stream[start:start + seq_len])
            sequence_labels.append(label)
    return sequences, np.asarray(sequence_labels, dtype=np.int64)


def ragged_tensors(sequences: list[np.ndarray], labels: np.ndarray,
                   dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The race.data.ragged layout: {"tokens" flat, "offsets" (n + 1,), "labels" (n,)}."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(sequences) if sequences else np.zeros(0, dtype=np.int64)
    return {
        "tokens": torch.from_numpy(flat.astype(np.int32)).to(dtype),
        "offsets": torch.from_numpy(offsets),
        "labels": torch.from_numpy(np.asarray(labels, dtype=np.int64)),
    }
