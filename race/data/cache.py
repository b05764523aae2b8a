"""Atomic, settings-keyed cache for generated datasets (ListOps, the Pathfinder-like generator).

A cache file is one ``torch.save`` of

    {"format": 1, "settings": {...}, "payload": {split: {name: Tensor}}, "checksum": sha256 hex}

named ``<readable prefix>-<hash of the settings>.pt`` under ``data_dir``. It is written to a
temporary file in the same folder and moved into place with ``os.replace`` (atomic on POSIX), all
under a ``filelock`` on ``<file>.lock``: a killed run leaves at most a stray ``*.tmp`` (never read,
removed by the next writer) and two concurrent generators end with one valid file. A file that
does not load, whose settings differ, or whose checksum does not match is logged and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from filelock import FileLock

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
Payload = dict[str, dict[str, torch.Tensor]]


def default_data_dir() -> Path:
    """``$RACE_DATA_DIR`` if set, else ``<repo>/data`` (next to the ``race`` package)."""
    if os.environ.get("RACE_DATA_DIR"):
        return Path(os.environ["RACE_DATA_DIR"])
    return Path(__file__).resolve().parents[2] / "data"


def settings_hash(settings: dict) -> str:
    """Stable short hash of JSON-able settings (key order does not matter)."""
    text = json.dumps({"cache_format": CACHE_FORMAT, **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_path(data_dir: str | os.PathLike | None, prefix: str, settings: dict) -> Path:
    """``<data_dir>/<prefix>-<hash>.pt``; the prefix is for people, the hash is the key."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return root / f"{prefix}-{settings_hash(settings)}.pt"


def payload_checksum(payload: Payload) -> str:
    digest = hashlib.sha256()
    for split in sorted(payload):
        for name in sorted(payload[split]):
            tensor = payload[split][name].contiguous()
            digest.update(f"{split}/{name}/{tensor.dtype}/{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _read_valid(path: Path, settings: dict) -> Payload | None:
    """The payload if ``path`` holds a complete cache for ``settings``, else None (and why)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated or foreign file: any load error means "rebuild"
        log.warning("cache %s is unreadable (%s); rebuilding it", path, error)
        return None
    if not isinstance(blob, dict) or blob.get("format") != CACHE_FORMAT:
        log.warning("cache %s has an unknown format; rebuilding it", path)
        return None
    if blob.get("settings") != settings:
        log.warning("cache %s was made with other settings; rebuilding it", path)
        return None
    if blob.get("checksum") != payload_checksum(blob["payload"]):
        log.warning("cache %s fails its checksum; rebuilding it", path)
        return None
    return blob["payload"]


def write_atomically(path: Path, blob: dict) -> None:
    """torch.save to a temporary file in the same folder, then os.replace onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(blob, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_payload(path: Path, settings: dict, build: Callable[[], Payload]) -> Payload:
    """Load the cache at ``path`` if it is complete and matches ``settings``; else build + write.

    ``settings`` must be JSON-able; they are stored in the file and compared on load.
    """
    if path.exists():
        # Files only appear through os.replace, so reading without the lock is safe.
        payload = _read_valid(path, settings)
        if payload is not None:
            return payload
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():  # another process may have finished it while we waited
            payload = _read_valid(path, settings)
            if payload is not None:
                return payload
        # We hold the lock, so no writer is active: leftovers are from killed runs.
        for stale in path.parent.glob(path.name + ".*.tmp"):
            stale.unlink(missing_ok=True)
        log.info("building %s", path)
        payload = build()
        blob = {
            "format": CACHE_FORMAT,
            "settings": settings,
            "payload": payload,
            "checksum": payload_checksum(payload),
        }
        write_atomically(path, blob)
        return payload
