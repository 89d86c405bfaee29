"""How long the loop runs, when it logs and evaluates, and when it writes a checkpoint.

The budget is `trmkit.data.loader.step_budget` of ``train.epochs`` unless ``--max-steps`` or
``train.max_steps`` (> 0) says otherwise; logging is every ``train.log_every`` steps.

Evaluation runs every ``train.eval_interval`` epochs (as the official code). Checkpoints
have their own clock so a killed run loses at most one interval whatever the evaluation
cadence: every ``train.checkpoint_every_steps`` steps and every
``train.checkpoint_every_minutes`` minutes of wall clock (0 turns either off), after every
evaluation when ``train.checkpoint_every_eval``, and always at the last step.

Under several processes the main process's clock decides and the decision is broadcast,
so every rank enters the (collective) checkpoint write at the same step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs
import torch
import torch.distributed as dist

from trmkit.config import TrainSection
from trmkit.data.loader import step_budget
from trmkit.errors import ConfigError


@attrs.frozen
class StepPlan:
    """The step counts of a run, resolved from the recipe and the training split."""

    total_steps: int
    steps_per_epoch: float
    eval_every: int
    """steps between evaluations (0: only at the end)."""
    log_every: int

    @classmethod
    def resolve(
        cls, meta: Any, global_batch: int, train: TrainSection, max_steps: int | None = None
    ) -> StepPlan:
        """``meta`` is the training split's `SplitMeta`; ``max_steps`` is ``--max-steps``."""
        per_epoch = step_budget(meta, global_batch)
        total = int(step_budget(meta, global_batch, train.epochs))
        if max_steps is not None:
            total = int(max_steps)
        elif train.max_steps is not None and train.max_steps > 0:
            total = train.max_steps
        if total <= 0:
            raise ConfigError(
                f"the step budget is 0 (epochs={train.epochs}, {meta.total_groups} groups, "
                f"global batch {global_batch}); raise train.epochs or pass --max-steps"
            )
        eval_every = (
            max(1, round(train.eval_interval * per_epoch)) if train.eval_interval > 0 else 0
        )
        return cls(
            total_steps=total,
            steps_per_epoch=per_epoch,
            eval_every=eval_every,
            log_every=max(1, train.log_every),
        )

    def after(
        self,
        step: int,
        checkpoints: CheckpointClock,
        budget: TimeBudget,
        device: torch.device,
        world_size: int = 1,
    ) -> Due:
        """What the loop does after ``step``: the same answer on every rank."""
        out_of_time = step < self.total_steps and budget.spent(device, world_size)
        last = step == self.total_steps or out_of_time
        evaluate = bool(self.eval_every) and step % self.eval_every == 0 or last
        save = checkpoints.due(
            step, evaluated=evaluate, last=last, device=device, world_size=world_size
        )
        # windows end at every checkpoint too, so a resumed run logs the same lines
        log = step % self.log_every == 0 or evaluate or save
        return Due(log=log, evaluate=evaluate, save=save, out_of_time=out_of_time)


@attrs.frozen
class Due:
    """After a step: write the train record, evaluate, write a checkpoint, stop because
    ``train.max_minutes`` is spent."""

    log: bool
    evaluate: bool
    save: bool
    out_of_time: bool


@attrs.define
class TimeBudget:
    """A wall-clock budget (``train.max_minutes``; the checkpoint interval): whether
    ``seconds`` (0: none) have passed since ``started``. Rank 0's clock decides for every
    rank, so all act at the same step."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    """the wall clock (tests pass a fake one)."""
    started: float = 0.0

    @classmethod
    def from_recipe(
        cls, train: TrainSection, clock: Callable[[], float] = time.monotonic
    ) -> TimeBudget:
        return cls(60.0 * train.max_minutes, clock, clock())

    def spent(self, device: torch.device, world_size: int = 1) -> bool:
        if not self.seconds:
            return False
        flag = self.clock() - self.started >= self.seconds
        if world_size <= 1:
            return flag
        box = torch.tensor([int(flag)], device=device)
        dist.broadcast(box, src=0)
        return bool(box.item())


@attrs.define
class CheckpointClock(TimeBudget):
    """Decides after each step whether a checkpoint is due: the time budget of
    ``train.checkpoint_every_minutes``, restarted by `mark`, and the step interval."""

    every_steps: int = 0
    after_eval: bool = True

    @classmethod
    def from_recipe(
        cls, train: TrainSection, clock: Callable[[], float] = time.monotonic
    ) -> CheckpointClock:
        for key, use in (
            ("checkpoint_every_steps", "a number of steps >= 1, or 0 for no step interval"),
            ("checkpoint_every_minutes", "minutes > 0, or 0 for no time interval"),
        ):
            if getattr(train, key) < 0:
                raise ConfigError(f"train.{key} is {getattr(train, key)}; use {use}")
        seconds = 60.0 * train.checkpoint_every_minutes
        return cls(
            seconds, clock, clock(), train.checkpoint_every_steps, train.checkpoint_every_eval
        )

    def mark(self) -> None:
        """A checkpoint was written (or the run started/resumed) now."""
        self.started = self.clock()

    def due(
        self, step: int, *, evaluated: bool, last: bool, device: torch.device, world_size: int = 1
    ) -> bool:
        """Whether to write a checkpoint after ``step``: the same answer on every rank."""
        return (
            last
            or (evaluated and self.after_eval)
            or (self.every_steps > 0 and step % self.every_steps == 0)
            or self.spent(device, world_size)
        )


__all__ = ["CheckpointClock", "Due", "StepPlan", "TimeBudget"]
