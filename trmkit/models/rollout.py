"""Run a model for K supervision steps on one batch, with adaptive halting bookkeeping.

The one loop behind `trmkit eval` and `trmkit solve`: the model is in eval mode (no early
halting, no exploration) and runs exactly K steps; for every sequence it records the first
step whose halting head fires (q_halt > 0) and the prediction at that step, the *adaptive*
answer (as training halts). A sequence whose head never fires keeps its step-K prediction.
Every other key a step returns in ``outputs`` is a per-row float [B] auxiliary output
(`aux_outputs`), passed on to the callback for the halting policies and selection rules that
need it (docs/engine.md, "Auxiliary outputs, halting policies and selection rules").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import attrs
import torch

from trmkit.models.protocol import RecursiveModel

STEP_OUTPUTS = frozenset({"logits", "preds", "q_halt_logits", "q_continue_logits"})
"""the keys of `StepResult.outputs` every model returns; any other key is auxiliary."""


def aux_outputs(outputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The auxiliary outputs of one step: every key beyond `STEP_OUTPUTS` (float [B])."""
    return {k: v for k, v in outputs.items() if k not in STEP_OUTPUTS}


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
    adaptive_preds: torch.Tensor
    """the adaptive answer so far: the prediction of the first halting step, or this one."""
    adaptive_q: torch.Tensor
    aux: Mapping[str, torch.Tensor] = attrs.field(factory=dict)
    """this step's auxiliary outputs by name, each per-row float [B] (`aux_outputs`)."""


@attrs.frozen
class Rollout:
    preds: torch.Tensor
    """predictions after step K [B, S]."""
    q_halt: torch.Tensor
    """halting logits after step K [B]."""
    halt_step: torch.Tensor
    """int64 [B]: first step with q_halt > 0, K + 1 when it never fired."""
    adaptive_preds: torch.Tensor
    adaptive_q: torch.Tensor
    """halting logit at the adaptive answer's step."""


@torch.no_grad()
def rollout(
    model: RecursiveModel,
    batch: Mapping[str, torch.Tensor],
    steps: int,
    on_step: Callable[[StepView], None] | None = None,
) -> Rollout:
    """Run ``steps`` supervision steps (the caller sets the depth with `inference_depth` and
    eval mode); ``batch`` holds inputs, labels and puzzle_identifiers."""
    if steps < 1:
        raise ValueError(f"rollout needs at least one step, not {steps}")
    inputs = batch["inputs"]
    carry = model.initial_carry(batch)
    halt_step = torch.full((inputs.shape[0],), steps + 1, dtype=torch.long, device=inputs.device)
    preds = q = ada_preds = ada_q = torch.empty(0)
    for s in range(1, steps + 1):
        result = model(carry, batch)
        carry = result.carry
        preds = result.outputs["preds"]
        q = result.outputs["q_halt_logits"].float()
        if s == 1:
            ada_preds, ada_q = torch.zeros_like(preds), torch.zeros_like(q)
        newly = (q > 0) & (halt_step > steps)
        halt_step = torch.where(newly, s, halt_step)
        ada_preds = torch.where(newly[:, None], preds, ada_preds)
        ada_q = torch.where(newly, q, ada_q)
        if on_step is not None:
            never = halt_step > steps
            on_step(
                StepView(
                    step=s,
                    preds=preds,
                    q_halt=q,
                    adaptive_preds=torch.where(never[:, None], preds, ada_preds),
                    adaptive_q=torch.where(never, q, ada_q),
                    aux=aux_outputs(result.outputs),
                )
            )
    never = halt_step > steps
    return Rollout(
        preds=preds,
        q_halt=q,
        halt_step=halt_step,
        adaptive_preds=torch.where(never[:, None], preds, ada_preds),
        adaptive_q=torch.where(never, q, ada_q),
    )


__all__ = ["STEP_OUTPUTS", "Rollout", "StepView", "aux_outputs", "inference_depth", "rollout"]
