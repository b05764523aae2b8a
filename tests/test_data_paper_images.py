"""Image data modules on tiny copies in torchvision's own layouts; patch round trips."""

import pytest
import torch
from paper_data_writers import write_cifar10, write_fashion_mnist, write_food101

from race.data.image_datasets import ImageClassificationDataModule
from race.data.image_patches import patchify, unpatchify
from race.data.text_sources import DatasetUnavailableError


@pytest.mark.parametrize("shape,patch", [((3, 8, 12), 4), ((2, 1, 6, 6), 1), ((2, 3, 16, 16), 2)])
def test_patchify_round_trips_exactly(shape, patch):
    images = torch.randn(shape, dtype=torch.float64)
    patches = patchify(images, patch)
    C, H, W = shape[-3:]
    assert patches.shape == (*shape[:-3], (H // patch) * (W // patch), patch * patch * C)
    assert torch.equal(unpatchify(patches, patch, H, W), images)


def test_patch_layout_rows_then_columns_then_channels():
    image = torch.arange(2 * 4 * 4).reshape(2, 4, 4)  # (C, H, W)
    patches = patchify(image, 2)  # (4, 8)
    first = [image[c, r, k].item() for r in range(2) for k in range(2) for c in range(2)]
    assert patches[0].tolist() == first
    assert patches[1, 0] == image[0, 0, 2]  # the second patch is to the right of the first
    with pytest.raises(ValueError, match="multiple of patch_size"):
        patchify(torch.zeros(3, 6, 6), 4)


def check_batch(batch, module, batch_size):
    assert set(batch) == {"pixels", "padding_mask", "labels"}
    assert batch["pixels"].shape == (batch_size, module.seq_len, module.pixel_dim)
    assert batch["pixels"].dtype == torch.float32
    assert batch["padding_mask"].shape == (batch_size, module.seq_len)
    assert not batch["padding_mask"].any()
    assert batch["labels"].shape == (batch_size,)
    assert 0 <= batch["labels"].min() and batch["labels"].max() < module.num_classes


def test_fashion_mnist_784_grey_pixels(tmp_path):
    test_images = write_fashion_mnist(tmp_path / "tv")
    module = ImageClassificationDataModule("fashion_mnist", data_path=tmp_path / "tv",
                                           batch_size=4, val_fraction=0.25)
    assert (module.seq_len, module.pixel_dim, module.num_classes) == (784, 1, 10)
    assert module.vocab_size is None
    module.setup()
    assert [len(module.dataset(s)) for s in ("train", "val", "test")] == [15, 5, 10]
    check_batch(next(iter(module.train_dataloader())), module, 4)
    batch = next(iter(module.test_dataloader()))
    # pixels in row-major order, normalised with FashionMNIST's mean and std
    expected = (torch.from_numpy(test_images[0]).float() / 255 - 0.2860) / 0.3530
    assert torch.allclose(batch["pixels"][0, :, 0], expected.flatten(), atol=1e-5)


def test_cifar10_one_rgb_pixel_per_token(tmp_path, monkeypatch):
    from torchvision.datasets import cifar

    # torchvision checks the real files' md5 sums, which tiny stand-ins cannot match
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    test_batch = write_cifar10(tmp_path)
    module = ImageClassificationDataModule("cifar10", data_dir=tmp_path, batch_size=5)
    assert (module.seq_len, module.pixel_dim, module.num_classes) == (1024, 3, 10)
    module.setup()
    assert len(module.dataset("train")) + len(module.dataset("val")) == 50
    check_batch(next(iter(module.train_dataloader())), module, 5)
    pixels = next(iter(module.test_dataloader()))["pixels"][0]  # (1024, 3)
    red = torch.from_numpy(test_batch["data"][0, :1024]).float() / 255
    assert torch.allclose(pixels[:, 0], (red - 0.4914) / 0.2470, atol=1e-5)


def test_food101_first_classes_in_patches(tmp_path):
    write_food101(tmp_path)
    module = ImageClassificationDataModule("food101", image_size=16, patch_size=4,
                                           classes_kept=2, data_path=tmp_path, batch_size=2,
                                           val_fraction=0.25)
    assert (module.seq_len, module.pixel_dim, module.num_classes) == (16, 48, 2)
    assert module.augment  # RandomResizedCrop + flip, as the paper
    module.setup()
    assert [len(module.dataset(s)) for s in ("train", "val", "test")] == [6, 2, 4]
    check_batch(next(iter(module.train_dataloader())), module, 2)
    check_batch(next(iter(module.test_dataloader())), module, 2)
    defaults = ImageClassificationDataModule("food101")
    assert (defaults.seq_len, defaults.pixel_dim, defaults.num_classes) == (16384, 48, 50)


@pytest.mark.parametrize("dataset,folder", [("cifar10", "cifar-10-batches-py"),
                                            ("fashion_mnist", "FashionMNIST/raw"),
                                            ("food101", "food-101")])
def test_missing_images_name_dataset_folder_and_option(tmp_path, dataset, folder):
    module = ImageClassificationDataModule(dataset, data_dir=tmp_path)
    with pytest.raises(DatasetUnavailableError, match=rf"{dataset}.*{folder}.*data\.data_path="):
        module.setup()
