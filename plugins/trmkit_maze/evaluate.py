"""Maze evaluation: exact and token accuracy plus path checks on every prediction.

``valid_path_rate``: the predicted `o` cells lie on open cells of the input maze and join
S to G in one 4-connected piece. ``shortest_path_rate``: valid and exactly as many `o`
cells as a BFS shortest path has, i.e. the prediction is *a* shortest path (Maze-Hard
mazes often have several, so this can exceed exact accuracy). Predictions are mapped back
through their recorded dihedral transform first (test rows normally carry the identity).
"""

from __future__ import annotations

import numpy as np

from trmkit.grids.metrics import AccuracyTally, real_rows
from trmkit.task import EvalContext, PredictionBatch
from trmkit_maze.augment import DihedralAugmenter
from trmkit_maze.grid import OPEN, PATH, path_checks


class MazeEvalRun:
    def __init__(self, context: EvalContext) -> None:
        self.context = context
        self.tally = AccuracyTally(context.codec.ignore_label_id)
        self.rows = self.valid = self.shortest = 0

    def update(self, batch: PredictionBatch) -> None:
        rows = real_rows(batch)
        if not len(rows):
            return
        self.tally.update(np.asarray(batch.labels)[rows], np.asarray(batch.predictions)[rows])
        codec = self.context.codec
        transforms = np.asarray(self.context.transforms)
        invert = isinstance(self.context.augmenter, DihedralAugmenter) and transforms.ndim == 2
        for row in rows.tolist():
            maze = np.asarray(codec.decode(np.asarray(batch.inputs)[row]))
            pred = np.asarray(codec.decode(np.asarray(batch.predictions)[row]))
            if invert and len(transforms):
                t = transforms[int(batch.puzzle_index[row])]
                maze = self.context.augmenter.invert(t, maze)
                pred = self.context.augmenter.invert(t, pred)
            valid, shortest = path_checks(maze, pred)
            self.valid += valid
            self.shortest += shortest
        self.rows += len(rows)

    def finish(self) -> dict[str, float]:
        metrics = self.tally.metrics()
        rows = max(self.rows, 1)
        metrics["valid_path_rate"] = self.valid / rows
        metrics["shortest_path_rate"] = self.shortest / rows
        return metrics


class MazeEvaluator:
    """Also a `trmkit.task.AnswerChecker`: an answer is valid when it is the input maze with
    one shortest S-to-G path drawn on open cells and nothing else changed."""

    def check_answer(self, puzzle_input: np.ndarray, answer: np.ndarray) -> bool:
        maze, answer = np.asarray(puzzle_input), np.asarray(answer)
        if maze.shape != answer.shape or not np.array_equal(
            np.where(answer == PATH, OPEN, answer), maze
        ):
            return False
        return path_checks(maze, answer)[1]

    def start(self, context: EvalContext) -> MazeEvalRun:
        return MazeEvalRun(context)
