"""Callbacks that make a run fail loudly or stop cleanly.

NonFiniteGuard: a NaN/inf loss (or gradient) stops the run before the optimizer step, with the
step and the offending batch saved for inspection; or, with action="skip", that step is skipped.
InterruptCheckpoint: SIGTERM (cluster pre-emption, `kill`) or SIGINT (Ctrl+C) finishes the
current batch, saves a full resumable checkpoint (last.ckpt, with the RNG states) and stops the
run with RunInterrupted; train.py records status "interrupted" and exits non-zero.
"""

from __future__ import annotations

import logging
import os
import random
import signal
from pathlib import Path

import lightning as L
import numpy as np
import torch

log = logging.getLogger(__name__)

NONFINITE_ACTIONS = ("stop", "skip")


class NonFiniteLossError(RuntimeError):
    """The loss or a gradient was NaN or infinite (see the saved batch)."""


class RunInterrupted(Exception):
    """SIGTERM or SIGINT stopped training after a resumable checkpoint was saved."""

    def __init__(self, signum: int, checkpoint: str | None):
        self.signum, self.checkpoint = signum, checkpoint
        name = signal.Signals(signum).name
        where = (f"resume with ckpt_path={checkpoint}" if checkpoint
                 else "no step was trained since the start, so no checkpoint was written")
        super().__init__(f"{name} received: training stopped; {where}")


def to_cpu(batch):
    if isinstance(batch, torch.Tensor):
        return batch.detach().cpu()
    if isinstance(batch, dict):
        return {key: to_cpu(value) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_cpu(value) for value in batch)
    return batch


class NonFiniteGuard(L.Callback):
    """Checks the loss before backward (and the gradients before the optimizer step).

    action "stop": save {"global_step", "epoch", "batch_idx", "loss", "batch"} to
    <dirpath>/step_<global_step>.pt and raise NonFiniteLossError (the weights are still those
    before the bad step). action "skip": drop that step's gradients so the optimizer leaves the
    weights alone, log a warning and count it in `skipped`; more than `max_consecutive_skips`
    skipped steps in a row stop the run as "stop" would (the model itself has diverged).
    """

    def __init__(self, action: str = "stop", dirpath: str | None = None,
                 check_gradients: bool = True, max_consecutive_skips: int = 10):
        if action not in NONFINITE_ACTIONS:
            raise ValueError(f"nonfinite={action!r} is not an action; choose one of "
                             f"{', '.join(NONFINITE_ACTIONS)}")
        self.action, self.check_gradients = action, check_gradients
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped, self.consecutive = 0, 0
        self.batch, self.batch_idx = None, None
        self.loss = torch.tensor(float("nan"))
        self.skip_this_step = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batch, self.batch_idx, self.skip_this_step = batch, batch_idx, False

    def on_before_backward(self, trainer, pl_module, loss):
        self.loss = loss.detach()
        # with several processes only the gradients (all-reduced, so the same on every rank)
        # decide: a rank stopping alone on its own loss would leave the others waiting
        if trainer.world_size == 1 and not torch.isfinite(self.loss).all():
            self.handle(trainer, f"loss is {float(self.loss.float())}", self.loss)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        # under 16-mixed the GradScaler already skips steps with infinite gradients
        scaled = str(trainer.precision).startswith("16")
        if self.check_gradients and not scaled and not self.skip_this_step:
            grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
            if grads and not torch.stack([g.isfinite().all() for g in grads]).all():
                self.handle(trainer, f"a gradient is not finite (loss {float(self.loss.float())})",
                            self.loss)
        if self.skip_this_step:
            # Adam/AdamW/SGD leave parameters without a gradient untouched
            optimizer.zero_grad(set_to_none=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not self.skip_this_step:
            self.consecutive = 0
        self.batch = None  # do not keep the batch alive between steps

    def handle(self, trainer, what: str, loss) -> None:
        where = f"global step {trainer.global_step} (epoch {trainer.current_epoch}, " \
                f"batch {self.batch_idx})"
        if self.action == "skip" and self.consecutive < self.max_consecutive_skips:
            self.skip_this_step = True
            self.skipped += 1
            self.consecutive += 1
            log.warning("%s at %s: skipping this step (nonfinite=skip; %d skipped so far)",
                        what, where, self.skipped)
            return
        saved = self.save(trainer, loss)
        reason = (f"{self.consecutive} steps in a row were skipped; " if self.action == "skip"
                  else "")
        raise NonFiniteLossError(
            f"{what} at {where}: {reason}training stopped before the optimizer step. "
            f"The batch and step are saved in {saved}. Lower the learning rate, clip gradients "
            "(trainer.gradient_clip_val=1.0), train in float32 (trainer.precision=32-true), or "
            "skip such steps with nonfinite=skip.")

    def save(self, trainer, loss) -> Path | None:
        if self.dirpath is None or trainer.global_rank != 0:
            return None
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"step_{trainer.global_step}.pt"
        torch.save({"global_step": trainer.global_step, "epoch": trainer.current_epoch,
                    "batch_idx": self.batch_idx,
                    "loss": None if loss is None else loss.detach().float().cpu(),
                    "batch": to_cpu(self.batch)}, path)
        return path

    def state_dict(self) -> dict:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict) -> None:
        self.skipped = state_dict.get("skipped", 0)


