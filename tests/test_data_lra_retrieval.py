"""LRA Retrieval (AAN pairs): the released TSV format, byte ids, pair batches, missing data."""

import pytest
import torch

from race.data import byte_tokenizer
from race.data.lra_retrieval import LRARetrievalDataModule

ROWS = {
    "train": [
        (1, "aan1", "aan2", "we cite x", "x is cited"),
        (0, "aan3", "aan4", "ünïcode", "b"),
        (1.0, "aan5", "aan6", "a" * 50, "tab\tinside text2"),
    ],
    "eval": [(0, "e1", "e2", "left", "right")],
    "test": [(1, "t1", "t2", "one", "two"), (0, "t3", "t4", "three", "four")],
}


def write_release(folder, rows=ROWS):
    """lra_release/tsv_data/new_aan_pairs.<split>.tsv: label, id1, id2, text1, text2; no header."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        lines = ["\t".join(str(field) for field in row) for row in split_rows]
        (folder / f"new_aan_pairs.{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_released_tsv_files(tmp_path):
    folder = write_release(tmp_path / "lra_release" / "tsv_data")
    dm = LRARetrievalDataModule(seq_len=32, data_path=folder, batch_size=2, data_dir=tmp_path)
    assert (dm.num_classes, dm.vocab_size, dm.seq_len, dm.pad_id) == (2, 257, 32, 0)
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [3, 1, 2]

    ids_1, ids_2, label = dm.dataset("train")[1]
    assert label == 0 and byte_tokenizer.decode(ids_1) == "ünïcode"
    assert ids_2.tolist() == [ord("b") + 1]
    ids_1, ids_2, label = dm.dataset("train")[2]
    assert label == 1 and ids_1.numel() == 32  # truncated to seq_len bytes
    assert byte_tokenizer.decode(ids_2) == "tab\tinside text2"

    batch = next(iter(dm.test_dataloader()))
    assert set(batch) == {
        "input_ids_1",
        "padding_mask_1",
        "input_ids_2",
        "padding_mask_2",
        "labels",
    }
    assert batch["input_ids_1"].shape == batch["input_ids_2"].shape == (2, 32)
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].dtype == torch.long
    assert batch["padding_mask_1"][0].tolist() == [False] * 3 + [True] * 29
    assert byte_tokenizer.decode(batch["input_ids_2"][1]) == "four"


def test_default_location_is_data_dir(tmp_path):
    write_release(tmp_path / "lra_release" / "tsv_data")
    dm = LRARetrievalDataModule(seq_len=8, data_dir=tmp_path)
    dm.setup()
    assert len(dm.dataset("val")) == 1


def test_missing_release_says_where_to_get_it(tmp_path):
    dm = LRARetrievalDataModule(data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"lra_release\.gz.*data\.data_path"):
        dm.setup()


def test_malformed_row_names_the_line(tmp_path):
    rows = {**ROWS, "eval": [(0, "e1", "e2", "only four fields")]}
    dm = LRARetrievalDataModule(data_path=write_release(tmp_path / "tsv", rows), data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"new_aan_pairs\.eval\.tsv:1 .*5 tab-separated"):
        dm.setup()
