"""`trmkit solve`: answer puzzles with a trained checkpoint, with test-time augmentation voting.

For every query (a test example of a parsed puzzle) the solver builds the variants to run:

* tasks with one shared puzzle id (Sudoku, Maze): the puzzle as given, id 0;
* tasks with per-variant ids (ARC): every variant of that task the checkpoint was trained
  with, each with its own embedding row (from the checkpoint's puzzle-id table). A task that
  is not in the table gets the blank id and ``num_aug`` freshly drawn variants; the answer
  says so, because ARC models are transductive: without the task's trained embedding rows
  accuracy collapses (arXiv 2512.11847 reports 0% with blank ids).

Each variant is encoded, run for K supervision steps (or until the halting head fires, with
``adaptive``; the loop of `trmkit.models.rollout`, shared with evaluation), decoded, mapped
back with the augmenter's exact inverse, and the variants vote by the rule of
`trmkit.voting`: most votes, then highest mean halting confidence, then smallest grid hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from trmkit.batch import IGNORE_LABEL_ID
from trmkit.checkpoint import Bundle, PuzzleIdTable, check_task_matches
from trmkit.errors import PuzzleError
from trmkit.models.protocol import RecursiveModel
from trmkit.models.rollout import StepView, inference_depth, rollout
from trmkit.reports import plot_trace
from trmkit.task import RawPuzzle, Task
from trmkit.voting import rank

BATCH_ROWS = 256


@attrs.define
class Answer:
    puzzle: str
    query: int
    grid: np.ndarray
    votes: int
    variants: int
    confidence: float
    """mean sigmoid(q_halt) of the winning grid's variants."""
    steps: float
    """supervision steps used (mean over variants; K unless adaptive)."""
    correct: bool | None
    """agreement with the known answer when the input carried one, else None."""
    trace: list[np.ndarray] = attrs.field(factory=list)
    """the voted answer after each supervision step (with ``trace``)."""
    note: str = ""

    def to_json(self, task: Task) -> dict[str, Any]:
        return {"puzzle": self.puzzle, "query": self.query, "answer": self.grid.tolist(),
                "rendered": task.render(self.grid), "votes": self.votes,
                "variants": self.variants, "confidence": self.confidence,
                "steps": self.steps, "correct": self.correct, "note": self.note,
                **({"trace": [g.tolist() for g in self.trace]} if self.trace else {})}


def _variants(task: Task, puzzle: RawPuzzle, table: PuzzleIdTable, per_variant: bool,
              num_aug: int, blank_id: int, rng: np.random.Generator
              ) -> tuple[list[tuple[int, np.ndarray]], str]:
    aug = task.augmenter
    if not per_variant:
        return [(0, aug.identity())], ""
    known = table.variants(puzzle.name)
    if known:
        return known, f"{len(known)} trained variants of {puzzle.name!r} vote"
    drawn = [aug.identity(), *aug.draw(puzzle, num_aug, rng)]
    note = (f"{puzzle.name!r} is not in the checkpoint's puzzle-id table: the blank id is used "
            f"for its {len(drawn)} variants, so expect a poor answer (the model only knows "
            "tasks it was trained on)")
    return [(blank_id, t) for t in drawn], note


