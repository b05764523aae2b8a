"""Causal and masked LM data modules on tiny hub-format copies; BERT masking statistics."""

import math

import pandas as pd
import pytest
import torch
from paper_data_writers import lines, write_wikitext

from race.data.lm_datasets import CausalBlocks, LanguageModelDataModule, MaskedLMDataModule
from race.data.masking import IGNORE_INDEX, mask_tokens
from race.data.text_sources import DatasetUnavailableError


def test_causal_blocks_targets_are_inputs_shifted_by_one():
    tokens = torch.arange(1, 12, dtype=torch.int32)  # 11 tokens -> 10 targets -> blocks 4, 4, 2
    blocks = CausalBlocks(tokens, seq_len=4)
    assert len(blocks) == 3
    inputs = torch.cat([blocks[i][0] for i in range(3)])
    targets = torch.cat([blocks[i][1] for i in range(3)])
    assert inputs.tolist() == list(range(1, 11)) and targets.tolist() == list(range(2, 12))


def test_wikitext_bytes_fallback_end_to_end(tmp_path, caplog):
    write_wikitext(tmp_path / "wikitext")
    module = LanguageModelDataModule("wikitext103", seq_len=32, data_path=tmp_path / "wikitext",
                                     data_dir=tmp_path / "cache", batch_size=4)
    assert module.vocab_size == 261  # no GPT-2 files here: byte-level, with a warning
    assert "byte-level" in caplog.text
    module.setup()
    stream = b"".join(line.encode() for line in lines(10, len("test")))
    batch = next(iter(module.test_dataloader()))
    assert set(batch) == {"input_ids", "labels", "padding_mask"}
    assert batch["input_ids"].shape == batch["labels"].shape == (4, 32)
    ids, labels, pad = batch["input_ids"], batch["labels"], batch["padding_mask"]
    assert bytes((ids[0] - 5).tolist()) == stream[:32]
    assert (labels[:, :-1][~pad[:, 1:]] == ids[:, 1:][~pad[:, 1:]]).all()  # shifted by one
    assert labels[0, -1] == ids[1, 0]  # a block's last target is the next block's first input
    last = module.test_dataloader().dataset[len(module.dataset("test")) - 1]
    assert len(last[0]) <= 32


def test_ptb_appends_eos_per_sentence(tmp_path):
    # ptb_text_only parquet export: penn_treebank/{train,validation,test}/0000.parquet
    for split in ("train", "validation", "test"):
        folder = tmp_path / "ptb" / "penn_treebank" / split
        folder.mkdir(parents=True)
        pd.DataFrame({"sentence": ["the cat", "a dog"]}).to_parquet(folder / "0000.parquet")
    module = LanguageModelDataModule("ptb", seq_len=8, tokenizer="bytes",
                                     data_path=tmp_path / "ptb", data_dir=tmp_path / "cache")
    module.setup()
    ids, labels = module.dataset("test")[0]
    eos = module.tokenizer.eos_id
    assert ids.tolist() == [c + 5 for c in b"the cat"] + [eos]
    assert labels.tolist()[-1] == ord("a") + 5


def test_missing_wikitext_names_dataset_and_option(tmp_path):
    module = LanguageModelDataModule(tokenizer="bytes", data_dir=tmp_path)
    with pytest.raises(DatasetUnavailableError, match=r"wikitext-103-raw-v1.*data\.data_path="):
        module.setup()


