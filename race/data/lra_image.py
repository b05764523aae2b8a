"""LRA Image: CIFAR-10 as 1024 grey-pixel tokens (vocab 256, no padding), 10 classes.

Read with torchvision.datasets.CIFAR10(root, download=False) from ``data_path`` (default data_dir),
i.e. ``<data_path>/cifar-10-batches-py/``. Grey = ITU-R BT.601 luma, round(0.299 R + 0.587 G +
0.114 B), the conversion of PIL's ``convert("L")`` and of tf.image.rgb_to_grayscale (LRA).
As in LRA, validation is the test split unless ``val_size`` > 0 holds out training images.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .datamodule import TokenDataModule, train_val_test
from .ragged import FixedLengthTokenDataset

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
PIXELS = 32 * 32


def rgb_to_grey_tokens(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, H * W) uint8 grey levels, row-major (the LRA pixel order)."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float32)
    grey = (images.float() * weights).sum(-1).round().clamp(0, 255)  # (N, H, W)
    return grey.to(torch.uint8).flatten(1)  # (N, H * W)


def load_cifar10_grey(root: Path, train: bool) -> FixedLengthTokenDataset:
    import torchvision  # heavy: imported only when the data is actually read

    try:
        cifar = torchvision.datasets.CIFAR10(root=str(root), train=train, download=False)
    except RuntimeError as error:
        folder = root / "cifar-10-batches-py"
        problem = "is missing"
        if folder.exists():
            from torchvision.datasets.utils import check_integrity

            files = torchvision.datasets.CIFAR10.train_list + torchvision.datasets.CIFAR10.test_list
            bad = [name for name, md5 in files if not check_integrity(str(folder / name), md5)]
            problem = (f"has missing or damaged files {bad} (expected the release's pickled "
                       "batches with their md5 sums)")
        raise FileNotFoundError(
            f"CIFAR-10 {folder} {problem}. Get it on a machine with network access with "
            f"torchvision.datasets.CIFAR10(root={str(root)!r}, download=True) (or download and "
            f"unpack {CIFAR10_URL} there), or set data.data_path to a folder that holds "
            f"cifar-10-batches-py/. ({error})"
        ) from error
    images = torch.from_numpy(cifar.data)  # (N, 32, 32, 3) uint8
    labels = torch.tensor(cifar.targets, dtype=torch.long)
    return FixedLengthTokenDataset(rgb_to_grey_tokens(images), labels)


class LRAImageDataModule(TokenDataModule):
    """Grey CIFAR-10, one token per pixel. Batches: {"input_ids", "padding_mask", "labels"}."""

    num_classes = 10
    vocab_size = 256
    pad_id = 0  # unused: every image fills seq_len, padding_mask is all False

    def __init__(
        self,
        seq_len: int = PIXELS,
        data_path: str | os.PathLike | None = None,
        val_size: int = 0,
        batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | os.PathLike | None = None,
    ):
        super().__init__(batch_size, num_workers, seed, data_dir)
        if seq_len != PIXELS:
            raise ValueError(
                f"CIFAR-10 grey images are 32 x 32 = {PIXELS} tokens; set seq_len "
                f"to {PIXELS} (got {seq_len})"
            )
        self.seq_len = seq_len
        self.data_path = Path(data_path).expanduser() if data_path is not None else self.data_dir
        self.val_size = val_size

    def load_splits(self) -> dict[str, Dataset]:
        train = load_cifar10_grey(self.data_path, train=True)
        test = load_cifar10_grey(self.data_path, train=False)
        if self.val_size == 0:
            log.info("LRA Image: validating on the test split, as LRA does (val_size=0)")
        return train_val_test(train, test, self.val_size, self.seed)
