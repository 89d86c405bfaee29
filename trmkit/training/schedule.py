"""Learning-rate schedule of the official code (`cosine_schedule_with_warmup_lr_lambda` in
its `pretrain.py`): linear warmup from 0, then cosine decay to ``lr_min_ratio * base``
(with the default ratio 1.0: constant after warmup)."""

from __future__ import annotations

import math


def lr_at(
    step: int, base_lr: float, warmup_steps: int, total_steps: int, lr_min_ratio: float = 1.0
) -> float:
    """LR for optimizer step ``step`` (the already-incremented counter: the first step is 1)."""
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    cosine = max(0.0, (1.0 - lr_min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    return base_lr * (lr_min_ratio + cosine)


def set_lr(optimizers, step: int, warmup_steps: int, total_steps: int, lr_min_ratio: float):
    """Set every param group's ``lr`` from its ``base_lr``."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, group["base_lr"], warmup_steps, total_steps, lr_min_ratio)
