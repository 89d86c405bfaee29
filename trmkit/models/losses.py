"""Losses and metrics of the ACT loss head: stablemax or softmax cross-entropy on the
tokens, binary cross-entropy on the halting (and continue) logits.

Everything returned is a SUM over the batch; the trainer divides by the global batch size.
What one supervision step is trained towards is a `StepLoss` registered by name (kind
"step_loss", chosen by ``model.step_loss``; docs/engine.md, "Per-step losses"): a weight per
step, a target per step, extra terms, and whether the halting losses apply. The built-in
"act" (`ACTStepLoss`) is TRM's loss, lm + 0.5 (q_halt + q_continue).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol, runtime_checkable

import attrs
import torch
import torch.nn.functional as F

from trmkit.batch import IGNORE_LABEL_ID


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token -log stablemax(label), computed in float64; 0 where labels == IGNORE_LABEL_ID.
    stablemax(v)_i = s(v_i) / sum_j s(v_j), s(v) = v + 1 for v >= 0, 1 / (1 - v) for v < 0
    (Prieto et al. 2025; 1e-30 guards the division)."""
    x = logits.to(torch.float64)
    s = torch.where(x < 0, 1.0 / (1.0 - x + 1e-30), x + 1.0)
    logprobs = torch.log(s / s.sum(dim=-1, keepdim=True))
    mask = labels != IGNORE_LABEL_ID
    safe = torch.where(mask, labels, 0).long().unsqueeze(-1)
    picked = torch.gather(logprobs, -1, safe).squeeze(-1)
    return -torch.where(mask, picked, 0.0)


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token softmax CE in fp32; 0 where labels == IGNORE_LABEL_ID."""
    flat = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        labels.long().reshape(-1),
        ignore_index=IGNORE_LABEL_ID,
        reduction="none",
    )
    return flat.view(labels.shape)


LOSS_FUNCTIONS = {
    "stablemax_cross_entropy": stablemax_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
}


@attrs.frozen
class StepView:
    """What a `StepLoss` sees of one supervision step (tensors of the batch's B rows)."""

    data: Mapping[str, torch.Tensor]
    """the rows this step ran on: inputs [B,S], labels [B,S], puzzle_identifiers [B], ..."""
    steps: torch.Tensor
    """int [B]: the 1-based supervision step each row just took."""
    max_steps: int
    """N_sup: the step after which every row halts."""
    logits: torch.Tensor
    q_halt: torch.Tensor
    q_continue: torch.Tensor
    aux: Mapping[str, torch.Tensor]
    """the core's per-row auxiliary outputs, float [B] each (docs/engine.md, "The model
    contract")."""
    latents: Mapping[str, torch.Tensor] = attrs.field(factory=dict)
    """the core's per-row state after the step (its carried latents, detached), which a loss
    that `needs` it reads (e.g. DIS's per-slot path order)."""


@runtime_checkable
class StepLoss(Protocol):
    """How one supervision step is scored; registered under kind "step_loss"."""

    halt_loss: bool
    """train q_halt towards "the prediction is exactly right" (BCE, weight 0.5)."""
    continue_loss: bool
    """train q_continue towards its Q-learning target (only where ``act_continue`` makes one)."""
    needs: tuple[str, ...]
    """the per-row state (`StepView.latents`) it reads: a model whose core carries none of
    one is refused when it is built."""

    def weight(self, view: StepView) -> torch.Tensor | None:
        """float [B]: each row's weight of this step's loss (None: 1 everywhere)."""
        ...

    def target(self, view: StepView) -> torch.Tensor:
        """int [B,S]: the tokens this step is trained towards (the labels, or an
        intermediate target); metrics and the halt target always use the true labels."""
        ...

    def extra(self, view: StepView) -> Mapping[str, torch.Tensor]:
        """Extra loss terms, each a scalar SUM over the batch added to the loss and logged
        under its name (end it in ``loss`` so the log divides it by the batch)."""
        ...


@attrs.frozen
class ACTStepLoss:
    """TRM's loss: every step weight 1 towards the labels, both halting terms, no extras.
    A plugin evolves the flags or subclasses one method (docs/engine.md, "Per-step losses")."""

    halt_loss: bool = True
    continue_loss: bool = True
    needs: ClassVar[tuple[str, ...]] = ()

    def weight(self, view: StepView) -> torch.Tensor | None:
        return None

    def target(self, view: StepView) -> torch.Tensor:
        return view.data["labels"]

    def extra(self, view: StepView) -> Mapping[str, torch.Tensor]:
        return {}


def find_step_loss(name: str) -> StepLoss:
    """The registered step loss ``name`` (``model.step_loss``), checked against `StepLoss`."""
    from trmkit import plugins
    from trmkit.errors import PluginError

    spec = plugins.component("step_loss", name, "model.step_loss")
    if not isinstance(spec.component, StepLoss):
        raise PluginError(
            f"plugin {spec.plugin!r}: step_loss {name!r} does not implement "
            "trmkit.models.losses.StepLoss "
            "(halt_loss, continue_loss, needs, weight, target, extra)"
        )
    return spec.component


def act_loss(
    *,
    logits: torch.Tensor,
    labels: torch.Tensor,
    q_halt: torch.Tensor,
    q_continue: torch.Tensor,
    target_q_continue: torch.Tensor | None,
    halted: torch.Tensor,
    steps: torch.Tensor,
    loss_type: str,
    weight: torch.Tensor | None = None,
    target: torch.Tensor | None = None,
    halt_loss: bool = True,
    extra: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """Total loss (lm + 0.5 (halt + continue) + extras, summed), metric sums, and argmax
    predictions.

    Every sequence contributes to the loss; metrics count only ``halted`` sequences with at
    least one valid label. The halt target is "the current prediction is exactly right".
    ``weight`` [B] scales each row's lm and halting terms; ``target`` replaces the labels of
    the lm term; ``halt_loss`` False drops the q_halt term (a `StepLoss`'s parts).
    """
    mask = labels != IGNORE_LABEL_ID
    counts = mask.sum(-1)
    divisor = counts.clamp_min(1).unsqueeze(-1)
    with torch.no_grad():
        preds = logits.argmax(-1)
        correct = mask & (preds == labels)
        seq_correct = correct.sum(-1) == counts
        valid = halted & (counts > 0)
        metrics = {
            "count": valid.sum(),
            "accuracy": torch.where(valid, (correct.float() / divisor).sum(-1), 0.0).sum(),
            "exact_accuracy": (valid & seq_correct).sum(),
            "q_halt_accuracy": (valid & ((q_halt >= 0) == seq_correct)).sum(),
            "steps": torch.where(valid, steps, 0).sum(),
        }
    if target is None or target is labels:
        per_token = LOSS_FUNCTIONS[loss_type](logits, labels) / divisor
    else:  # the target's own valid tokens set its divisor
        valid_target = (target != IGNORE_LABEL_ID).sum(-1).clamp_min(1).unsqueeze(-1)
        per_token = LOSS_FUNCTIONS[loss_type](logits, target) / valid_target
    reduction = "sum" if weight is None else "none"

    def weighted(rows: torch.Tensor) -> torch.Tensor:
        return rows.sum() if weight is None else (rows * weight.to(rows.dtype)).sum()

    lm_loss = per_token.sum() if weight is None else weighted(per_token.sum(-1))
    zero = torch.zeros((), device=logits.device)
    q_halt_loss = zero
    if halt_loss:
        q_halt_loss = weighted(
            F.binary_cross_entropy_with_logits(
                q_halt, seq_correct.to(q_halt.dtype), reduction=reduction
            )
        )
    q_continue_loss = zero
    if target_q_continue is not None:
        q_continue_loss = weighted(
            F.binary_cross_entropy_with_logits(q_continue, target_q_continue, reduction=reduction)
        )
    total = lm_loss + 0.5 * (q_halt_loss + q_continue_loss)
    metrics.update(
        lm_loss=lm_loss.detach(),
        q_halt_loss=q_halt_loss.detach(),
        q_continue_loss=q_continue_loss.detach(),
    )
    for name, term in (extra or {}).items():
        total = total + term
        metrics[name] = term.detach()
    # one dtype for every metric, so a trainer can stack and all-reduce them in one call
    metrics = {k: v.to(torch.float32) for k, v in metrics.items()}
    return total, metrics, preds
