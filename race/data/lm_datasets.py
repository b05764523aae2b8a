"""Language-model data: causal LM (wikitext103, ptb) and masked LM (tinystories).

Each split is tokenised once into one token stream (rows in order; ptb sentences and
TinyStories stories end with the eos token, wikitext rows are raw lines that keep their "\\n")
and cached under data_dir; the stream does not depend on seq_len, so every context length
shares it. Streams are cut into consecutive, non-overlapping blocks; the last, shorter block is
kept and padded.

Batches (B batch, N = seq_len):
    causal: {"input_ids" (B, N), "labels" (B, N): the next token of each position,
             "padding_mask" (B, N) True on padding}
    masked: {"input_ids" (B, N) corrupted by race.data.masking, "labels" (B, N): the original
             id on selected positions, "padding_mask" (B, N)}
labels are IGNORE_INDEX (-100) where no loss is taken (padding; unselected MLM positions).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from .datamodule import TokenDataModule
from .masking import IGNORE_INDEX, mask_tokens
from .text_sources import SPLITS, text_dataset_spec
from .text_tokenizers import choose_tokenizer
from .tokenized_splits import TextSource, build_tokenizer, cached_split, encode_texts, token_dtype

CAUSAL_DATASETS = ("wikitext103", "ptb")
MASKED_DATASETS = ("tinystories",)


class CausalBlocks(Dataset):
    """Block i -> (input_ids, labels): tokens[iN : iN + N] and the same shifted by one."""

    def __init__(self, tokens: torch.Tensor, seq_len: int):
        self.tokens, self.seq_len = tokens, seq_len

    def __len__(self) -> int:
        return -(-(len(self.tokens) - 1) // self.seq_len) if len(self.tokens) > 1 else 0

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = index * self.seq_len
        block = self.tokens[start:start + self.seq_len + 1].long()  # (<= N + 1,)
        return block[:-1], block[1:]


class MaskedBlocks(Dataset):
    """Block i -> (corrupted ids, labels) of tokens[iN : iN + N].

    Training draws new masks on every access from torch's global RNG (seeded by Lightning, per
    worker); evaluation masks are a function of (seed, i), so every evaluation scores the same
    positions.
    """

    def __init__(self, tokens: torch.Tensor, seq_len: int, *, mask_id: int, special_ids,
                 num_tokens: int, mask_prob: float, fixed_masks: bool, seed: int):
        self.tokens, self.seq_len = tokens, seq_len
        self.masking = dict(mask_id=mask_id, special_ids=special_ids, num_tokens=num_tokens,
                            mask_prob=mask_prob)
        self.fixed_masks, self.seed = fixed_masks, seed

    def __len__(self) -> int:
        return -(-len(self.tokens) // self.seq_len)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = index * self.seq_len
        block = self.tokens[start:start + self.seq_len].long()  # (<= N,)
        generator = None
        if self.fixed_masks:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return mask_tokens(block, generator=generator, **self.masking)


class LanguageModelCollate:
    """[(input_ids, labels)] -> {"input_ids", "labels", "padding_mask"} padded to seq_len."""

    def __init__(self, seq_len: int, pad_id: int = 0):
        self.seq_len, self.pad_id = seq_len, pad_id

    def __call__(self, samples):
        B, N = len(samples), self.seq_len
        input_ids = torch.full((B, N), self.pad_id, dtype=torch.long)  # (B, N)
        labels = torch.full((B, N), IGNORE_INDEX, dtype=torch.long)  # (B, N)
        padding_mask = torch.ones((B, N), dtype=torch.bool)  # (B, N)
        for row, (ids, targets) in enumerate(samples):
            n = len(ids)
            input_ids[row, :n], labels[row, :n], padding_mask[row, :n] = ids, targets, False
        return {"input_ids": input_ids, "labels": labels, "padding_mask": padding_mask}


class _TokenStreamDataModule(TokenDataModule):
    """Shared part: the dataset's splits as cached token streams."""

    collate_class = LanguageModelCollate

    def __init__(self, dataset, choices, seq_len, tokenizer, tokenizer_path, tokenizer_vocab_size,
                 tokenizer_fallback, data_path, val_fraction, batch_size, num_workers, seed,
                 data_dir):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed,
                         data_dir=data_dir)
        if dataset not in choices:
            raise ValueError(f"unknown dataset {dataset!r} for {type(self).__name__}; choose one "
                             f"of {', '.join(choices)}")
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.spec = text_dataset_spec(dataset)
        self.seq_len = seq_len
        self.recipe = choose_tokenizer(tokenizer, path=tokenizer_path,
                                       vocab_size=tokenizer_vocab_size, fallback=tokenizer_fallback)
        self.vocab_size = self.recipe.vocab_size
        self.source = TextSource(self.spec, data_path=data_path, data_dir=self.data_dir,
                                 val_fraction=val_fraction, seed=seed)
        self.tokenizer = None

    def token_streams(self) -> dict[str, torch.Tensor]:
        self.tokenizer = build_tokenizer(self.recipe, self.source)
        return {split: cached_split(self.source, split, self.tokenizer, {"layout": "stream"},
                                    lambda split=split: self._stream(split))["tokens"]
                for split in SPLITS}

    def _stream(self, split: str) -> dict[str, torch.Tensor]:
        eos = [np.array([self.tokenizer.eos_id], dtype=np.int64)] if self.spec.append_eos else []
        pieces = []
        for texts in self.source.texts(split):
            for ids in encode_texts(self.tokenizer, [t for t in texts if t]):
                pieces.extend([ids, *eos])
        stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
        return {"tokens": torch.from_numpy(stream.astype(np.int32)).to(
            token_dtype(self.vocab_size))}


