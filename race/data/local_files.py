"""Which file of a local dataset copy cannot be read, and why (for the loaders' error messages).

`datasets` reports a truncated parquet file as "Parquet magic bytes not found in footer"
without naming the file; find_unreadable opens each data file of the copy on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

EXPECTED = {
    ".parquet": "a complete parquet file (it ends with the PAR1 footer)",
    ".json": "JSON (one object per line, or one JSON document)",
    ".jsonl": "JSON lines (one object per line)",
    ".csv": "CSV with a header row",
}


def _problem(file: Path) -> str | None:
    suffix = file.suffix
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.read_metadata(file)
        elif suffix in (".json", ".jsonl"):
            with open(file, encoding="utf-8") as handle:
                first = handle.readline()
            if first.strip():
                try:
                    json.loads(first)
                except ValueError:
                    if suffix == ".jsonl":
                        raise
                    json.loads(file.read_text(encoding="utf-8"))
        elif suffix == ".csv":
            with open(file, encoding="utf-8") as handle:
                if not handle.readline().strip():
                    return "has no header row"
    except Exception as error:  # any reader error: that file is the culprit
        return f"{type(error).__name__}: {error}"
    return None


def find_unreadable(path: str | Path) -> list[str]:
    """'<file>: expected <format> (<what the reader said>)' for each data file under `path`
    that does not read; [] when every file reads (the problem lies elsewhere)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        f for f in path.rglob("*") if f.is_file() and f.suffix in EXPECTED)
    found = []
    for file in files:
        problem = _problem(file) if file.suffix in EXPECTED else None
        if problem:
            found.append(f"{file}: expected {EXPECTED[file.suffix]} ({problem})")
    return found
