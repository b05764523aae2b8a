"""Base LightningDataModule for token datasets of the data-module contract (docs/CONTRACTS.md).

Subclasses set ``num_classes``, ``vocab_size`` and ``seq_len`` in ``__init__`` and implement
``load_splits()`` -> {"train", "val", "test"} map-style datasets of ``(ids, label)`` samples
(or ``(ids_1, ids_2, label)`` with ``collate_class = RetrievalCollate``).
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .cache import default_data_dir
from .collate import ClassificationCollate
from .resumable import EpochSeededSampler, resume_position

SPLITS = ("train", "val", "test")


def hold_out(dataset: Dataset, size: int, seed: int) -> tuple[Dataset, Dataset]:
    """Split ``size`` random items (seeded) off ``dataset``: (rest, held-out)."""
    if not 0 < size < len(dataset):
        raise ValueError(f"val_size must be between 1 and {len(dataset) - 1}, got {size}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, order[size:]), Subset(dataset, order[:size])


def train_val_test(train: Dataset, test: Dataset, val_size: int, seed: int) -> dict[str, Dataset]:
    """Splits for datasets released as train/test only.

    val_size=0 follows LRA, which evaluates on the test split (val is the test set: say so when
    reporting); val_size>0 holds out that many training items (seeded) as the validation set.
    """
    if val_size == 0:
        return {"train": train, "val": test, "test": test}
    rest, val = hold_out(train, val_size, seed)
    return {"train": rest, "val": val, "test": test}


class TokenDataModule(L.LightningDataModule):
    collate_class = ClassificationCollate
    num_classes: int
    vocab_size: int
    seq_len: int
    pad_id: int = 0

    def __init__(
        self,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.splits: dict[str, Dataset] | None = None

    def load_splits(self) -> dict[str, Dataset]:
        raise NotImplementedError

    def prepare_data(self) -> None:
        """Runs on one process first: builds any cache, so the other ranks only read it."""
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = self.load_splits()

    def dataset(self, split: str) -> Dataset:
        if self.splits is None:
            self.setup()
        return self.splits[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(split)
        sampler = None
        if shuffle:
            # the order of epoch e is a function of (seed, e), and a run resumed from a
            # mid-epoch checkpoint starts at the batch it stopped at (race.data.resumable)
            epoch, batches_done = resume_position(getattr(self, "trainer", None))
            world_size = getattr(getattr(self, "trainer", None), "world_size", 1)
            start = batches_done * self.batch_size * world_size
            # a checkpoint from the end of an epoch: Lightning starts the next one afresh
            sampler = EpochSeededSampler(len(dataset), self.seed, epoch,
                                         start=start if start < len(dataset) else 0)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=self.collate_class(self.seq_len, self.pad_id),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