class LanguageModelDataModule(_TokenStreamDataModule):
    """Causal LM on wikitext103 (Salesforce/wikitext, wikitext-103-raw-v1) or ptb
    (ptb_text_only); GPT-2 BPE by default, the byte-level tokenizer when its files are missing
    (tokenizer_fallback=bytes, with a warning; =error raises). Options as in
    TextClassificationDataModule; val_fraction is unused (both have validation splits)."""

    def __init__(
        self,
        dataset: str = "wikitext103",
        seq_len: int = 1024,
        tokenizer: str = "gpt2",
        tokenizer_path: str | os.PathLike | None = None,
        tokenizer_vocab_size: int | None = None,
        tokenizer_fallback: str | None = None,
        data_path: str | os.PathLike | None = None,
        val_fraction: float = 0.05,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | os.PathLike | None = None,
    ):
        super().__init__(dataset, CAUSAL_DATASETS, seq_len, tokenizer, tokenizer_path,
                         tokenizer_vocab_size, tokenizer_fallback, data_path, val_fraction,
                         batch_size, num_workers, seed, data_dir)

    def load_splits(self) -> dict[str, Dataset]:
        return {split: CausalBlocks(tokens, self.seq_len)
                for split, tokens in self.token_streams().items()}


class MaskedLMDataModule(_TokenStreamDataModule):
    """Masked LM on tinystories (roneneldan/TinyStories): stories joined by [SEP], cut into
    seq_len blocks, 15% of the non-special tokens selected (80/10/10, race.data.masking).
    WordPiece: BERT's vocab.txt from tokenizer_path (or the local HF cache), else a WordPiece
    trained locally on the training split (tokenizer_vocab_size, default 30522). The hub's
    validation split is test; val is carved from train (val_fraction, seeded)."""

    def __init__(
        self,
        dataset: str = "tinystories",
        seq_len: int = 1024,
        tokenizer: str = "wordpiece",
        tokenizer_path: str | os.PathLike | None = None,
        tokenizer_vocab_size: int | None = None,
        tokenizer_fallback: str | None = None,
        data_path: str | os.PathLike | None = None,
        val_fraction: float = 0.01,
        mask_prob: float = 0.15,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | os.PathLike | None = None,
    ):
        super().__init__(dataset, MASKED_DATASETS, seq_len, tokenizer, tokenizer_path,
                         tokenizer_vocab_size, tokenizer_fallback, data_path, val_fraction,
                         batch_size, num_workers, seed, data_dir)
        if tokenizer == "gpt2":
            raise ValueError("masked LM needs a [MASK] token: use tokenizer=wordpiece, word or "
                             "bytes (GPT-2's vocabulary has none)")
        self.mask_prob = mask_prob

    def load_splits(self) -> dict[str, Dataset]:
        streams = self.token_streams()
        tokenizer = self.tokenizer
        return {split: MaskedBlocks(tokens, self.seq_len, mask_id=tokenizer.mask_id,
                                    special_ids=tokenizer.special_ids,
                                    num_tokens=tokenizer.num_tokens, mask_prob=self.mask_prob,
                                    fixed_masks=split != "train", seed=self.seed)
                for split, tokens in streams.items()}
