"""Training order that a run killed mid-epoch can resume exactly.

torch's RandomSampler draws each epoch's order from one generator that advances with every
epoch, so a resumed run (a fresh generator) would see another order, and Lightning restarts an
interrupted epoch from its first batch. EpochSeededSampler makes the order of epoch e a function
of (seed, e) alone and can start an epoch part-way; resume_position reads where a fit restored
from a checkpoint stands, so the data module can build its train loader from that point.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochSeededSampler(Sampler[int]):
    """A random permutation of range(size) per epoch, seeded by (seed, epoch).

    start: items of the first epoch iterated to skip (the batches a resumed run already trained);
    later epochs start at 0. Lightning calls set_epoch at the start of every epoch.
    """

    def __init__(self, size: int, seed: int, epoch: int = 0, start: int = 0):
        self.size, self.seed, self.epoch, self.start = size, seed, epoch, start

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.start = epoch, 0

    def order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self):
        # a generator function: the order is drawn on the first next(), after set_epoch
        start, self.start = self.start, 0
        yield from self.order(self.epoch)[start:]

    def __len__(self) -> int:
        # the full epoch: Lightning counts the batches it restored as already fetched
        return self.size


def resume_position(trainer) -> tuple[int, int]:
    """(epoch, batches of it already trained) where a fit restored from a checkpoint resumes.

    (0, 0) without a trainer or at the start of a fresh fit. Read while Lightning builds the
    train loader, after it restored the loop counters of the checkpoint.
    """
    if trainer is None:
        return 0, 0
    fit_loop = getattr(trainer, "fit_loop", None)
    if fit_loop is None or not fit_loop.restarting:
        return 0, 0
    return trainer.current_epoch, fit_loop.epoch_loop.batch_progress.current.completed
