"""Callbacks: training speed (and the time left) in the progress bar, peak memory."""

from __future__ import annotations

import datetime
import resource
import sys
import time
from collections import deque

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar


def batch_size_and_tokens(batch) -> tuple[int, int]:
    """Samples and non-padding tokens of a contract batch (see docs/CONTRACTS.md)."""
    size = int(batch["labels"].shape[0]) if isinstance(batch, dict) and "labels" in batch else 0
    tokens = 0
    if isinstance(batch, dict):
        for key, mask in batch.items():
            if key.startswith("padding_mask"):
                tokens += int((~mask).sum())
    return size, tokens


class SpeedMonitor(L.Callback):
    """Measures optimizer steps/s over the fit and samples/s, tokens/s over recent steps.

    Logs perf/samples_per_s and perf/tokens_per_s (progress bar) every `log_every` steps and
    keeps start_step (the step a resumed run started from) for the run record.
    """

    def __init__(self, window: int = 20, log_every: int = 10):
        self.window, self.log_every = window, log_every
        self.start_step = 0
        self.start_time: float | None = None
        self.train_seconds = 0.0
        self.recent: deque = deque(maxlen=window)  # (time, samples, tokens) per step
        self.last_time: float | None = None

    def on_train_start(self, trainer, pl_module):
        self.start_step = trainer.global_step
        self.train_seconds = 0.0
        self.last_time = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.last_time = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.last_time is None:
            return
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # count the step's kernels, not their launch
        elapsed = time.perf_counter() - self.last_time
        self.train_seconds += elapsed
        samples, tokens = batch_size_and_tokens(batch)
        self.recent.append((elapsed, samples, tokens))
        if trainer.global_step % self.log_every == 0:
            seconds = sum(r[0] for r in self.recent) or float("nan")
            pl_module.log("perf/samples_per_s", sum(r[1] for r in self.recent) / seconds,
                          prog_bar=True, on_step=True, on_epoch=False)
            pl_module.log("perf/tokens_per_s", sum(r[2] for r in self.recent) / seconds,
                          on_step=True, on_epoch=False)

    def steps_per_second(self, trainer) -> float | None:
        """Optimizer steps per second of training time (validation excluded) in this fit."""
        steps = trainer.global_step - self.start_step
        return steps / self.train_seconds if self.train_seconds > 0 and steps > 0 else None

    def seconds_left(self, trainer) -> float | None:
        """Training time left at the recent speed (None when the run has no max_steps)."""
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        if total is None and trainer.max_epochs and trainer.num_training_batches != float("inf"):
            total = trainer.max_epochs * trainer.num_training_batches
        seconds = sum(r[0] for r in self.recent)
        if not total or not self.recent or seconds <= 0:
            return None
        return (total - trainer.global_step) * seconds / len(self.recent)


class TrainingProgressBar(TQDMProgressBar):
    """TQDM bar with the run's remaining training time ("left") and without the version."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        speed = next((c for c in trainer.callbacks if isinstance(c, SpeedMonitor)), None)
        left = speed.seconds_left(trainer) if speed is not None else None
        if left is not None:
            metrics["left"] = str(datetime.timedelta(seconds=round(left)))
        return metrics


def peak_memory_mb(device: torch.device | None = None) -> tuple[float, str]:
    """(peak MiB, what was measured): CUDA's peak allocation, else the process's peak RSS."""
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB
    return rss_bytes / 2**20, "process_peak_rss"


class PeakMemoryMonitor(L.Callback):
    """Resets CUDA peak statistics when fitting starts; logs perf/peak_memory_mb per epoch."""

    def __init__(self):
        self.device: torch.device | None = None

    def on_fit_start(self, trainer, pl_module):
        self.device = pl_module.device
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def on_train_epoch_end(self, trainer, pl_module):
        pl_module.log("perf/peak_memory_mb", peak_memory_mb(pl_module.device)[0],
                      on_step=False, on_epoch=True)

    def peak(self) -> tuple[float, str]:
        return peak_memory_mb(self.device)
