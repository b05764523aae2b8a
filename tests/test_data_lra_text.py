"""LRA Text (IMDB bytes): the real hub loader on tiny parquet files in the hub's format."""

import pandas as pd
import pytest
import torch

from race.data import byte_tokenizer
from race.data.lra_text import LRATextDataModule

TRAIN = [("a great film", 1), ("dull", 0), ("héllo wörld, loved it", 1), ("", 0), ("meh " * 20, 0)]
TEST = [("bad", 0), ("superb acting", 1), ("ok", 1)]


def write_hub_layout(root):
    """The hub repository stanfordnlp/imdb's layout: plain_text/<split>-00000-of-00001.parquet."""
    folder = root / "imdb" / "plain_text"
    folder.mkdir(parents=True)
    for split, rows in [("train", TRAIN), ("test", TEST), ("unsupervised", [("x", -1)])]:
        frame = pd.DataFrame(rows, columns=["text", "label"])
        frame.to_parquet(folder / f"{split}-00000-of-00001.parquet", index=False)
    return root / "imdb"


def test_byte_tokenizer_round_trip_and_truncation():
    ids = byte_tokenizer.encode("héllo")
    assert ids.tolist() == [b + 1 for b in "héllo".encode()]
    assert byte_tokenizer.decode(ids) == "héllo"
    assert byte_tokenizer.encode("abcdef", max_len=3).tolist() == [98, 99, 100]
    assert byte_tokenizer.VOCAB_SIZE == 257 and byte_tokenizer.PAD_ID == 0
    assert byte_tokenizer.encode("").numel() == 0


def test_local_hub_copy(tmp_path):
    path = write_hub_layout(tmp_path)
    dm = LRATextDataModule(seq_len=16, data_path=path, batch_size=4, data_dir=tmp_path)
    assert (dm.num_classes, dm.vocab_size, dm.seq_len, dm.pad_id) == (2, 257, 16, 0)
    dm.setup()
    assert len(dm.dataset("train")) == len(TRAIN) and len(dm.dataset("test")) == len(TEST)
    assert dm.dataset("val") is dm.dataset("test")  # LRA practice with val_size=0

    for i, (text, label) in enumerate(TRAIN):
        ids, got = dm.dataset("train")[i]
        assert got == label
        assert ids.tolist() == [b + 1 for b in text.encode()[:16]]  # truncated to seq_len bytes

    batch = next(iter(dm.val_dataloader()))
    assert batch["input_ids"].shape == (3, 16) and batch["labels"].tolist() == [0, 1, 1]
    assert batch["padding_mask"][0].tolist() == [False] * 3 + [True] * 13
    assert byte_tokenizer.decode(batch["input_ids"][1]) == "superb acting"


def test_parquet_folder_and_val_holdout(tmp_path):
    path = write_hub_layout(tmp_path) / "plain_text"
    dm = LRATextDataModule(seq_len=64, data_path=path, val_size=2, batch_size=8, data_dir=tmp_path)
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [3, 2, 3]
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"input_ids", "padding_mask", "labels"}
    assert batch["input_ids"].dtype == torch.long and batch["input_ids"].shape == (3, 64)


def test_wrong_columns_are_named(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for split in ("train", "test"):
        pd.DataFrame({"review": ["x"], "label": [0]}).to_parquet(folder / f"{split}.parquet")
    dm = LRATextDataModule(data_path=folder, data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['text'\]"):
        dm.setup()


def test_offline_without_local_copy_names_dataset_and_option(tmp_path):
    dm = LRATextDataModule(data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"stanfordnlp/imdb.*data\.data_path"):
        dm.setup()
    missing = LRATextDataModule(data_path=tmp_path / "nowhere", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        missing.setup()
