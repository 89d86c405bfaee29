"""Run a model for K supervision steps on one batch.

The one loop behind `trmkit eval` and `trmkit solve`: the model is in eval mode (no early
halting, no exploration) and runs exactly K steps, handing every step's predictions, halting
logits and auxiliary outputs to a callback; halting policies and selection rules decide from
those afterwards (`trmkit.inference.engine`). Every key a step returns in ``outputs`` beyond
`STEP_OUTPUTS` is a per-row float [B] auxiliary output (`StepView.aux`), passed on for the
rules that need it (docs/engine.md, "Auxiliary outputs, halting policies and selection
rules").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import attrs
import torch

from trmkit.models.protocol import RecursiveModel

STEP_OUTPUTS = frozenset({"logits", "preds", "q_halt_logits", "q_continue_logits"})
"""the keys of `StepResult.outputs` every model returns; any other key is auxiliary."""


@contextlib.contextmanager
def inference_depth(model: RecursiveModel, steps: int) -> Iterator[None]:
    """Let ``model`` run ``steps`` supervision steps before it marks sequences halted (K may
    exceed the trained N_sup: does thinking longer help?); restored afterwards."""
    old = model.halt_max_steps
    model.set_halt_max_steps(steps)
    try:
        yield
    finally:
        model.set_halt_max_steps(old)


@attrs.frozen
class StepView:
    """The state after one step, passed to the ``on_step`` callback of `rollout`."""

    step: int
    preds: torch.Tensor
    """this step's predictions [B, S]."""
    q_halt: torch.Tensor
    """this step's halting logits [B] (fp32)."""
    aux: Mapping[str, torch.Tensor] = attrs.field(factory=dict)
    """this step's auxiliary outputs (the keys beyond `STEP_OUTPUTS`), per-row float [B] each."""


@torch.no_grad()
def rollout(
    model: RecursiveModel,
    batch: Mapping[str, torch.Tensor],
    steps: int,
    on_step: Callable[[StepView], None] | None = None,
) -> None:
    """Run ``steps`` supervision steps (the caller sets the depth with `inference_depth` and
    eval mode); ``batch`` holds inputs, labels and puzzle_identifiers."""
    if steps < 1:
        raise ValueError(f"rollout needs at least one step, not {steps}")
    carry = model.initial_carry(batch)
    for s in range(1, steps + 1):
        result = model(carry, batch)
        carry = result.carry
        if on_step is not None:
            outputs = result.outputs
            aux = {k: v for k, v in outputs.items() if k not in STEP_OUTPUTS}
            on_step(StepView(s, outputs["preds"], outputs["q_halt_logits"].float(), aux))


__all__ = ["STEP_OUTPUTS", "StepView", "inference_depth", "rollout"]
