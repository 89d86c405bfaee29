"""Voting over the predictions of several augmented variants of one query.

The one rule (used by `trmkit solve`; the ARC evaluator ranks its pass@K candidates the
same way): identical grids pool their votes; candidates rank by most votes, then highest
mean halting confidence sigmoid(q_halt), then smallest `grid_hash` (so exact ties are
deterministic and do not depend on the order the variants ran in).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import attrs
import numpy as np


def grid_hash(grid: np.ndarray) -> str:
    """Stable content hash of a grid: its shape and its cells as uint8."""
    grid = np.asarray(grid)
    digest = hashlib.blake2b(digest_size=12)
    digest.update(np.asarray(grid.shape, np.int64).tobytes())
    digest.update(grid.astype(np.uint8).tobytes())
    return digest.hexdigest()


@attrs.frozen
class Candidate:
    grid: np.ndarray
    votes: int
    confidence: float
    """mean confidence of the variants that predicted this grid."""
    key: str
    """`grid_hash` of the grid."""


def rank(grids: Sequence[np.ndarray], confidences: Sequence[float]) -> list[Candidate]:
    """Distinct grids, best first (see the module docstring for the rule)."""
    if len(grids) != len(confidences) or not grids:
        raise ValueError("rank needs one confidence per grid and at least one grid")
    pooled: dict[str, list] = {}
    for grid, conf in zip(grids, confidences, strict=True):
        slot = pooled.setdefault(grid_hash(grid), [np.asarray(grid), 0, 0.0])
        slot[1] += 1
        slot[2] += float(conf)
    return sorted(
        (Candidate(grid=g, votes=n, confidence=s / n, key=k) for k, (g, n, s) in pooled.items()),
        key=lambda c: (-c.votes, -c.confidence, c.key),
    )


__all__ = ["Candidate", "grid_hash", "rank"]
