"""LRA Pathfinder from the released images (lra_release.gz, pathfinder32/curv_baseline etc.).

Layout of one difficulty folder (``data_path``), as released:
    metadata/<k>.npy     despite the suffix, text files: one image per line, space-separated
                         fields [subdir, file name, ..., label at index 3] (real .npy string
                         arrays with that row layout are read too)
    imgs/<k>/sample_<i>.png   grey 32 x 32 PNGs; the image of a row is root/<subdir>/<file name>
The release has no split, so the images are split 80 / 10 / 10 by a seeded permutation (the
convention of the S4 code base). Decoded images are cached under data_dir (a .pt keyed by the
folder, its metadata files and the split), so the PNGs are decoded once.
Pixels are the tokens (vocab 256), row-major; padding_mask is all False.
For an offline stand-in without the release see race.data.pathfinder_generator (NOT these images).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import cache_path, cached_payload
from .datamodule import SPLITS, TokenDataModule
from .lra_release import LRA_RELEASE_URL, release_folder
from .ragged import FixedLengthTokenDataset

log = logging.getLogger(__name__)

NUMPY_MAGIC = b"\x93NUMPY"


def read_metadata_rows(path: Path) -> list[list[str]]:
    """Rows of one metadata file: text lines split on whitespace, or a numpy string array."""
    data = path.read_bytes()
    if data.startswith(NUMPY_MAGIC):
        array = np.load(path, allow_pickle=False)
        return [[str(field) for field in row] for row in np.atleast_2d(array)]
    return [line.split() for line in data.decode("utf-8").splitlines() if line.strip()]


def read_released_pathfinder(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """All images listed in root/metadata/* -> (N, H * W) uint8 tokens, (N,) labels."""
    from PIL import Image  # a torchvision dependency; imported only when reading images

    metadata_files = sorted((root / "metadata").glob("*.npy"), key=_natural_key)
    images, labels = [], []
    for metadata in metadata_files:
        for row_number, row in enumerate(read_metadata_rows(metadata), 1):
            if len(row) < 4:
                raise ValueError(
                    f"{metadata} row {row_number}: expected [subdir, file name, ..., label at "
                    f"index 3], got {row}"
                )
            image_path = root / row[0] / row[1]
            if not image_path.is_file():
                raise FileNotFoundError(
                    f"{image_path} is listed in {metadata} (row {row_number}) but missing; the "
                    "release is incomplete: unpack lra_release.gz again"
                )
            with Image.open(image_path) as image:
                images.append(np.asarray(image.convert("L"), dtype=np.uint8))
            labels.append(int(float(row[3])))
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise ValueError(f"images under {root} have different sizes {sorted(shapes)}")
    if set(labels) - {0, 1}:
        raise ValueError(f"labels under {root} must be 0/1, found {sorted(set(labels))}")
    tokens = torch.from_numpy(np.stack(images).reshape(len(images), -1))  # (N, H * W)
    return tokens, torch.tensor(labels, dtype=torch.long)


def _natural_key(path: Path):
    """metadata/2.npy before metadata/10.npy."""
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.stem)


class PathfinderDataModule(TokenDataModule):
    """Released LRA Pathfinder images. Batches: {"input_ids", "padding_mask", "labels"}."""

    num_classes = 2
    vocab_size = 256
    pad_id = 0  # unused: images fill seq_len

    def __init__(
        self,
        seq_len: int = 1024,
        data_path: str | os.PathLike | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        batch_size: int = 512,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | os.PathLike | None = None,
    ):
        super().__init__(batch_size, num_workers, seed, data_dir)
        self.seq_len = seq_len
        self.data_path = release_folder(data_path, self.data_dir, "pathfinder32", "curv_baseline")
        if not (0 < val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
            raise ValueError(
                f"need val_fraction > 0, test_fraction > 0 and their sum < 1; got "
                f"{val_fraction} and {test_fraction}"
            )
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    def _check_release(self) -> list[Path]:
        metadata_files = sorted((self.data_path / "metadata").glob("*.npy"))
        if not metadata_files:
            raise FileNotFoundError(
                f"no Pathfinder release at {self.data_path} (expected metadata/*.npy and imgs/). "
                f"Download {LRA_RELEASE_URL} (tar.gz), unpack it, and set data.data_path to "
                "lra_release/pathfinder32/<difficulty> (curv_baseline, curv_contour_length_9 or "
                "curv_contour_length_14), or unpack it into data_dir. Without the release, the "
                "generated stand-in race.data.pathfinder_generator.PathfinderLikeDataModule "
                "runs offline (not comparable to LRA numbers)."
            )
        return metadata_files

    def _cache_settings(self, metadata_files: list[Path]) -> dict:
        # The metadata files' names, sizes and times identify the release copy being read.
        listing = [[f.name, f.stat().st_size, int(f.stat().st_mtime)] for f in metadata_files]
        return {
            "dataset": "pathfinder (LRA release)",
            "root": str(self.data_path.resolve()),
            "metadata": listing,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
        }

    def _build(self) -> dict:
        log.info("decoding the Pathfinder release under %s (once; then cached)", self.data_path)
        tokens, labels = read_released_pathfinder(self.data_path)
        n = labels.numel()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        num_val, num_test = int(n * self.val_fraction), int(n * self.test_fraction)
        parts = {
            "val": order[:num_val],
            "test": order[num_val : num_val + num_test],
            "train": order[num_val + num_test :],
        }
        return {s: {"tokens": tokens[i], "labels": labels[i]} for s, i in parts.items()}

    def load_splits(self) -> dict[str, Dataset]:
        settings = self._cache_settings(self._check_release())
        folder = self.data_path
        prefix = f"pathfinder-released_{folder.parent.name}_{folder.name}_seed{self.seed}"
        payload = cached_payload(cache_path(self.data_dir, prefix, settings), settings, self._build)
        width = payload["train"]["tokens"].shape[1]
        if width != self.seq_len:
            raise ValueError(
                f"the images under {self.data_path} are {width} pixels; set seq_len={width} "
                f"(got {self.seq_len})"
            )
        return {
            s: FixedLengthTokenDataset(payload[s]["tokens"], payload[s]["labels"]) for s in SPLITS
        }
