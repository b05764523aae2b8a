"""Hydra callback: at the end of a multirun, one line per job from its metrics.json, and a
non-zero exit when any job failed (conf/hydra/default.yaml lists it under hydra.callbacks).

train.py lets a failing job of a multirun record its failure (metrics.json: status "failed" and
the exception) and return, so that the other jobs still run; this callback then reports the
failures and ends the command with MultirunFailed: the summary on stderr, exit status 1.
A job folder without metrics.json (a job killed outright) counts as failed.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class MultirunFailed(SystemExit):
    """Some jobs of a multirun failed; the message lists them. A SystemExit, because Hydra turns
    an Exception raised by a callback into a warning; Python prints the message, exit status 1."""


def job_records(sweep_dir: Path, since: float = 0.0) -> list[tuple[Path, dict | None]]:
    """(job folder, its metrics.json or None) for every job folder (one holding .hydra/) whose
    config was written at or after `since` (a reused sweep dir keeps older jobs' folders)."""
    jobs = sorted((p.parent for p in sweep_dir.glob("**/.hydra")
                   if p.stat().st_mtime >= since), key=job_order)
    records = []
    for job in jobs:
        path = job / "metrics.json"
        try:
            records.append((job, json.loads(path.read_text())))
        except (OSError, ValueError):
            records.append((job, None))
    return records


def job_order(folder: Path):
    number = folder.name.split("_", 1)[0]
    return (0, int(number), folder.name) if number.isdigit() else (1, 0, folder.name)


def summary_lines(records: list[tuple[Path, dict | None]], sweep_dir: Path) -> list[str]:
    lines = [f"{'job':<40} {'status':<12} {'val/acc':>8} {'test/acc':>8}  error"]
    for job, record in records:
        name = str(job.relative_to(sweep_dir))
        if record is None:
            lines.append(f"{name:<40} {'no record':<12} {'':>8} {'':>8}  no metrics.json")
            continue
        metrics = record.get("metrics") or {}
        error = record.get("error") or {}
        message = f"{error.get('type', '')}: {error.get('message', '')}" if error else ""
        first_line = message.splitlines()[0] if message else ""
        lines.append(f"{name:<40} {record.get('status', '?'):<12} "
                     f"{format_metric(metrics.get('val/acc')):>8} "
                     f"{format_metric(metrics.get('test/acc')):>8}  {first_line}")
    return lines


def format_metric(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else ""


class MultirunSummary(Callback):
    def __init__(self):
        self.started = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time() - 1.0  # file times may be rounded to the second

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        records = job_records(sweep_dir, since=self.started)
        if not records:
            return
        lines = summary_lines(records, sweep_dir)
        log.info("multirun summary (%s):\n%s", sweep_dir, "\n".join(lines))
        failed = [job for job, record in records
                  if record is None or record.get("status") != "completed"]
        if failed:
            names = ", ".join(str(job.relative_to(sweep_dir)) for job in failed)
            raise MultirunFailed(
                f"{len(failed)} of {len(records)} jobs did not complete: {names}. Each job's "
                f"metrics.json under {sweep_dir} holds its error and traceback.\n"
                + "\n".join(lines))
