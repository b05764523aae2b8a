"""LRA Text: IMDB sentiment (2 classes) at byte level, truncated to seq_len bytes (LRA: 4000).

Reads the Hugging Face dataset ``stanfordnlp/imdb`` (columns text, label; splits train and test)
or a local copy in the same format (``data_path``, see race.data.text_sources). Ids are
byte + 1 (vocab 257, pad 0). As in LRA, validation is the test split unless ``val_size`` > 0
holds out that many training reviews.
"""

from __future__ import annotations

import logging
import os

from torch.utils.data import Dataset

from . import byte_tokenizer
from .datamodule import TokenDataModule, train_val_test
from .ragged import RaggedTokenDataset, pack_byte_strings
from .text_sources import load_hub_split, text_dataset_spec

log = logging.getLogger(__name__)


def byte_classification_dataset(split, seq_len: int, num_classes: int, where: str) -> Dataset:
    """A hub split with columns text, label -> RaggedTokenDataset of bytes (+1), truncated."""
    missing = {"text", "label"} - set(split.column_names)
    if missing:
        raise ValueError(
            f"{where} lacks column(s) {sorted(missing)}; found {split.column_names}. "
            "Expected the hub format: columns text (string) and label (int)."
        )
    labels = split["label"]
    bad = sorted({label for label in labels if not 0 <= label < num_classes})
    if bad:
        raise ValueError(f"{where} has labels {bad[:5]} outside 0..{num_classes - 1}")
    texts = [byte_tokenizer.text_to_bytes(text, seq_len) for text in split["text"]]
    return RaggedTokenDataset.from_packed(
        pack_byte_strings(texts, labels), id_offset=byte_tokenizer.BYTE_OFFSET
    )


class LRATextDataModule(TokenDataModule):
    """IMDB reviews as byte tokens. Batches: {"input_ids", "padding_mask", "labels"}."""

    num_classes = 2
    vocab_size = byte_tokenizer.VOCAB_SIZE
    pad_id = byte_tokenizer.PAD_ID

    def __init__(
        self,
        seq_len: int = 4000,
        data_path: str | os.PathLike | None = None,
        val_size: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | os.PathLike | None = None,
    ):
        super().__init__(batch_size, num_workers, seed, data_dir)
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.seq_len, self.data_path, self.val_size = seq_len, data_path, val_size

    def load_splits(self) -> dict[str, Dataset]:
        spec = text_dataset_spec("imdb")  # the same hub entry as the imdb task
        source = self.data_path or spec.hub_name
        train, test = (
            byte_classification_dataset(
                load_hub_split(spec, split, self.data_path, self.data_dir / "hf_datasets"),
                self.seq_len, self.num_classes, f"{source} [{split}]",
            )
            for split in ("train", "test")
        )
        if self.val_size == 0:
            log.info("LRA Text: validating on the test split, as LRA does (val_size=0)")
        return train_val_test(train, test, self.val_size, self.seed)
