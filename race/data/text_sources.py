"""Where each text dataset of the paper lives on the Hugging Face hub, and how to read it.

`load_text_split(spec, split, ...)` returns a `datasets.Dataset` for split "train", "val" or
"test". With `data_path` it reads a local copy in the hub's own format (a directory of
parquet / json(l) / csv / arrow files named by split, as `huggingface-cli download --repo-type
dataset <hub name> --local-dir <dir>` leaves it, or a `save_to_disk` folder); otherwise it calls
`datasets.load_dataset(hub name, config)`, which offline fails: that becomes a
`DatasetUnavailableError` naming the dataset and the option to set.

Splits: the official held-out split with labels is "test". Where the hub has no separate
labelled validation split, "val" is carved from train (`val_fraction`, seeded). GLUE's test
labels are hidden (-1), so for SST-2 and QNLI the GLUE validation split is "test".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .local_files import find_unreadable

SPLITS = ("train", "val", "test")


class DatasetUnavailableError(FileNotFoundError):
    """No network and no local copy: the message names the dataset and the option to set."""


@dataclass(frozen=True)
class TextDatasetSpec:
    name: str  # the suite's name (task file names)
    hub_name: str
    hub_config: str | None
    text_fields: tuple[str, ...]
    label_field: str | None = None
    num_classes: int | None = None
    # our split -> hub split; None means carved from the hub's train split
    hub_splits: dict[str, str | None] = field(
        default_factory=lambda: {"train": "train", "val": None, "test": "test"})
    sentence_pair: bool = False  # two text fields joined by [SEP] (else joined by a space)
    append_eos: bool = False  # language modelling: end each row with the eos token
    # the folder of the hub repo that holds this config's data files (used in local copies,
    # whose other folders may hold other configs or other formats)
    hub_data_dir: str | None = None
    hub_revision: str | None = None  # a script-only repo is read from its parquet export

    def describe(self) -> str:
        config = f", config {self.hub_config}" if self.hub_config else ""
        return f"{self.name} (hub: {self.hub_name}{config})"


TEXT_DATASETS: dict[str, TextDatasetSpec] = {
    spec.name: spec for spec in [
        # classification
        TextDatasetSpec("imdb", "stanfordnlp/imdb", "plain_text", ("text",), "label", 2,
                        hub_data_dir="plain_text"),
        TextDatasetSpec("sst2", "nyu-mll/glue", "sst2", ("sentence",), "label", 2,
                        {"train": "train", "val": None, "test": "validation"},
                        hub_data_dir="sst2"),
        TextDatasetSpec("yahoo", "community-datasets/yahoo_answers_topics",
                        "yahoo_answers_topics",
                        ("question_title", "question_content", "best_answer"), "topic", 10,
                        hub_data_dir="yahoo_answers_topics"),
        TextDatasetSpec("qnli", "nyu-mll/glue", "qnli", ("question", "sentence"), "label", 2,
                        {"train": "train", "val": None, "test": "validation"},
                        sentence_pair=True, hub_data_dir="qnli"),
        # the repo's data/ is the default config; no_ref/ (references removed) is another
        TextDatasetSpec("arxiv", "ccdv/arxiv-classification", None, ("text",), "label", 11,
                        {"train": "train", "val": "validation", "test": "test"},
                        hub_data_dir="data"),
        # language modelling (rows are lines of raw text that keep their "\n")
        TextDatasetSpec("wikitext103", "Salesforce/wikitext", "wikitext-103-raw-v1", ("text",),
                        hub_splits={"train": "train", "val": "validation", "test": "test"},
                        hub_data_dir="wikitext-103-raw-v1"),
        TextDatasetSpec("ptb", "ptb-text-only/ptb_text_only", "penn_treebank", ("sentence",),
                        hub_splits={"train": "train", "val": "validation", "test": "test"},
                        append_eos=True, hub_data_dir="penn_treebank",
                        hub_revision="refs/convert/parquet"),
        # the repo also holds TinyStories(V2-GPT4)-*.txt; data/ has the parquet files
        TextDatasetSpec("tinystories", "roneneldan/TinyStories", None, ("text",),
                        hub_splits={"train": "train", "val": None, "test": "validation"},
                        append_eos=True, hub_data_dir="data"),
    ]
}


def text_dataset_spec(name: str) -> TextDatasetSpec:
    if name not in TEXT_DATASETS:
        raise ValueError(f"unknown text dataset {name!r}; choose one of "
                         f"{', '.join(TEXT_DATASETS)}")
    return TEXT_DATASETS[name]


def load_hub_split(spec: TextDatasetSpec, hub_split: str, data_path: str | os.PathLike | None,
                   cache_dir: str | os.PathLike | None):
    """One split exactly as the hub names it, from `data_path` or the hub.

    `cache_dir` holds the arrow files `datasets` makes from a local copy; hub datasets use the
    usual Hugging Face cache (HF_HOME), so a copy downloaded earlier is found offline.
    """
    import datasets

    if data_path is not None:
        return _load_local_copy(spec, hub_split, Path(data_path).expanduser(), cache_dir)
    try:
        return datasets.load_dataset(spec.hub_name, spec.hub_config, split=hub_split,
                                     revision=spec.hub_revision)
    except Exception as error:  # offline: ConnectionError, DatasetNotFoundError, OSError, ...
        raise DatasetUnavailableError(
            f"{spec.describe()} could not be loaded: {type(error).__name__}: {error}. With no "
            f"network, point the suite at a local copy in the hub's format with "
            f"data.data_path=/path/to/{spec.name} (e.g. made elsewhere with `huggingface-cli "
            f"download --repo-type dataset {spec.hub_name} --local-dir /path/to/{spec.name}`), "
            f"or load it once with network access so that the Hugging Face cache holds it"
        ) from error


def _load_local_copy(spec: TextDatasetSpec, hub_split: str, path: Path, cache_dir):
    import datasets

    if not path.exists():
        raise DatasetUnavailableError(
            f"data.data_path={path} does not exist; it should be a local copy of "
            f"{spec.describe()} (a directory of its parquet/json files)")
    if (path / "dataset_dict.json").is_file():  # DatasetDict.save_to_disk
        return datasets.load_from_disk(str(path))[hub_split]
    # A snapshot of a hub repo with several configs keeps each config in its own folder.
    folder = spec.hub_data_dir
    data_dir = folder if folder and (path / folder).is_dir() else None
    try:
        loaded = datasets.load_dataset(str(path), data_dir=data_dir,
                                       cache_dir=None if cache_dir is None else str(cache_dir))
    except Exception as error:
        unreadable = find_unreadable(path / data_dir if data_dir else path)
        detail = "; ".join(unreadable) if unreadable else f"{type(error).__name__}: {error}"
        raise DatasetUnavailableError(
            f"could not read {path} as a local copy of {spec.describe()}: "
            f"{detail}. data.data_path must hold the hub's files "
            f"(parquet, json/jsonl or csv, named by split: train*, validation*, test*)"
        ) from error
    if hub_split not in loaded:
        raise DatasetUnavailableError(
            f"the local copy {path} of {spec.describe()} has splits {sorted(loaded)} but "
            f"not {hub_split!r}")
    split = loaded[hub_split]
    expected = [*spec.text_fields, *([spec.label_field] if spec.label_field else [])]
    missing = [column for column in expected if column not in split.column_names]
    if missing:
        raise ValueError(
            f"the {hub_split!r} split of {path} (a local copy of {spec.describe()}) lacks "
            f"column(s) {missing}: it has {split.column_names}, expected {expected} as on the hub")
    return split


def carve_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, val) row indices of a train split of n rows; both sorted."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * val_fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def load_text_split(spec: TextDatasetSpec, split: str, *, data_path=None, cache_dir=None,
                    val_fraction: float = 0.05, seed: int = 0):
    """Our split ("train", "val", "test") of a dataset, carving val from train when needed."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    hub_split = spec.hub_splits[split]
    if hub_split is not None and (split != "train" or spec.hub_splits["val"] is not None):
        return load_hub_split(spec, hub_split, data_path, cache_dir)
    train = load_hub_split(spec, spec.hub_splits["train"], data_path, cache_dir)
    train_rows, val_rows = carve_indices(len(train), val_fraction, seed)
    return train.select(train_rows if split == "train" else val_rows)


def row_texts(spec: TextDatasetSpec, rows: dict) -> list[str] | list[tuple[str, str]]:
    """Texts of a batch of rows (a dict of columns): one string each, or pairs."""
    columns = [[value or "" for value in rows[f]] for f in spec.text_fields]
    if spec.sentence_pair:
        return list(zip(columns[0], columns[1]))
    if len(columns) == 1:
        return columns[0]
    return [" ".join(part for part in parts if part) for parts in zip(*columns)]
