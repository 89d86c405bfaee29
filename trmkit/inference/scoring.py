"""Scores of answers against labels, and the batch shape of sampled evaluation."""

from __future__ import annotations

import numpy as np

from trmkit.batch import IGNORE_LABEL_ID


def seq_scores(
    preds: np.ndarray, labels: np.ndarray, counted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row token accuracy and exactness over non-ignored labels (0 / False on rows not
    ``counted``: padding, or no label to score)."""
    mask = labels != IGNORE_LABEL_ID
    n = mask.sum(-1)
    correct = ((preds == labels) & mask).sum(-1)
    acc = np.where(counted, correct / np.maximum(n, 1), 0.0)
    exact = counted & (correct == n)
    return acc, exact


def samples_per_batch(batch_size: int, samples: int, world: int) -> int:
    """Rows the loader yields per batch so that rows x samples stays near ``batch_size``
    forward rows (a multiple of the process count, at least one row per process)."""
    rows = max(1, batch_size // max(samples, 1))
    return max(world, rows // world * world)


__all__ = ["samples_per_batch", "seq_scores"]
