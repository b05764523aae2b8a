"""Text classification data modules on tiny local copies written in the hub's own layouts."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from paper_data_writers import sentences, write_parquet

from race.data.text_datasets import TextClassificationDataModule, pack_per_class
from race.data.text_sources import DatasetUnavailableError


def check_batch(batch, module, batch_size):
    assert set(batch) == {"input_ids", "padding_mask", "labels"}
    assert batch["input_ids"].shape == (batch_size, module.seq_len)
    assert batch["input_ids"].dtype == torch.long
    assert batch["padding_mask"].dtype == torch.bool
    assert batch["labels"].shape == (batch_size,)
    ids = batch["input_ids"]
    assert ids.max() < module.vocab_size and ids.min() >= 0
    assert (ids[batch["padding_mask"]] == module.pad_id).all()
    assert 0 <= batch["labels"].min() and batch["labels"].max() < module.num_classes


def test_imdb_from_hub_parquet_layout(tmp_path):
    # stanfordnlp/imdb keeps plain_text/{train,test,unsupervised}-00000-of-00001.parquet
    root = tmp_path / "imdb"
    for split, n in [("train", 40), ("test", 12)]:
        write_parquet(pd.DataFrame({"text": sentences(n, len(split)), "label": np.arange(n) % 2}),
                      root / "plain_text" / f"{split}-00000-of-00001.parquet")
    module = TextClassificationDataModule("imdb", seq_len=16, tokenizer_vocab_size=120,
                                          data_path=root, data_dir=tmp_path / "cache",
                                          batch_size=4, val_fraction=0.25)
    assert (module.num_classes, module.seq_len, module.vocab_size, module.pad_id) == (2, 16, 120, 0)
    module.setup()
    assert [len(module.dataset(s)) for s in ("train", "val", "test")] == [30, 10, 12]
    check_batch(next(iter(module.train_dataloader())), module, 4)
    check_batch(next(iter(module.test_dataloader())), module, 4)
    # the trained tokenizer and the tokenised splits are cached
    assert len(list((tmp_path / "cache" / "tokenizers").glob("imdb-wordpiece-120-*.pt"))) == 1
    assert len(list((tmp_path / "cache" / "tokenized").glob("imdb-*.pt"))) == 3


def test_qnli_sentence_pairs_from_glue_layout(tmp_path):
    root = tmp_path / "glue"
    for split, n in [("train", 20), ("validation", 8), ("test", 8)]:
        frame = pd.DataFrame({"question": sentences(n, 1), "sentence": sentences(n, 2),
                              "label": np.arange(n) % 2 if split != "test" else -1,
                              "idx": np.arange(n)})
        write_parquet(frame, root / "qnli" / f"{split}-00000-of-00001.parquet")
    module = TextClassificationDataModule("qnli", seq_len=24, tokenizer="bytes", data_path=root,
                                          data_dir=tmp_path / "cache", batch_size=2)
    module.setup()
    tokenizer = module.tokenizer
    # the glue validation split is the test split (glue's own test labels are hidden)
    assert len(module.dataset("test")) == 8
    ids, _ = module.dataset("test")[0]
    assert (ids == tokenizer.sep_id).sum() == 1 and len(ids) == 24
    check_batch(next(iter(module.test_dataloader())), module, 2)


def test_yahoo_joins_fields_and_sst2_reads_jsonl(tmp_path):
    root = tmp_path / "yahoo"
    for split in ("train", "test"):
        write_parquet(pd.DataFrame({"id": range(10), "topic": np.arange(10),
                                    "question_title": ["why?"] * 10,
                                    "question_content": [None] * 10,
                                    "best_answer": sentences(10, 3)}),
                      root / "yahoo_answers_topics" / f"{split}-00000-of-00001.parquet")
    module = TextClassificationDataModule("yahoo", seq_len=64, tokenizer="bytes", data_path=root,
                                          data_dir=tmp_path / "cache", batch_size=2)
    assert module.num_classes == 10
    module.setup()
    ids, label = module.dataset("test")[3]
    assert bytes((ids[:5] - module.tokenizer.offset).tolist()) == b"why? "
    assert label == 3

    sst = tmp_path / "sst2"
    sst.mkdir()
    for split in ("train", "validation"):
        with open(sst / f"{split}.jsonl", "w") as handle:
            for i, text in enumerate(sentences(10, 4)):
                handle.write(json.dumps({"idx": i, "sentence": text, "label": i % 2}) + "\n")
    module = TextClassificationDataModule("sst2", seq_len=32, tokenizer="bytes", data_path=sst,
                                          data_dir=tmp_path / "cache", batch_size=2)
    module.setup()
    check_batch(next(iter(module.train_dataloader())), module, 2)


def test_arxiv_word_tokenizer_packs_documents_per_class(tmp_path):
    # ccdv/arxiv-classification: data/ (default config) and no_ref/ (another config)
    root = tmp_path / "arxiv"
    for split in ("train", "validation", "test"):
        frame = pd.DataFrame({"text": sentences(33, 5, (30, 60)), "label": np.arange(33) % 11})
        write_parquet(frame, root / "data" / f"{split}-00000-of-00001.parquet")
        write_parquet(frame[:1], root / "no_ref" / f"{split}-00000-of-00001.parquet")
    module = TextClassificationDataModule("arxiv", seq_len=64, tokenizer_vocab_size=50,
                                          data_path=root, data_dir=tmp_path / "cache",
                                          batch_size=3)
    assert (module.num_classes, module.vocab_size) == (11, 50)
    module.setup()
    assert module.tokenizer.kind == "word"
    train = module.dataset("train")
    assert module.source.rows("train").num_rows == 33  # data/ only
    assert all(len(train[i][0]) <= 64 for i in range(len(train)))
    # every class has at least one full sequence of exactly seq_len tokens
    full = {train[i][1] for i in range(len(train)) if len(train[i][0]) == 64}
    assert full == set(range(11))
    check_batch(next(iter(module.train_dataloader())), module, 3)


def test_pack_per_class_keeps_every_token_in_order():
    docs = [np.arange(5) + 10, np.arange(3) + 20, np.arange(4) + 30]
    sequences, labels = pack_per_class(docs, np.array([0, 1, 0]), seq_len=4, separator=3)
    assert labels.tolist() == [0, 0, 0, 1]
    assert np.concatenate(sequences[:3]).tolist() == [10, 11, 12, 13, 14, 3, 30, 31, 32, 33]
    assert sequences[3].tolist() == [20, 21, 22]


def test_missing_dataset_names_dataset_and_option(tmp_path):
    module = TextClassificationDataModule("imdb", tokenizer="bytes", data_dir=tmp_path)
    with pytest.raises(DatasetUnavailableError, match=r"stanfordnlp/imdb.*data\.data_path="):
        module.setup()
    module = TextClassificationDataModule("qnli", tokenizer="bytes", data_dir=tmp_path,
                                          data_path=tmp_path / "nowhere")
    with pytest.raises(DatasetUnavailableError, match=r"data\.data_path=.*qnli"):
        module.setup()


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="imdb, sst2, yahoo, qnli, arxiv"):
        TextClassificationDataModule("mnli")


def test_an_edited_local_copy_is_tokenised_anew(tmp_path):
    root = tmp_path / "sst2"
    root.mkdir()

    def write(sentence):
        for split in ("train", "validation"):
            pd.DataFrame({"sentence": [sentence] * 4, "label": [0, 1, 0, 1]}).to_parquet(
                root / f"{split}-00000-of-00001.parquet")

    def first_test_ids():
        module = TextClassificationDataModule("sst2", seq_len=8, tokenizer="bytes",
                                              data_path=root, data_dir=tmp_path / "cache",
                                              val_fraction=0.25)
        module.setup()
        return module.dataset("test")[0][0].tolist()

    write("good")
    assert first_test_ids() == [c + 5 for c in b"good"]
    write("bad")
    assert first_test_ids() == [c + 5 for c in b"bad"]