def test_tinystories_mlm_end_to_end_with_a_locally_trained_wordpiece(tmp_path):
    # roneneldan/TinyStories: data/{train,validation}-000xx-of-000yy.parquet
    folder = tmp_path / "tinystories" / "data"
    folder.mkdir(parents=True)
    for split, n in [("train", 200), ("validation", 20)]:
        stories = ["".join(lines(4, i)) for i in range(n)]
        pd.DataFrame({"text": stories}).to_parquet(folder / f"{split}-00000-of-00001.parquet")
    # the hub repo also holds the stories as text files beside data/: they must be ignored
    (folder.parent / "TinyStories-train.txt").write_text("Once upon a time.\n" * 7)
    module = MaskedLMDataModule(seq_len=64, tokenizer_vocab_size=100,
                                data_path=tmp_path / "tinystories", data_dir=tmp_path / "cache",
                                batch_size=8)
    assert module.vocab_size == 100 and module.seq_len == 64
    module.setup()
    assert module.tokenizer.kind == "wordpiece" and module.tokenizer.mask_id == 4
    batch = next(iter(module.train_dataloader()))
    assert set(batch) == {"input_ids", "labels", "padding_mask"}
    assert batch["input_ids"].shape == batch["labels"].shape == (8, 64)
    selected = batch["labels"] != IGNORE_INDEX
    assert 0 < selected.sum() < 0.4 * selected.numel()
    assert (batch["input_ids"][selected] == 4).any()
    assert not (selected & batch["padding_mask"]).any()
    # evaluation masks are fixed: two passes score the same positions
    first, second = (next(iter(module.test_dataloader())) for _ in range(2))
    assert torch.equal(first["input_ids"], second["input_ids"])
    # a second module reuses the cached tokenizer and streams
    again = MaskedLMDataModule(seq_len=32, tokenizer_vocab_size=100,
                               data_path=tmp_path / "tinystories", data_dir=tmp_path / "cache")
    again.setup()
    assert again.tokenizer.fingerprint == module.tokenizer.fingerprint
    assert len(list((tmp_path / "cache" / "tokenized").glob("*.pt"))) == 3


def test_masking_follows_the_80_10_10_rule():
    num_tokens, special = 1000, [0, 1, 2, 3, 4]
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, num_tokens, (200, 512), generator=generator)
    ids[:, :10] = 0  # padding is never selected
    ids[:, 10] = 2  # nor [CLS]
    corrupted, labels = mask_tokens(ids, mask_id=4, special_ids=special, num_tokens=num_tokens,
                                    generator=generator)
    selected = labels != IGNORE_INDEX
    assert not selected[:, :11].any()
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(corrupted[~selected], ids[~selected])
    candidates = ids[:, 11:].numel()

    def within(count, total, p):  # binomial count within 5 standard deviations
        return abs(count - total * p) < 5 * math.sqrt(total * p * (1 - p))

    n = int(selected.sum())
    assert within(n, candidates, 0.15)
    masked = int((corrupted[selected] == 4).sum())
    unchanged = int((corrupted[selected] == ids[selected]).sum())
    replaced = n - masked - unchanged
    # a random replacement equals the original with probability 1/995: counted as unchanged
    assert within(masked, n, 0.8)
    assert within(replaced, n, 0.1 * (1 - 1 / 995))
    assert within(unchanged, n, 0.1 + 0.1 / 995)
    random_ids = corrupted[selected & (corrupted != 4) & (corrupted != ids)]
    assert random_ids.min() >= 5 and random_ids.max() < num_tokens


def test_masking_is_seeded():
    ids = torch.randint(5, 100, (4, 64))
    draws = [mask_tokens(ids, mask_id=4, special_ids=[0, 1, 2, 3, 4], num_tokens=100,
                         generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(draws[0][0], draws[1][0]) and torch.equal(draws[0][1], draws[1][1])


def test_wikitext_with_local_gpt2_files(tmp_path):
    from test_data_paper_tokenizers import write_gpt2_files

    write_wikitext(tmp_path / "wikitext")
    n = write_gpt2_files(tmp_path / "gpt2")
    module = LanguageModelDataModule("wikitext103", seq_len=16, tokenizer_path=tmp_path / "gpt2",
                                     tokenizer_fallback="error", data_path=tmp_path / "wikitext",
                                     data_dir=tmp_path / "cache", batch_size=2)
    assert module.vocab_size == n + 1  # GPT-2 ids shifted by one: pad 0
    module.setup()
    batch = next(iter(module.val_dataloader()))
    ids = batch["input_ids"][~batch["padding_mask"]]
    assert ids.min() >= 1 and ids.max() <= n
    text = module.tokenizer.backend.decode((batch["input_ids"][0] - 1).tolist())
    assert text == "".join(lines(10, len("validation")))[: len(text)]
