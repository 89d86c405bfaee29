"""Losses and metrics of the ACT loss head: stablemax or softmax cross-entropy on the
tokens, binary cross-entropy on the halting (and continue) logits.

Everything returned is a SUM over the batch; the trainer divides by the global batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trmkit.batch import IGNORE_LABEL_ID


def stablemax_s(x: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    """s(v) = v + 1 for v >= 0, 1 / (1 - v + eps) for v < 0 (Prieto et al. 2025)."""
    return torch.where(x < 0, 1.0 / (1.0 - x + eps), x + 1.0)


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = stablemax_s(x)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token -log stablemax(label), computed in float64; 0 where labels == IGNORE_LABEL_ID."""
    logprobs = log_stablemax(logits.to(torch.float64))
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
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """Total loss (lm + 0.5 (halt + continue), summed), metric sums, and argmax predictions.

    Every sequence contributes to the loss; metrics count only ``halted`` sequences with at
    least one valid label. The halt target is "the current prediction is exactly right".
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
    per_token = LOSS_FUNCTIONS[loss_type](logits, labels)
    lm_loss = (per_token / divisor).sum()
    q_halt_loss = F.binary_cross_entropy_with_logits(
        q_halt, seq_correct.to(q_halt.dtype), reduction="sum"
    )
    if target_q_continue is not None:
        q_continue_loss = F.binary_cross_entropy_with_logits(
            q_continue, target_q_continue, reduction="sum"
        )
    else:
        q_continue_loss = torch.zeros((), device=logits.device)
    total = lm_loss + 0.5 * (q_halt_loss + q_continue_loss)
    metrics.update(
        lm_loss=lm_loss.detach(),
        q_halt_loss=q_halt_loss.detach(),
        q_continue_loss=q_continue_loss.detach(),
    )
    # one dtype for every metric, so a trainer can stack and all-reduce them in one call
    metrics = {k: v.to(torch.float32) for k, v in metrics.items()}
    return total, metrics, preds
