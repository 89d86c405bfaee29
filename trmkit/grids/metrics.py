"""Exact and token accuracy over the non-ignored label tokens (as the official evaluator):
`AccuracyTally` to count them inside your own evaluator, `AccuracyEvaluator` ready made.

exact_accuracy: fraction of rows whose every non-ignored label token is predicted right
(the number reported for Sudoku-Extreme and Maze-Hard). token_accuracy: per-row fraction
of right non-ignored tokens, averaged over rows (the reference's `accuracy`). Rows with
``puzzle_index`` -1 are padding and skipped; rows with no non-ignored label are skipped.
"""

from __future__ import annotations

import numpy as np

from trmkit.task import EvalContext, PredictionBatch


def real_rows(batch: PredictionBatch) -> np.ndarray:
    """Indices of the rows that are not padding (puzzle_index >= 0)."""
    return np.flatnonzero(np.asarray(batch.puzzle_index) >= 0)


class AccuracyTally:
    def __init__(self, ignore_label_id: int) -> None:
        self.ignore_label_id = ignore_label_id
        self.rows = 0
        self.exact = 0
        self.token_sum = 0.0

    def update(self, labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """Count these rows; returns bool[rows] exactness (False for rows without labels)."""
        labels = np.asarray(labels)
        predictions = np.asarray(predictions)
        counted = labels != self.ignore_label_id
        right = (predictions == labels) & counted
        per_row = counted.sum(axis=1)
        has = per_row > 0
        exact = has & (right.sum(axis=1) == per_row)
        self.rows += int(has.sum())
        self.exact += int(exact.sum())
        self.token_sum += float((right.sum(axis=1)[has] / per_row[has]).sum())
        return exact

    def metrics(self) -> dict[str, float]:
        rows = max(self.rows, 1)
        return {
            "exact_accuracy": self.exact / rows,
            "token_accuracy": self.token_sum / rows,
            "count": float(self.rows),
        }


class AccuracyRun:
    """One evaluation pass of `AccuracyEvaluator` (a `trmkit.task.EvalRun`)."""

    def __init__(self, context: EvalContext) -> None:
        self.tally = AccuracyTally(context.codec.ignore_label_id)

    def update(self, batch: PredictionBatch) -> None:
        rows = real_rows(batch)
        if len(rows):
            self.tally.update(np.asarray(batch.labels)[rows], np.asarray(batch.predictions)[rows])

    def finish(self) -> dict[str, float]:
        return self.tally.metrics()


class AccuracyEvaluator:
    """A ready `trmkit.task.Evaluator`: ``exact_accuracy``, ``token_accuracy`` and ``count``
    over the non-padding rows, compared in token space (no decoding, no voting).

    Enough for a task with one right answer per puzzle. For a task-specific metric (a rules
    check, a valid-path rate), write an evaluator whose run keeps an `AccuracyTally` and adds
    its own numbers in ``finish``, as the built-in Sudoku and Maze evaluators do.
    """

    def start(self, context: EvalContext) -> AccuracyRun:
        return AccuracyRun(context)
