"""LRA Pathfinder: the generated stand-in (labels vs connectivity) and the release loader."""

from collections import deque

import numpy as np
import pytest
import torch
from PIL import Image

from race.data.pathfinder import PathfinderDataModule, read_metadata_rows
from race.data.pathfinder_generator import (
    PathfinderLikeDataModule,
    PathfinderLikeSettings,
    generate_pathfinder_like,
)

# generated stand-in


def components(ink):
    """8-connected component id per ink pixel (0 = background), by breadth-first search."""
    ids, next_id = np.zeros(ink.shape, int), 0
    for y, x in zip(*np.nonzero(ink)):
        if ids[y, x]:
            continue
        next_id += 1
        ids[y, x], queue = next_id, deque([(y, x)])
        while queue:
            cy, cx = queue.popleft()
            for ny in range(cy - 1, cy + 2):
                for nx in range(cx - 1, cx + 2):
                    inside = 0 <= ny < ink.shape[0] and 0 <= nx < ink.shape[1]
                    if inside and ink[ny, nx] and not ids[ny, nx]:
                        ids[ny, nx] = next_id
                        queue.append((ny, nx))
    return ids, next_id


def dot_centres(ink):
    """Centres of full 3 x 3 ink squares (the endpoint dots)."""
    full = np.ones_like(ink, bool)
    h, w = ink.shape
    padded = np.pad(ink, 1)
    for dy in range(3):
        for dx in range(3):
            full &= padded[dy : dy + h, dx : dx + w]
    return list(zip(*np.nonzero(full)))


def test_labels_match_connectivity_with_solid_curves():
    # gap_length=0 draws solid curves, so "connected by one curve" = same 8-connected component;
    # snakes never touch, so there is one component per snake.
    settings = PathfinderLikeSettings(gap_length=0.0)
    tokens, labels = generate_pathfinder_like(150, seed=0, settings=settings)
    checked = 0
    for row, label in zip(tokens, labels):
        ink = row.reshape(32, 32).numpy() > 0
        ids, count = components(ink)
        assert count == 2 + settings.num_distractors
        dots = dot_centres(ink)
        if len(dots) != 2:  # a tight curl can look like a dot; skip those few images
            continue
        same = ids[dots[0]] == ids[dots[1]]
        assert same == bool(label)
        checked += 1
    assert checked > 120
    assert 0.35 < labels.float().mean() < 0.65


def test_generated_images_are_seeded_pixel_tokens():
    a_tokens, a_labels = generate_pathfinder_like(20, seed=1)
    b_tokens, b_labels = generate_pathfinder_like(20, seed=1)
    c_tokens, _ = generate_pathfinder_like(20, seed=2)
    assert torch.equal(a_tokens, b_tokens) and torch.equal(a_labels, b_labels)
    assert not torch.equal(a_tokens, c_tokens)
    assert a_tokens.shape == (20, 1024) and a_tokens.dtype == torch.uint8
    assert set(a_tokens.unique().tolist()) == {0, 255}
    ink = a_tokens.reshape(20, 32, 32)
    for image in ink:  # both dots present: at least two full 3 x 3 squares
        assert len(dot_centres(image.numpy() > 0)) >= 2


def test_generated_datamodule_is_cached_and_labelled_as_not_released(tmp_path, caplog):
    options = dict(num_train=40, num_val=10, num_test=10, batch_size=8, data_dir=tmp_path)
    dm = PathfinderLikeDataModule(**options)
    assert (dm.num_classes, dm.vocab_size, dm.seq_len, dm.pad_id) == (2, 256, 1024, 0)
    assert "generated" in dm.cache_file.name and "pathfinder-like" in dm.cache_file.name
    with caplog.at_level("WARNING"):
        dm.setup()
    assert "NOT the LRA Pathfinder release" in caplog.text
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [40, 10, 10]
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (8, 1024) and not batch["padding_mask"].any()
    assert set(batch["labels"].tolist()) <= {0, 1}

    again = PathfinderLikeDataModule(**options)
    again.setup()
    assert torch.equal(again.dataset("val").tokens, dm.dataset("val").tokens)
    assert PathfinderLikeDataModule(**{**options, "contour_length": 6}).cache_file != dm.cache_file
    with pytest.raises(ValueError, match="seq_len=256"):
        PathfinderLikeDataModule(seq_len=1024, image_size=16)


# released images


def write_release(root, n_per_file=5, size=8):
    """metadata/<k>.npy rows '[imgs/<k>, sample_<i>.png, 0, label, ...]' + imgs/<k>/*.png."""
    rng = np.random.default_rng(0)
    expected = {}
    for k in range(2):
        (root / "imgs" / str(k)).mkdir(parents=True)
        rows = []
        for i in range(n_per_file):
            pixels = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
            label = int(rng.integers(0, 2))
            Image.fromarray(pixels, mode="L").save(root / "imgs" / str(k) / f"sample_{i}.png")
            rows.append([f"imgs/{k}", f"sample_{i}.png", "0", str(label), "2", "14"])
            expected[pixels.tobytes()] = label
        (root / "metadata").mkdir(exist_ok=True)
        if k == 0:  # the release's .npy files are space-separated text
            text = "\n".join(" ".join(row) for row in rows) + "\n"
            (root / "metadata" / f"{k}.npy").write_text(text)
        else:  # also accept a real numpy string array with the same rows
            np.save(root / "metadata" / f"{k}.npy", np.array(rows))
    return expected


def test_released_layout(tmp_path):
    root = tmp_path / "lra_release" / "pathfinder32" / "curv_baseline"
    expected = write_release(root)
    assert read_metadata_rows(root / "metadata" / "1.npy")[0][:2] == ["imgs/1", "sample_0.png"]
    dm = PathfinderDataModule(seq_len=64, val_fraction=0.2, test_fraction=0.2, batch_size=4,
                              data_dir=tmp_path)  # fmt: skip
    assert (dm.num_classes, dm.vocab_size, dm.seq_len, dm.pad_id) == (2, 256, 64, 0)
    dm.setup()
    sizes = [len(dm.dataset(s)) for s in ("train", "val", "test")]
    assert sizes == [6, 2, 2]
    seen = {}
    for split in ("train", "val", "test"):
        for i in range(len(dm.dataset(split))):
            ids, label = dm.dataset(split)[i]
            seen[ids.to(torch.uint8).numpy().tobytes()] = label
    assert seen == expected  # every image once, with its label, pixels row-major
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (4, 64) and not batch["padding_mask"].any()
    assert len(list(tmp_path.glob("pathfinder-released_pathfinder32_curv_baseline_*.pt"))) == 1

    with pytest.raises(ValueError, match="seq_len=64"):
        PathfinderDataModule(seq_len=1024, data_path=root, data_dir=tmp_path).setup()


def test_missing_release_says_where_to_get_it(tmp_path):
    expected = r"lra_release\.gz.*data\.data_path.*PathfinderLike"
    with pytest.raises(FileNotFoundError, match=expected):
        PathfinderDataModule(data_dir=tmp_path).setup()


def test_missing_image_is_named(tmp_path):
    root = tmp_path / "curv_baseline"
    write_release(root)
    (root / "imgs" / "1" / "sample_3.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"sample_3\.png is listed in"):
        PathfinderDataModule(seq_len=64, data_path=root, data_dir=tmp_path).setup()


def test_impossible_generator_settings_raise():
    crowded = PathfinderLikeSettings(image_size=8, contour_length=3, num_distractors=30)
    with pytest.raises(ValueError, match="lower num_distractors"):
        generate_pathfinder_like(1, settings=crowded)
