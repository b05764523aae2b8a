"""LRA Image (grey CIFAR-10): torchvision's reader on a tiny CIFAR-10 in the real pickle format."""

import os
import pickle

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
from PIL import Image

from race.data.lra_image import LRAImageDataModule, rgb_to_grey_tokens

PER_BATCH = 4


def write_tiny_cifar10(root, seed=0):
    """cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta as pickled dicts."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)  # rows: R, G, B planes
        labels = rng.integers(0, 10, size=PER_BATCH).tolist()
        batches[name] = (data, labels)
        with open(folder / name, "wb") as handle:
            # The real files are Python 2 pickles; read with encoding="latin1" their keys are str.
            pickle.dump(
                {
                    "batch_label": name,
                    "labels": labels,
                    "data": data,
                    "filenames": ["x.png"] * PER_BATCH,
                },
                handle,
            )
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(
            {
                "label_names": [f"class{i}" for i in range(10)],
                "num_cases_per_batch": 4,
                "num_vis": 3072,
            },
            handle,
        )
    return batches


@pytest.fixture
def skip_md5(monkeypatch):
    """torchvision checks the real files' md5 sums; the tiny files only need to exist."""
    monkeypatch.setattr(
        torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path)
    )


def test_grey_conversion_matches_pil():
    rgb = np.random.default_rng(1).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    ours = rgb_to_grey_tokens(torch.from_numpy(rgb)).numpy().reshape(5, 32, 32).astype(int)
    pil = np.stack([np.asarray(Image.fromarray(image).convert("L")) for image in rgb]).astype(int)
    assert np.abs(ours - pil).max() <= 1  # PIL rounds in fixed point


def test_tiny_cifar10_through_torchvision(tmp_path, skip_md5):
    batches = write_tiny_cifar10(tmp_path)
    dm = LRAImageDataModule(data_path=tmp_path, batch_size=3, data_dir=tmp_path / "unused")
    assert (dm.num_classes, dm.vocab_size, dm.seq_len, dm.pad_id) == (10, 256, 1024, 0)
    dm.setup()
    assert len(dm.dataset("train")) == 5 * PER_BATCH and len(dm.dataset("test")) == PER_BATCH

    data, labels = batches["test_batch"]
    rgb = data[0].reshape(3, 32, 32).transpose(1, 2, 0)  # CIFAR rows are channel planes
    expected = np.rint(rgb.astype(float) @ np.array([0.299, 0.587, 0.114])).astype(int)
    ids, label = dm.dataset("test")[0]
    assert label == labels[0]
    assert ids.tolist() == expected.reshape(-1).tolist()  # row-major pixels

    batch = next(iter(dm.val_dataloader()))
    assert batch["input_ids"].shape == (3, 1024) and batch["input_ids"].dtype == torch.long
    assert not batch["padding_mask"].any()
    assert 0 <= batch["input_ids"].min() and batch["input_ids"].max() < 256
    assert batch["labels"].tolist() == labels[:3]


def test_val_holdout(tmp_path, skip_md5):
    write_tiny_cifar10(tmp_path)
    dm = LRAImageDataModule(data_path=tmp_path, val_size=5, data_dir=tmp_path)
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [15, 5, 4]


def test_missing_cifar_says_how_to_get_it(tmp_path):
    dm = LRAImageDataModule(data_path=tmp_path, data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"is missing.*download=True.*data\.data_path"):
        dm.setup()
    with pytest.raises(ValueError, match="1024"):
        LRAImageDataModule(seq_len=2048)
