"""Per-puzzle embedding table trained by sparse sign-SGD (docs/engine.md, "Optimisers").

The table is a persistent *buffer* (it can hold 876k x 512 values for ARC-AGI-1 and must
not be touched by the dense optimiser, weight decay or EMA). In training, the rows the batch
needs are copied into a fresh leaf tensor that requires grad; that leaf is what the graph
sees, and (ids, leaf) pairs are queued for `trmkit.training.optim.SparseSignSGD`, which
consumes and clears the queue on ``step()``/``zero_grad()``. Queuing every forward (rather
than overwriting one scratch buffer as the reference does) keeps gradient accumulation over
several forwards correct. In eval mode, or without grad, the table is read directly.
"""

from __future__ import annotations

import torch
from torch import nn


class SparsePuzzleEmbedding(nn.Module):
    def __init__(self, num_ids: int, dim: int) -> None:
        super().__init__()
        self.num_ids = num_ids
        self.dim = dim
        self.register_buffer("weights", torch.zeros(num_ids, dim), persistent=True)
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        if self.training and torch.is_grad_enabled():
            rows = self.weights[ids].detach().requires_grad_(True)
            self.pending.append((ids.detach(), rows))
            return rows
        return self.weights[ids]

    def take_pending(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(ids [N], grads [N, dim]) queued since the last call, then clear the queue."""
        pairs, self.pending = self.pending, []
        pairs = [(i, r) for i, r in pairs if r.grad is not None]
        if not pairs:
            return None
        return torch.cat([i for i, _ in pairs]), torch.cat([r.grad for _, r in pairs])

    def extra_repr(self) -> str:
        return f"table {self.num_ids} x {self.dim} (buffer, sign-SGD)"
