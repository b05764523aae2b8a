"""Tiny copies of the paper's datasets and tokenizers, written in their real formats (hub
parquet/JSON layouts, torchvision folders, GPT-2 vocab.json + merges.txt), for the data tests
(tests/test_data_paper_*.py) and the task tests (tests/test_tasks_paper*.py)."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

STORY_WORDS = "once upon a time there was a little cat who liked to play in the sun .".split()
REVIEW_WORDS = ("the a movie film good bad great awful plot actor scene story long short fun "
                "dull").split()


def lines(n, seed):
    """wikitext-like rows: a leading space, words, a trailing newline."""
    rng = np.random.default_rng(seed)
    return [" " + " ".join(rng.choice(STORY_WORDS, rng.integers(3, 15))) + " \n"
            for _ in range(n)]


def sentences(n, seed, length=(5, 30)):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(REVIEW_WORDS, rng.integers(*length))) + "." for _ in range(n)]


def write_parquet(frame, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)


# language modelling


def write_wikitext(root, sizes=(("train", 60), ("validation", 10), ("test", 10))):
    """Salesforce/wikitext: wikitext-103-raw-v1/{train,validation,test}-0000x-of-0000y.parquet."""
    folder = Path(root) / "wikitext-103-raw-v1"
    folder.mkdir(parents=True)
    for split, n in sizes:
        rows = [""] + lines(n, len(split))  # wikitext has empty rows between paragraphs
        pd.DataFrame({"text": rows}).to_parquet(folder / f"{split}-00000-of-00001.parquet")
    return Path(root)


def write_ptb(root, n=20):
    """ptb_text_only's parquet export: penn_treebank/{train,validation,test}/0000.parquet."""
    for split in ("train", "validation", "test"):
        rows = [line.strip() for line in lines(n, len(split))]
        write_parquet(pd.DataFrame({"sentence": rows}),
                      Path(root) / "penn_treebank" / split / "0000.parquet")
    return Path(root)


def write_tinystories(root, sizes=(("train", 200), ("validation", 20))):
    """roneneldan/TinyStories: data/{train,validation}-000xx-of-000yy.parquet."""
    folder = Path(root) / "data"
    for split, n in sizes:
        stories = ["".join(lines(4, i)) for i in range(n)]
        write_parquet(pd.DataFrame({"text": stories}), folder / f"{split}-00000-of-00001.parquet")
    return Path(root)


def write_gpt2_files(folder, extra_merge=False):
    """A miniature GPT-2 tokenizer in its real file format (vocab.json + merges.txt); returns
    the number of tokens."""
    from tokenizers import pre_tokenizers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = ["t h", "th e"] + (["Ġ the"] if extra_merge else [])
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    for merge in merges:
        vocab["".join(merge.split())] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return len(vocab)


# text classification


def write_imdb(root, sizes=(("train", 40), ("test", 12))):
    """stanfordnlp/imdb: plain_text/{train,test}-00000-of-00001.parquet (text, label)."""
    for split, n in sizes:
        write_parquet(pd.DataFrame({"text": sentences(n, len(split)), "label": np.arange(n) % 2}),
                      Path(root) / "plain_text" / f"{split}-00000-of-00001.parquet")
    return Path(root)


def write_sst2_jsonl(root, n=10):
    """An SST-2 copy as {train,validation}.jsonl (idx, sentence, label)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation"):
        with open(root / f"{split}.jsonl", "w") as handle:
            for i, text in enumerate(sentences(n, 4)):
                handle.write(json.dumps({"idx": i, "sentence": text, "label": i % 2}) + "\n")
    return root


def write_yahoo(root, n=10):
    """community-datasets/yahoo_answers_topics: yahoo_answers_topics/<split>-*.parquet."""
    for split in ("train", "test"):
        write_parquet(pd.DataFrame({"id": range(n), "topic": np.arange(n) % 10,
                                    "question_title": ["why?"] * n,
                                    "question_content": [None] * n,
                                    "best_answer": sentences(n, 3)}),
                      Path(root) / "yahoo_answers_topics" / f"{split}-00000-of-00001.parquet")
    return Path(root)


def write_qnli(root, sizes=(("train", 20), ("validation", 8), ("test", 8))):
    """nyu-mll/glue: qnli/{train,validation,test}-*.parquet; glue hides test labels (-1)."""
    for split, n in sizes:
        frame = pd.DataFrame({"question": sentences(n, 1), "sentence": sentences(n, 2),
                              "label": np.arange(n) % 2 if split != "test" else -1,
                              "idx": np.arange(n)})
        write_parquet(frame, Path(root) / "qnli" / f"{split}-00000-of-00001.parquet")
    return Path(root)


def write_arxiv(root, n=33):
    """ccdv/arxiv-classification: {train,validation,test}-*.parquet (text, label of 11)."""
    for split in ("train", "validation", "test"):
        frame = pd.DataFrame({"text": sentences(n, 5, (30, 60)), "label": np.arange(n) % 11})
        write_parquet(frame, Path(root) / f"{split}-00000-of-00001.parquet")
    return Path(root)


# images (torchvision layouts)


def write_fashion_mnist(root, n_train=20, n_test=10):
    """FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte; returns the test images."""
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in [("train", n_train), ("t10k", n_test)]:
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, n) + (np.arange(n) % 10).astype(np.uint8).tobytes())
    return images


def write_cifar10(root, n=10):
    """cifar-10-batches-py/ in torchvision's pickle format; returns the test batch. torchvision
    checks the real files' md5 sums: tests patch torchvision.datasets.cifar.check_integrity."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": list(np.arange(n) % 10)}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return batch


def write_food101(root, classes=("apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio")):
    """food-101/images/<class>/<id>.jpg with meta/{train,test}.json and meta/classes.txt."""
    base = Path(root) / "food-101"
    (base / "meta").mkdir(parents=True)
    rng = np.random.default_rng(2)
    meta = {"train": {}, "test": {}}
    for name in classes:
        (base / "images" / name).mkdir(parents=True)
        for i in range(6):
            size = tuple(rng.integers(20, 40, 2))
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(base / "images" / name / f"{i}.jpg")
            meta["train" if i < 4 else "test"].setdefault(name, []).append(f"{name}/{i}")
    for split, entries in meta.items():
        (base / "meta" / f"{split}.json").write_text(json.dumps(entries))
    (base / "meta" / "classes.txt").write_text("\n".join(classes) + "\n")
    return Path(root)
