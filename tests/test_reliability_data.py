"""Data errors name the file and what was expected: a truncated parquet file, a local copy with
the wrong columns, a TSV with the wrong header, a damaged CIFAR-10 batch. (A corrupt or partial
cache file is rebuilt, never read: tests/test_data_cache.py; the real ListOps generator run by
two processes at once: tests/test_reliability.py.)"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from race.data.listops_release import ListOpsReleasedDataModule
from race.data.lra_image import LRAImageDataModule
from race.data.text_sources import load_text_split, text_dataset_spec


def write_imdb_copy(root, columns=("text", "label")):
    folder = root / "imdb" / "plain_text"
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        pd.DataFrame([("good", 1), ("bad", 0)] * 3, columns=list(columns)).to_parquet(
            folder / f"{split}-00000-of-00001.parquet", index=False)
    return root / "imdb", folder / "train-00000-of-00001.parquet"


def cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_parquet_is_named_by_the_text_loader(tmp_path):
    copy, train_file = write_imdb_copy(tmp_path)
    cut_in_half(train_file)
    with pytest.raises(FileNotFoundError, match="expected a complete parquet file") as error:
        load_text_split(text_dataset_spec("imdb"), "train", data_path=copy,
                        cache_dir=tmp_path / "cache")
    assert str(train_file) in str(error.value)


def test_local_copy_with_wrong_columns_names_them(tmp_path):
    copy, _ = write_imdb_copy(tmp_path, columns=("review", "sentiment"))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['text', 'label'\]: it has "
                                         r"\['review', 'sentiment'\]"):
        load_text_split(text_dataset_spec("imdb"), "test", data_path=copy,
                        cache_dir=tmp_path / "cache")


def test_listops_tsv_with_the_wrong_header_names_file_and_header(tmp_path):
    for name in ("basic_train.tsv", "basic_val.tsv", "basic_test.tsv"):
        (tmp_path / name).write_text("text\tlabel\n[MAX 2 9 ]\t9\n")
    module = ListOpsReleasedDataModule(seq_len=16, data_path=tmp_path, data_dir=tmp_path)
    with pytest.raises(ValueError, match="basic_train.tsv should start with the header "
                                         "'Source<TAB>Target'"):
        module.setup()


def test_damaged_cifar_batch_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as handle:  # right names, wrong bytes (md5)
            pickle.dump({"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
                         "labels": [0, 1]}, handle)
    (folder / "data_batch_3").unlink()
    module = LRAImageDataModule(data_path=tmp_path, data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"missing or damaged files \['data_batch_1'"
                                                r".*'data_batch_3'.*'test_batch'\]"):
        module.setup()
