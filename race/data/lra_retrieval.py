"""LRA Retrieval: do two ACL Anthology (AAN) papers cite each other? Byte level, dual encoder.

Data: the LRA release (https://storage.googleapis.com/long-range-arena/lra_release.gz), folder
``lra_release/tsv_data/``, files ``new_aan_pairs.{train,eval,test}.tsv``: tab-separated, no
header, columns label, id1, id2, text1, text2. Each document is truncated to seq_len bytes
(LRA: 4000) and encoded as byte + 1 (vocab 257, pad 0). The eval file is the validation split.
Batches: {"input_ids_1", "padding_mask_1", "input_ids_2", "padding_mask_2", "labels"}.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torch.utils.data import Dataset

from . import byte_tokenizer
from .collate import RetrievalCollate
from .datamodule import TokenDataModule
from .lra_release import LRA_RELEASE_URL, release_folder
from .ragged import RaggedPairDataset, pack_byte_strings

log = logging.getLogger(__name__)

SPLIT_FILES = {
    "train": "new_aan_pairs.train.tsv",
    "val": "new_aan_pairs.eval.tsv",
    "test": "new_aan_pairs.test.tsv",
}


def read_aan_pairs(path: Path, max_bytes: int) -> RaggedPairDataset:
    """One released TSV -> pairs of byte documents (truncated to max_bytes) and 0/1 labels."""
    first, second, labels = [], [], []
    # Binary read: the documents are raw text; splitting bytes avoids any decoding surprises.
    with open(path, "rb") as handle:
        for line_number, line in enumerate(handle, 1):
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            fields = line.split(b"\t", 4)  # text2 keeps any tab of its own
            try:
                label = int(float(fields[0]))
                if len(fields) != 5 or label not in (0, 1):
                    raise ValueError
            except ValueError:
                raise ValueError(
                    f"{path}:{line_number} is not an AAN pair row: expected 5 tab-separated "
                    f"fields (label 0/1, id1, id2, text1, text2), got {len(fields)} field(s) "
                    f"starting {line[:60]!r}"
                ) from None
            labels.append(label)
            first.append(fields[3][:max_bytes])
            second.append(fields[4][:max_bytes])
    return RaggedPairDataset(
        pack_byte_strings(first, labels),
        pack_byte_strings(second, labels),
        id_offset=byte_tokenizer.BYTE_OFFSET,
    )


class LRARetrievalDataModule(TokenDataModule):
    """AAN document pairs from the LRA release; seq_len is the length of each document."""

    collate_class = RetrievalCollate
    num_classes = 2
    vocab_size = byte_tokenizer.VOCAB_SIZE
    pad_id = byte_tokenizer.PAD_ID

    def __init__(
        self,
        seq_len: int = 4000,
        data_path: str | os.PathLike | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | os.PathLike | None = None,
    ):
        super().__init__(batch_size, num_workers, seed, data_dir)
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.seq_len = seq_len
        # Default: the release unpacked into data_dir.
        self.data_path = release_folder(data_path, self.data_dir, "tsv_data")

    def load_splits(self) -> dict[str, Dataset]:
        missing = [name for name in SPLIT_FILES.values() if not (self.data_path / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"LRA Retrieval needs the AAN pairs of the LRA release; {missing} not found in "
                f"{self.data_path}. Download {LRA_RELEASE_URL} (tar.gz), unpack it, and set "
                "data.data_path to its lra_release/tsv_data/ folder (or unpack it into "
                "data_dir so that data_dir/lra_release/tsv_data/ exists)."
            )
        splits = {}
        for split, name in SPLIT_FILES.items():
            splits[split] = read_aan_pairs(self.data_path / name, self.seq_len)
            log.info("LRA Retrieval %s: %d pairs from %s", split, len(splits[split]), name)
        return splits
