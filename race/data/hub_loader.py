"""Load a Hugging Face dataset from the hub or from a local copy in the hub's format.

``local_path`` may be
  - a directory of the hub's data files (e.g. ``plain_text/train-00000-of-00001.parquet``,
    ``test-...``): split names come from the file names, as on the hub;
  - a directory written by ``DatasetDict.save_to_disk`` (it holds ``dataset_dict.json``);
  - a mapping {split: file or glob} of parquet/csv/json files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .local_files import find_unreadable

_BUILDER_BY_SUFFIX = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}


def _builder_for(files: Mapping) -> str:
    suffixes = set()
    for value in files.values():
        for file in [value] if isinstance(value, str | os.PathLike) else value:
            suffixes.add(Path(str(file)).suffix)
    builders = {_BUILDER_BY_SUFFIX.get(s) for s in suffixes}
    if len(builders) != 1 or None in builders:
        raise ValueError(
            f"local_path files must all be one of {sorted(_BUILDER_BY_SUFFIX)}; "
            f"got {sorted(suffixes)}"
        )
    return builders.pop()


def load_hf_dataset(
    name: str,
    local_path: str | os.PathLike | Mapping | None = None,
    cache_dir: str | os.PathLike | None = None,
    option: str = "data.local_path",
):
    """-> datasets.DatasetDict from ``local_path`` if given, else from the hub by ``name``.

    ``option`` is the config key named in error messages (where the user sets local_path).
    """
    import datasets  # heavy: imported only when a dataset is actually loaded

    cache_dir = str(cache_dir) if cache_dir is not None else None
    if local_path is not None:
        if isinstance(local_path, Mapping):
            files = {
                split: [str(f) for f in ([v] if isinstance(v, str | os.PathLike) else v)]
                for split, v in local_path.items()
            }
            return datasets.load_dataset(_builder_for(files), data_files=files, cache_dir=cache_dir)
        path = Path(local_path).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"{option}={str(local_path)!r} does not exist; point it at a local copy of "
                f"{name!r} (a directory of the hub's parquet files, or a save_to_disk directory)"
            )
        if (path / "dataset_dict.json").exists():
            return datasets.load_from_disk(str(path))
        try:
            return datasets.load_dataset(str(path), cache_dir=cache_dir)
        except Exception as error:  # name the file at fault: `datasets` often does not
            unreadable = find_unreadable(path)
            detail = "; ".join(unreadable) if unreadable else f"{type(error).__name__}: {error}"
            raise ValueError(
                f"{option}={str(local_path)!r} is not a readable copy of {name!r}: {detail}. "
                "Expected the hub's data files (parquet, csv or json(l), named by split: "
                "train*, test*); re-copy the damaged file."
            ) from error
    try:
        return datasets.load_dataset(name, cache_dir=cache_dir)
    except Exception as error:  # offline, not cached, renamed...: one actionable message
        raise FileNotFoundError(
            f"could not load the Hugging Face dataset {name!r} ({type(error).__name__}: {error}). "
            f"With network access it is downloaded once into the datasets cache; offline "
            f"(HF_DATASETS_OFFLINE=1) or without network, set {option} to a local copy: a "
            f"directory of the hub's parquet files (as in the hub repository {name}), a mapping "
            "{train: file, test: file}, or a DatasetDict.save_to_disk directory."
        ) from error
