"""Faults on purpose, to drill the guards (race.tasks.guards) from the command line or in tests.

    python train.py +callbacks.fault._target_=race.tasks.fault_injection.NonFiniteAtStep \
        +callbacks.fault.step=3
"""

from __future__ import annotations

import os
import signal
import time

import lightning as L
import torch


class NonFiniteAtStep(L.Callback):
    """At global step `step`, fill the first floating parameter with `value` (NaN by default)
    for that one forward/backward, then put the weights back before the optimizer step: the loss
    of that batch is non-finite, as after an overflow, and the model is unharmed otherwise."""

    def __init__(self, step: int, value: float = float("nan")):
        self.step, self.value = step, value
        self.saved: tuple[torch.nn.Parameter, torch.Tensor] | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step != self.step:
            return
        parameter = next(p for p in pl_module.parameters() if p.is_floating_point())
        self.saved = (parameter, parameter.detach().clone())
        with torch.no_grad():
            parameter.fill_(self.value)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self.saved is not None:
            parameter, original = self.saved
            with torch.no_grad():
                parameter.copy_(original)
            self.saved = None


class SlowSteps(L.Callback):
    """Sleep `seconds` after every training step: widens the window in which a drill's signal
    (SIGTERM, SIGINT) lands mid-training on a tiny model."""

    def __init__(self, seconds: float = 0.1):
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.seconds)


class SignalAtStep(L.Callback):
    """Send `signum` (SIGTERM by default) to this process when global step `step` is reached:
    after that training batch, or with when="validation_end" after the validation there."""

    def __init__(self, step: int, signum: int = signal.SIGTERM, when: str = "train_batch_end"):
        if when not in ("train_batch_end", "validation_end"):
            raise ValueError(f"when must be train_batch_end or validation_end, got {when!r}")
        self.step, self.signum, self.when = step, int(signum), when

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.when == "train_batch_end" and trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)

    def on_validation_end(self, trainer, pl_module):
        if self.when == "validation_end" and trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
