"""Image classification on pixel or patch tokens: cifar10, fashion_mnist, food101.

Read with torchvision (download=False unless data.download=true) from data_path, default
data_dir; the folders torchvision expects there:
    cifar10         cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta)
    fashion_mnist   FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
    food101         food-101/images/<class>/<id>.jpg, food-101/meta/{train,test}.json, classes.txt

Batches (extension of docs/CONTRACTS.md for real-valued inputs):
    {"pixels": FloatTensor (B, N, pixel_dim), "padding_mask": BoolTensor (B, N) all False,
     "labels": LongTensor (B,)}
with N = (image_size / patch_size)^2 and pixel_dim = channels * patch_size^2 (race.data.
image_patches layout). cifar10: 1024 RGB pixels (N 1024, pixel_dim 3); fashion_mnist: 784 grey
pixels (784, 1); food101: the first 50 classes at 512 x 512 in 4 x 4 patches (16384, 48), with
RandomResizedCrop + horizontal flip for training. Values are normalised per channel (the
dataset's mean/std; ImageNet's for food101). val is carved from train (val_fraction, seeded)
and shown without augmentation; test is the official test split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .datamodule import TokenDataModule
from .image_patches import patchify
from .text_sources import DatasetUnavailableError, carve_indices


@dataclass(frozen=True)
class ImageDatasetSpec:
    torchvision_class: str
    num_classes: int  # in the dataset
    image_size: int  # native side, or the paper's size
    patch_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    folder: str  # what torchvision looks for under root
    classes_kept: int | None = None  # the paper's subset: the first K classes
    augment: bool = False  # paper's training augmentation (RandomResizedCrop + flip)


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_DATASETS = {
    "cifar10": ImageDatasetSpec("CIFAR10", 10, 32, 1, 3, (0.4914, 0.4822, 0.4465),
                                (0.2470, 0.2435, 0.2616), "cifar-10-batches-py"),
    "fashion_mnist": ImageDatasetSpec("FashionMNIST", 10, 28, 1, 1, (0.2860,), (0.3530,),
                                      "FashionMNIST/raw"),
    "food101": ImageDatasetSpec("Food101", 101, 512, 4, 3, IMAGENET_MEAN, IMAGENET_STD,
                                "food-101", classes_kept=50, augment=True),
}


def load_torchvision(name: str, root: Path, train: bool, download: bool):
    """The torchvision dataset (PIL images, int labels), or an error saying where to put it."""
    import torchvision

    spec = IMAGE_DATASETS[name]
    cls = getattr(torchvision.datasets, spec.torchvision_class)
    try:
        if name == "food101":
            return cls(str(root), split="train" if train else "test", download=download)
        return cls(str(root), train=train, download=download)
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted..."
        raise DatasetUnavailableError(
            f"{name} (torchvision.datasets.{spec.torchvision_class}) not found under {root}: "
            f"expected {root / spec.folder}. Set data.data_path=/path/containing/{spec.folder} "
            f"to a local copy in torchvision's layout, or data.download=true on a machine with "
            f"network access. ({error})") from error


def dataset_labels(dataset) -> np.ndarray:
    """Labels of a torchvision classification dataset without decoding any image."""
    for attribute in ("targets", "_labels"):  # CIFAR/MNIST; Food101 keeps them private
        if hasattr(dataset, attribute):
            return np.asarray(getattr(dataset, attribute), dtype=np.int64)
    raise TypeError(f"cannot read the labels of {type(dataset).__name__}")


class PatchTokens(Dataset):
    """Item i -> (pixels (N, pixel_dim) float, label) of base[indices[i]] after `transform`."""

    def __init__(self, base, indices: np.ndarray, transform, patch_size: int):
        self.base, self.indices = base, indices
        self.transform, self.patch_size = transform, patch_size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.base[int(self.indices[index])]
        return patchify(self.transform(image), self.patch_size), int(label)  # (N, pixel_dim)


class PixelCollate:
    """[(pixels, label)] -> {"pixels" (B, N, D), "padding_mask" (B, N), "labels" (B,)}."""

    def __init__(self, seq_len: int, pad_id: int = 0):
        self.seq_len = seq_len

    def __call__(self, samples):
        pixels = torch.stack([s[0] for s in samples])  # (B, N, D)
        if pixels.shape[1] != self.seq_len:
            raise ValueError(f"images give {pixels.shape[1]} tokens, seq_len is {self.seq_len}")
        return {
            "pixels": pixels,
            "padding_mask": torch.zeros(pixels.shape[:2], dtype=torch.bool),  # (B, N)
            "labels": torch.tensor([s[1] for s in samples], dtype=torch.long),  # (B,)
        }


class ImageClassificationDataModule(TokenDataModule):
    """cifar10 / fashion_mnist / food101 as sequences of pixel or patch vectors.

    Args:
        dataset: one of IMAGE_DATASETS.
        image_size, patch_size: default per dataset (32/1, 28/1, 512/4); images are resized
            (shorter side) and centre-cropped to image_size unless augmented.
        classes_kept: keep the first K classes (food101: 50, as the paper); None: the default.
        augment: RandomResizedCrop(image_size) + horizontal flip on train (default: food101).
        data_path: the torchvision root holding the dataset's folder (default data_dir).
        download: let torchvision download (needs network; never in tests).
        val_fraction: share of train held out (seeded) as val.
    Attributes: num_classes, seq_len, pixel_dim (= channels * patch_size^2), vocab_size None.
    """

    collate_class = PixelCollate
    vocab_size = None  # no token table: models embed `pixels` with a linear layer

    def __init__(
        self,
        dataset: str,
        image_size: int | None = None,
        patch_size: int | None = None,
        classes_kept: int | None = None,
        augment: bool | None = None,
        data_path: str | os.PathLike | None = None,
        download: bool = False,
        val_fraction: float = 0.05,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | os.PathLike | None = None,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed,
                         data_dir=data_dir)
        if dataset not in IMAGE_DATASETS:
            raise ValueError(f"unknown image dataset {dataset!r}; choose one of "
                             f"{', '.join(IMAGE_DATASETS)}")
        self.name, self.spec = dataset, IMAGE_DATASETS[dataset]
        self.image_size = image_size or self.spec.image_size
        self.patch_size = patch_size or self.spec.patch_size
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size "
                             f"{self.patch_size}")
        kept = classes_kept or self.spec.classes_kept or self.spec.num_classes
        if not 1 < kept <= self.spec.num_classes:
            raise ValueError(f"classes_kept must be in 2..{self.spec.num_classes}, got {kept}")
        self.num_classes = kept
        self.augment = self.spec.augment if augment is None else augment
        self.seq_len = (self.image_size // self.patch_size) ** 2
        self.pixel_dim = self.spec.channels * self.patch_size ** 2
        self.root = Path(data_path).expanduser() if data_path is not None else self.data_dir
        self.download, self.val_fraction = download, val_fraction

    def transform(self, train: bool):
        from torchvision import transforms as T

        size = self.image_size
        if train and self.augment:
            steps = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
        elif size != self.spec.image_size or self.name == "food101":  # food101 sizes vary
            steps = [T.Resize(size), T.CenterCrop(size)]
        else:
            steps = []
        return T.Compose(steps + [T.ToTensor(), T.Normalize(self.spec.mean, self.spec.std)])

    def load_splits(self) -> dict[str, Dataset]:
        splits = {}
        for train in (True, False):
            base = load_torchvision(self.name, self.root, train, self.download)
            rows = np.flatnonzero(dataset_labels(base) < self.num_classes)
            if train:
                train_rows, val_rows = carve_indices(len(rows), self.val_fraction, self.seed)
                splits["train"] = PatchTokens(base, rows[train_rows], self.transform(True),
                                              self.patch_size)
                splits["val"] = PatchTokens(base, rows[val_rows], self.transform(False),
                                            self.patch_size)
            else:
                splits["test"] = PatchTokens(base, rows, self.transform(False), self.patch_size)
        return splits
