"""Every run under a results root as one DataFrame row, read from its metrics.json.

The folder says which run it is: <runs root>/<scale>/<experiment>/seed<seed>/metrics.json
(race.report.grid); the record says how it went (train.py: status, metrics, steps, speed,
memory, device, resolved config, versions, git).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

COLUMNS = ["scale", "experiment", "seed", "status", "error", "metrics", "global_step",
           "max_steps", "seconds_per_step", "train_time_s", "peak_memory_mb", "device",
           "hostname", "precision", "torch", "seq_len", "model", "batch_size", "command",
           "git_commit", "folder"]


def read_metrics_json(path: str | Path) -> dict:
    """The record, or a failed one that says why it could not be read (a half-written file)."""
    try:
        record = json.loads(Path(path).read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        return record
    except (OSError, ValueError) as error:
        return {"status": "failed",
                "error": {"type": type(error).__name__, "message": f"unreadable {path}: {error}"}}


def error_line(record: dict) -> str | None:
    error = record.get("error")
    if not error:
        return None
    message = str(error.get("message", "")).strip().splitlines()
    return f"{error.get('type', 'Error')}: {message[0] if message else ''}".strip()


def describe_model(config: dict) -> str | None:
    model = config.get("model") or {}
    if not model:
        return None
    return (f"{model.get('depth')} x d{model.get('dim')}, {model.get('heads')} heads, "
            f"MLP {model.get('mlp_dim')}")


def seq_len_of(config: dict) -> int | None:
    """Tokens per sequence: data.seq_len, else (images) (image_size / patch_size) ** 2."""
    data = config.get("data") or {}
    if data.get("seq_len") is not None:
        return int(data["seq_len"])
    if data.get("image_size") and data.get("patch_size"):
        return int((int(data["image_size"]) // int(data["patch_size"])) ** 2)
    return None


def run_row(path: Path, runs_root: Path) -> dict | None:
    parts = path.parent.relative_to(runs_root).parts  # (scale, table, name..., seed<k>)
    if len(parts) < 3 or not parts[-1].startswith("seed"):
        return None  # not a run folder of the grid (e.g. a stray multirun)
    record = read_metrics_json(path)
    config = record.get("config") or {}
    trainer = config.get("trainer") or {}
    seed = parts[-1][len("seed"):]
    return {
        "scale": parts[0],
        "experiment": "/".join(parts[1:-1]),
        "seed": int(seed) if seed.isdigit() else config.get("seed"),
        "status": record.get("status", "failed"),
        "error": error_line(record),
        "metrics": record.get("metrics") or {},
        "global_step": record.get("global_step"),
        "max_steps": trainer.get("max_steps"),
        "seconds_per_step": record.get("seconds_per_step"),
        "train_time_s": record.get("train_time_s"),
        "peak_memory_mb": record.get("peak_memory_mb"),
        "device": record.get("device"),
        "hostname": record.get("hostname"),
        "precision": record.get("precision"),
        "torch": (record.get("versions") or {}).get("torch"),
        "seq_len": seq_len_of(config),
        "model": describe_model(config),
        "batch_size": (config.get("data") or {}).get("batch_size"),
        "command": record.get("command"),
        "git_commit": (record.get("git") or {}).get("commit"),
        "folder": str(path.parent),
    }


def collect_runs(runs_root: str | Path) -> pd.DataFrame:
    """One row per metrics.json under runs_root (columns: COLUMNS), sorted by folder."""
    runs_root = Path(runs_root)
    rows = []
    if runs_root.is_dir():
        for path in sorted(runs_root.rglob("metrics.json")):
            row = run_row(path, runs_root)
            if row is not None:
                rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