def rng_states() -> dict:
    # plain types and tensors only, so that torch.load(weights_only=True) accepts the checkpoint
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = {"python": random.getstate(),
              "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(position),
                        int(has_gauss), float(cached_gaussian)),
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    kind, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss,
                         cached_gaussian))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class InterruptCheckpoint(L.Callback):
    """On SIGTERM or SIGINT: finish the batch, save <dirpath>/last.ckpt, raise RunInterrupted.

    The signal only sets a flag; the checkpoint is written at the start of the next training
    batch, where the previous step and its validation are complete, so resuming with
    ckpt_path=<dirpath>/last.ckpt continues exactly (the RNG states are in the checkpoint, and
    race.data.resumable restarts the epoch at the batch it stopped at). A second signal while
    the checkpoint is being written is ignored; the handlers are restored when training ends
    (a signal during the last validation stops the run there, before val/test evaluation).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, dirpath: str, filename: str = "last.ckpt"):
        self.path = Path(dirpath) / filename
        self.received: int | None = None
        self.previous: dict = {}
        self.restore_rng: dict | None = None

    # signal handling, installed only while training: after Lightning registered its own
    # SIGTERM handler (which would stop at the end of the epoch with exit status 0)

    def install_handlers(self) -> None:
        self.received = None
        for signum in self.SIGNALS:  # every rank installs them: each gets its own signal
            try:
                self.previous[signum] = signal.signal(signum, self.notice)
            except ValueError:  # not the main thread (e.g. a notebook's worker): skip
                pass

    def notice(self, signum, frame) -> None:
        if self.received is None:
            log.warning("%s received: stopping after this batch and saving %s",
                        signal.Signals(signum).name, self.path)
        self.received = signum

    def restore_handlers(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def on_train_end(self, trainer, pl_module):
        if self.received is not None:  # during the last validation: training is complete,
            self.stop(trainer, fetched_this_batch=False)  # but evaluation must not start
        self.restore_handlers()

    def on_exception(self, trainer, pl_module, exception):
        self.restore_handlers()

    # stopping

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.received is not None:
            self.stop(trainer, fetched_this_batch=True)

    def stop(self, trainer, fetched_this_batch: bool) -> None:
        signum = self.received
        for s in self.SIGNALS:  # the checkpoint must not be cut in half by a second Ctrl+C
            signal.signal(s, signal.SIG_IGN)
        checkpoint = None
        if trainer.global_step > 0:
            # a temporary file moved into place: a kill during the write leaves the old file
            partial = self.path.with_name(self.path.name + ".partial")
            if fetched_this_batch:
                # Lightning counted this batch as fetched before calling the hook; the
                # checkpoint holds the state after the previous step, so resume at this batch
                # (and validate on the same schedule: it counts from the fetched batches)
                progress = trainer.fit_loop.epoch_loop.batch_progress
                progress.total.ready -= 1
                progress.current.ready -= 1
            trainer.save_checkpoint(partial)
            if trainer.global_rank == 0:
                os.replace(partial, self.path)
            trainer.strategy.barrier("interrupt_checkpoint")
            checkpoint = str(self.path)
        raise RunInterrupted(signum, checkpoint)

    # the RNG states (dropout, ...) travel with the checkpoint, restored when training restarts

    def state_dict(self) -> dict:
        return {"rng": rng_states()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.restore_rng = state_dict.get("rng")

    def on_train_start(self, trainer, pl_module):
        self.install_handlers()
        # after the loaders were built and the sanity check ran (both draw random numbers),
        # so the next batch sees the state it would have seen without the interruption
        if self.restore_rng is not None:
            set_rng_states(self.restore_rng)
            self.restore_rng = None