def solve(bundle: Bundle, task: Task, puzzles: Sequence[RawPuzzle], *, steps: int | None = None,
          adaptive: bool = False, trace: bool = False, num_aug: int = 8, seed: int = 0
          ) -> list[Answer]:
    check_task_matches(bundle, task)
    model = bundle.model
    device = next(model.parameters()).device
    data = bundle.manifest.dataset
    per_variant = data.num_puzzle_identifiers > 1
    blank_id = data.blank_identifier_id
    table = PuzzleIdTable(bundle.path)
    rng = np.random.default_rng(seed)
    k = int(steps) if steps else model.halt_max_steps

    rows: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (query, pid, transform, tokens)
    queries: list[tuple[RawPuzzle, int, str]] = []
    for puzzle in puzzles:
        variants, note = _variants(task, puzzle, table, per_variant, num_aug, blank_id, rng)
        for qi, example in enumerate(puzzle.test):
            q = len(queries)
            queries.append((puzzle, qi, note))
            for pid, transform in variants:
                grid = task.augmenter.apply(transform, np.asarray(example.input))
                try:
                    tokens = task.codec.encode(grid)
                except ValueError as exc:
                    raise PuzzleError(f"{puzzle.name}, query {qi + 1}: {exc}") from exc
                rows.append((q, pid, transform, tokens))
    if not rows:
        raise PuzzleError("no query to solve (the puzzle has no test input)")

    preds_by_step, q_final, used = _run(model, rows, k, adaptive, trace, device)
    answers = []
    for q, (puzzle, qi, note) in enumerate(queries):
        idx = [i for i, r in enumerate(rows) if r[0] == q]
        grids = [_decode(task, rows[i][2], preds_by_step[-1][i]) for i in idx]
        grid, votes, conf = _vote(grids, [q_final[i] for i in idx])
        expected = np.asarray(puzzle.test[qi].output)
        correct = None
        if puzzle.meta.get("has_solution", True) and expected.size > 1:
            correct = bool(grid.shape == expected.shape and np.array_equal(grid, expected))
        steps_trace = []
        if trace:
            for step_preds in preds_by_step:
                g = [_decode(task, rows[i][2], step_preds[i]) for i in idx]
                steps_trace.append(_vote(g, [q_final[i] for i in idx])[0])
        answers.append(Answer(puzzle=puzzle.name, query=qi, grid=grid, votes=votes,
                              variants=len(idx), confidence=conf,
                              steps=float(np.mean([used[i] for i in idx])), correct=correct,
                              trace=steps_trace, note=note))
    return answers


def _decode(task: Task, transform: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    grid = np.asarray(task.codec.decode(tokens))
    try:
        return np.asarray(task.augmenter.invert(transform, grid))
    except (ValueError, IndexError):
        return grid  # an undecodable prediction (e.g. a malformed ARC crop) stays as is


def _vote(grids: list[np.ndarray], q: list[float]) -> tuple[np.ndarray, int, float]:
    best = rank(grids, q)[0]
    return best.grid, best.votes, best.confidence


@torch.no_grad()
def _run(model: RecursiveModel, rows, k: int, adaptive: bool, trace: bool, device):
    """Predictions after each step (only the last unless ``trace``), final q, steps used."""
    n = len(rows)
    keep_steps = k if trace else 1
    preds = [np.zeros((n, len(rows[0][3])), np.int64) for _ in range(keep_steps)]
    q_final = np.zeros(n)
    used = np.full(n, k, dtype=np.float64)
    model.eval()
    with inference_depth(model, k):
        for start in range(0, n, BATCH_ROWS):
            chunk = rows[start:start + BATCH_ROWS]
            here = slice(start, start + len(chunk))
            inputs = torch.tensor(np.stack([r[3] for r in chunk]).astype(np.int32), device=device)
            batch = {"inputs": inputs,
                     "labels": torch.full_like(inputs, IGNORE_LABEL_ID),
                     "puzzle_identifiers": torch.tensor([r[1] for r in chunk], dtype=torch.int32,
                                                        device=device)}

            def keep(view: StepView, here: slice = here) -> None:
                p = view.adaptive_preds if adaptive else view.preds
                preds[view.step - 1][here] = p.cpu().numpy()

            out = rollout(model, batch, k, on_step=keep if trace else None)
            if not trace:
                final = out.adaptive_preds if adaptive else out.preds
                preds[0][here] = final.cpu().numpy()
            q = out.adaptive_q if adaptive else out.q_halt
            q_final[here] = torch.sigmoid(q.double()).cpu().numpy()
            if adaptive:
                used[here] = out.halt_step.clamp(max=k).cpu().numpy()
    return preds, q_final, used


def render_trace_png(answer: Answer, out: Path) -> bool:
    """The answer after each supervision step as a strip of coloured grids (matplotlib)."""
    return plot_trace(answer.trace, f"{answer.puzzle} (query {answer.query + 1})", out)
