"""AdamW with decoupled weight decay on matrices only, and a warm-up then decay schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

SCHEDULES = ("constant", "linear", "cosine", "rsqrt")


def build_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.0,
                    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
    """AdamW; biases, LayerNorm weights and scalars (RACE's temperature) are not decayed."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps)


def schedule_factor(step: int, name: str = "cosine", warmup_steps: int = 0,
                    total_steps: int = 1, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based).

    Linear warm-up over warmup_steps, then: constant; linear or cosine decay to min_ratio at
    total_steps; or rsqrt, the LRA decay sqrt(warmup / step) (LRA's base rate 0.05 under
    constant * linear_warmup * rsqrt_decay is a peak rate of 0.05 / sqrt(warmup)).
    """
    if name not in SCHEDULES:
        raise ValueError(f"scheduler name must be one of {SCHEDULES}, got {name!r}")
    step = step + 1  # the first update already uses a non-zero rate
    warmup = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
    if name == "constant":
        return warmup
    if name == "rsqrt":
        return warmup * math.sqrt(max(warmup_steps, 1) / max(step, warmup_steps, 1))
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, progress))
    if name == "linear":
        decay = 1.0 - progress
    else:
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    return warmup * (min_ratio + (1.0 - min_ratio) * decay)


def optimizers_for(module, optimizer: dict, scheduler: dict) -> dict:
    """What a LightningModule's configure_optimizers returns: AdamW on module.model and the
    schedule stepped every optimizer step over the trainer's estimated total."""
    adamw = build_optimizer(module.model, **optimizer)
    total_steps = max(1, int(module.trainer.estimated_stepping_batches))
    lr_lambda = torch.optim.lr_scheduler.LambdaLR(
        adamw, lambda step: schedule_factor(step, total_steps=total_steps, **scheduler))
    return {"optimizer": adamw, "lr_scheduler": {"scheduler": lr_lambda, "interval": "step"}}
