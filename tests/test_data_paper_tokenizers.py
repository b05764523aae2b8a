"""Tokenizer factory: local files, fallbacks with clear messages, pad id 0, fingerprints and
the cache keys that depend on them."""

import logging

import numpy as np
import pandas as pd
import pytest
from paper_data_writers import write_gpt2_files

from race.data.text_datasets import TextClassificationDataModule
from race.data.text_tokenizers import TokenizerUnavailableError, choose_tokenizer


def test_gpt2_from_local_files_shifts_ids_to_keep_pad_zero(tmp_path):
    n = write_gpt2_files(tmp_path / "gpt2")
    tokenizer = choose_tokenizer("gpt2", path=tmp_path / "gpt2").build()
    assert tokenizer.kind == "gpt2" and tokenizer.offset == 1
    assert tokenizer.vocab_size == n + 1 and tokenizer.pad_id == 0
    assert tokenizer.eos_id == n  # <|endoftext|>, last id, shifted by one
    ids = tokenizer.encode("the the")
    assert len(ids) == 3 and ids.min() >= 1  # "the", " " (Ġ), "the"
    assert tokenizer.backend.decode((ids - 1).tolist()) == "the the"


def test_gpt2_fallback_to_bytes_warns_and_error_option_raises(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        recipe = choose_tokenizer("gpt2")
    assert recipe.kind == "bytes" and recipe.vocab_size == 261
    assert "data.tokenizer_path" in caplog.text and "byte-level" in caplog.text
    with pytest.raises(TokenizerUnavailableError, match="data.tokenizer_path.*tokenizer_fallback"):
        choose_tokenizer("gpt2", fallback="error")
    with pytest.raises(TokenizerUnavailableError, match="vocab.json"):
        choose_tokenizer("gpt2", path=tmp_path)  # exists but holds no tokenizer files
    with pytest.raises(ValueError, match="gpt2, bytes, wordpiece, word"):
        choose_tokenizer("sentencepiece")


def test_bytes_tokenizer_ids():
    tokenizer = choose_tokenizer("bytes").build()
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id,
            tokenizer.mask_id) == (0, 1, 2, 3, 4)
    assert tokenizer.encode("aé").tolist() == [97 + 5, 0xC3 + 5, 0xA9 + 5]
    assert tokenizer.special_ids == [0, 1, 2, 3, 4]


def test_wordpiece_from_bert_vocab_txt_keeps_bert_ids(tmp_path):
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]",
                                                               "[MASK]", "the", "cat", "##s", "."]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = choose_tokenizer("wordpiece", path=tmp_path).build()
    assert tokenizer.offset == 0 and tokenizer.vocab_size == len(vocab)
    assert (tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id) == (
        100, 101, 102, 103)
    assert tokenizer.encode("The cats.").tolist() == [104, 105, 106, 107]  # uncased vocab


def test_wordpiece_without_files_is_trained_and_error_option_raises():
    recipe = choose_tokenizer("wordpiece", vocab_size=80)
    assert recipe.needs_training and recipe.vocab_size == 80
    tokenizer = recipe.build(train_texts=lambda: ["the cat sat on the mat"] * 20)
    assert tokenizer.mask_id == 4 and tokenizer.vocab_size == 80
    assert len(tokenizer.encode("the cat")) == 2
    with pytest.raises(TokenizerUnavailableError, match="vocab.txt"):
        choose_tokenizer("wordpiece", fallback="error")


def test_fingerprint_follows_the_vocabulary(tmp_path):
    write_gpt2_files(tmp_path / "a")
    write_gpt2_files(tmp_path / "b")
    write_gpt2_files(tmp_path / "c", extra_merge=True)
    a, b, c = (choose_tokenizer("gpt2", path=tmp_path / x).build() for x in "abc")
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.fingerprint.startswith("gpt2-")
    assert choose_tokenizer("bytes").build().fingerprint != a.fingerprint


def test_changed_tokenizer_never_reuses_a_tokenized_cache(tmp_path):
    root = tmp_path / "imdb"
    root.mkdir()
    for split in ("train", "test"):
        pd.DataFrame({"text": ["the the cat", "cat the"] * 4, "label": np.arange(8) % 2}) \
            .to_parquet(root / f"{split}-00000-of-00001.parquet")
    write_gpt2_files(tmp_path / "tok")
    cache = tmp_path / "cache"

    def token_ids():
        module = TextClassificationDataModule("imdb", seq_len=8, tokenizer="gpt2",
                                              tokenizer_path=tmp_path / "tok", data_path=root,
                                              data_dir=cache, val_fraction=0.25)
        module.setup()
        return module.dataset("test")[0][0].tolist()

    before = token_ids()
    files_before = set((cache / "tokenized").glob("*.pt"))
    write_gpt2_files(tmp_path / "tok", extra_merge=True)  # " the" is now one token
    after = token_ids()
    files_after = set((cache / "tokenized").glob("*.pt"))
    assert len(before) == 7 and len(after) == 6
    assert len(files_after - files_before) == 3  # train, val and test tokenised anew
