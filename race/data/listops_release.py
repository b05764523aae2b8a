"""LRA ListOps from the released TSV files, for comparison with the generated splits.

The LRA release (lra_release.gz) holds ``lra_release/listops-1000/basic_{train,val,test}.tsv``:
tab-separated with a header ``Source  Target``; Source is the tree text with LRA's extra
parentheses ("( ( [MAX 2 9 ) ] )"), which carry no information and are dropped, Target the
label. Tokens and vocabulary are those of race.data.listops (the generated data), so a model
trained on one reads the other.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from torch.utils.data import Dataset

from . import listops
from .datamodule import SPLITS, TokenDataModule
from .lra_release import LRA_RELEASE_URL, release_folder
from .ragged import RaggedTokenDataset, pack_sequences

SPLIT_FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}


def read_listops_tsv(path: Path) -> RaggedTokenDataset:
    sequences, labels = [], []
    with open(path, newline="") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:2]] != ["Source", "Target"]:
            raise ValueError(
                f"{path} should start with the header 'Source<TAB>Target'; got {header}"
            )
        for line_number, row in enumerate(rows, 2):
            if len(row) != 2 or not row[1].strip().isdigit():
                raise ValueError(
                    f"{path}:{line_number}: expected 'tree<TAB>label', got {row!r:.80}"
                )
            sequences.append(listops.encode(row[0]))
            labels.append(int(row[1]))
    return RaggedTokenDataset.from_packed(pack_sequences(sequences, labels))


class ListOpsReleasedDataModule(TokenDataModule):
    """The released LRA ListOps splits. Batches: {"input_ids", "padding_mask", "labels"}."""

    num_classes = listops.NUM_CLASSES
    vocab_size = listops.VOCAB_SIZE
    pad_id = listops.PAD_ID

    def __init__(
        self,
        seq_len: int = 2000,
        data_path: str | os.PathLike | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | os.PathLike | None = None,
    ):
        super().__init__(batch_size, num_workers, seed, data_dir)
        self.seq_len = seq_len
        self.data_path = release_folder(data_path, self.data_dir, "listops-1000")

    def load_splits(self) -> dict[str, Dataset]:
        missing = [n for n in SPLIT_FILES.values() if not (self.data_path / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"released ListOps files {missing} not found in {self.data_path}. Download "
                f"{LRA_RELEASE_URL} (tar.gz), unpack it, and set data.data_path to its "
                "lra_release/listops-1000/ folder; or use race.data.listops.ListOpsDataModule, "
                "which generates ListOps offline."
            )
        splits = {s: read_listops_tsv(self.data_path / SPLIT_FILES[s]) for s in SPLITS}
        longest = max(int(d.lengths().max()) for d in splits.values() if len(d))
        if longest > self.seq_len:
            raise ValueError(
                f"the released trees reach {longest} tokens; set seq_len >= {longest} "
                f"(got {self.seq_len})"
            )
        return splits
