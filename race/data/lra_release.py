"""Where the Long Range Arena release lives: its URL and its default place under data_dir.

The release (lra_release.gz, a tar.gz archive) holds tsv_data/ (Retrieval: AAN pairs) and
pathfinder32/ ... pathfinder256/ (Pathfinder, Path-X); unpack it into data_dir or point the
data module's path option at the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

LRA_RELEASE_URL = "https://storage.googleapis.com/long-range-arena/lra_release.gz"


def default_release_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "lra_release"


def release_folder(data_path: str | os.PathLike | None, data_dir: Path, *parts: str) -> Path:
    """data_path when given, else the release's folder `parts` unpacked under data_dir."""
    if data_path is not None:
        return Path(data_path).expanduser()
    return default_release_dir(data_dir).joinpath(*parts)
