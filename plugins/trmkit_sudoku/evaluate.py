"""Sudoku evaluation: exact and token accuracy plus a rules check on every prediction.

``valid_solution_rate``: fraction of predictions that decode to a complete grid whose rows,
columns and boxes each hold 1..n once and that keeps every given of its input. Predictions
are mapped back through their puzzle's recorded shuffle first (test rows normally carry
the identity), so the check reads the grid as the puzzle was written.
"""

from __future__ import annotations

import numpy as np

from trmkit.grids.codec import OffsetCodec
from trmkit.grids.metrics import AccuracyTally, real_rows
from trmkit.task import EvalContext, PredictionBatch
from trmkit_sudoku.augment import SudokuAugmenter
from trmkit_sudoku.solver import Geometry, consistent, valid_solutions


class SudokuEvalRun:
    def __init__(self, context: EvalContext, geo: Geometry) -> None:
        self.context = context
        self.geo = geo
        self.tally = AccuracyTally(context.codec.ignore_label_id)
        self.valid = 0
        self.rows = 0

    def update(self, batch: PredictionBatch) -> None:
        rows = real_rows(batch)
        if not len(rows):
            return
        self.tally.update(np.asarray(batch.labels)[rows], np.asarray(batch.predictions)[rows])
        codec = self.context.codec
        n = self.geo.n
        preds = _decode(codec, np.asarray(batch.predictions)[rows], n)
        inputs = _decode(codec, np.asarray(batch.inputs)[rows], n)
        augmenter = self.context.augmenter
        transforms = np.asarray(self.context.transforms)
        if isinstance(augmenter, SudokuAugmenter) and transforms.ndim == 2 and len(transforms):
            chosen = transforms[np.asarray(batch.puzzle_index)[rows]]
            preds = augmenter.invert_batch(chosen, preds)
            inputs = augmenter.invert_batch(chosen, inputs)
        ok = valid_solutions(preds, self.geo) & consistent(inputs, preds)
        self.valid += int(ok.sum())
        self.rows += len(rows)

    def finish(self) -> dict[str, float]:
        metrics = self.tally.metrics()
        metrics["valid_solution_rate"] = self.valid / max(self.rows, 1)
        return metrics


def _decode(codec, tokens: np.ndarray, n: int) -> np.ndarray:
    if isinstance(codec, OffsetCodec):
        return codec.decode_batch(tokens)
    return np.stack([np.asarray(codec.decode(row)).reshape(n, n) for row in tokens])


class SudokuEvaluator:
    """Also a `trmkit.task.AnswerChecker`: an answer is valid when it is a complete grid
    obeying the rules and keeping every given (no label needed)."""

    def __init__(self, geo: Geometry) -> None:
        self.geo = geo

    def check_answer(self, puzzle_input: np.ndarray, answer: np.ndarray) -> bool:
        n = self.geo.n
        puzzle_input, answer = np.asarray(puzzle_input), np.asarray(answer)
        if puzzle_input.shape != (n, n) or answer.shape != (n, n):
            return False
        grids = answer[None].astype(np.int64)
        return bool(
            valid_solutions(grids, self.geo)[0]
            and consistent(puzzle_input[None].astype(np.int64), grids)[0]
        )

    def start(self, context: EvalContext) -> SudokuEvalRun:
        return SudokuEvalRun(context, self.geo)
