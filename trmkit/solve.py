"""`trmkit solve`: answer puzzles with a trained checkpoint, with test-time augmentation voting.

For every query (a test example of a parsed puzzle) the solver builds the variants to run:

* tasks with one shared puzzle id (Sudoku, Maze): the puzzle as given, id 0;
* tasks with per-variant ids (ARC): every variant of that task the checkpoint was trained
  with, each with its own embedding row (from the checkpoint's puzzle-id table). A task that
  is not in the table gets the blank id and ``num_aug`` freshly drawn variants; the answer
  says so, because ARC models are transductive: without the task's trained embedding rows
  accuracy collapses (arXiv 2512.11847 reports 0% with blank ids).

Each variant is encoded and answered under the `trmkit.inference.InferencePolicy` (K
supervision steps, a halting policy, optionally several augmented or noisy samples chosen
by a selection rule: the engine evaluation shares, docs/test-time-compute.md), decoded, mapped
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

from trmkit.checkpoint import Bundle, PuzzleIdTable, check_task_matches
from trmkit.errors import PuzzleError, TrmkitError, first_line
from trmkit.inference.engine import RowBatch, answer_checker, check_policy, decide, record
from trmkit.inference.policy import HaltPolicy, InferencePolicy, check_record_fits
from trmkit.models.protocol import RecursiveModel
from trmkit.task import AnswerChecker, RawPuzzle, Task
from trmkit.traces import TraceStep, trace_steps
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
    valid: bool | None = None
    """whether the task's `AnswerChecker` accepts the answer for the puzzle (a complete
    Sudoku keeping the givens, a shortest maze path), without any label; None when the
    task has no checker. A puzzle with several solutions can be answered validly with a
    grid that differs from the one solution a label names."""
    trace: list[TraceStep] = attrs.field(factory=list)
    """with ``trace``: each supervision step's voted answer, its confidence, the givens and
    the cells changed since the step before (`trmkit.traces`, docs/reports.md)."""
    note: str = ""
    attempts: list[np.ndarray] = attrs.field(factory=list)
    """the two best-ranked distinct answers (``grid`` first): a submission's attempts."""

    def to_json(self, task: Task) -> dict[str, Any]:
        return {
            "puzzle": self.puzzle,
            "query": self.query,
            "answer": self.grid.tolist(),
            "rendered": task.render(self.grid),
            "votes": self.votes,
            "variants": self.variants,
            "confidence": self.confidence,
            "steps": self.steps,
            "correct": self.correct,
            "valid": self.valid,
            "note": self.note,
            **({"trace": [st.to_json() for st in self.trace]} if self.trace else {}),
        }


def _check_answer(task: Task, puzzle_input: np.ndarray, answer: np.ndarray) -> bool | None:
    """The task's own judgement of an answer (docs/training.md, "`trmkit solve`"), None without an
    `AnswerChecker`; an answer the checker cannot even read is not valid."""
    evaluator = task.evaluator
    if not isinstance(evaluator, AnswerChecker):
        return None
    try:
        return bool(evaluator.check_answer(puzzle_input, answer))
    except (ValueError, IndexError):
        return False


MAX_PUZZLE_BYTES = 64 << 20
"""a puzzle file larger than 64 MiB is refused before it is parsed."""


def read_puzzles(task: Task, spec: str) -> list[RawPuzzle]:
    """The puzzles of ``spec`` (a file or inline text) through the task's `parse_puzzles`,
    checked first at the boundary (`trmkit.textio`): an existing file must be UTF-8 and
    bounded, JSON (file or inline) bounded in depth and integer size; an argument that
    looks like a path but names no file is "file not found", not puzzle text."""
    from trmkit.textio import is_existing_file, loads_json, looks_like_path, read_text

    if task.parse_puzzles is None:
        raise PuzzleError(f"task {task.name!r} does not accept puzzles on the command line")
    text, where, what = spec, "puzzle text", "puzzle JSON"
    if is_existing_file(spec):
        path = Path(spec).expanduser()
        where, what = str(path), "puzzle file"
        text = read_text(path, max_bytes=MAX_PUZZLE_BYTES, error=PuzzleError, what=what)
    elif looks_like_path(spec):
        path = Path(spec).expanduser()
        if path.is_dir():
            raise PuzzleError(f"{path}: is a directory; give a puzzle file or the puzzle text")
        raise PuzzleError(
            f"{path}: file not found (give an existing puzzle file or the puzzle text itself)"
        )
    if text.lstrip()[:1] in ("{", "["):
        loads_json(text, where, error=PuzzleError, what=what)
    try:
        return list(task.parse_puzzles(spec))
    except TrmkitError:
        raise
    except (OSError, RecursionError, OverflowError, UnicodeError, ValueError) as exc:
        raise PuzzleError(
            f"{where}: cannot read the puzzle ({type(exc).__name__}: {first_line(exc, 120)})"
        ) from None


def _variants(
    task: Task,
    puzzle: RawPuzzle,
    table: PuzzleIdTable,
    per_variant: bool,
    num_aug: int,
    blank_id: int,
    rng: np.random.Generator,
) -> tuple[list[tuple[int, np.ndarray]], str]:
    aug = task.augmenter
    if not per_variant:
        return [(0, aug.identity())], ""
    known = table.checked_variants(task, puzzle)
    if known:
        return known, f"{len(known)} trained variants of {puzzle.name!r} vote"
    drawn = [aug.identity(), *aug.draw(puzzle, num_aug, rng)]
    note = (
        f"{puzzle.name!r} is not in the checkpoint's puzzle-id table: the blank id is used "
        f"for its {len(drawn)} variants, so expect a poor answer (the model only knows "
        "tasks it was trained on; `--adapt N` or `trmkit adapt` teaches it this one)"
    )
    return [(blank_id, t) for t in drawn], note


def solve(
    bundle: Bundle,
    task: Task,
    puzzles: Sequence[RawPuzzle],
    *,
    steps: int | None = None,
    trace: bool = False,
    num_aug: int = 8,
    seed: int = 0,
    policy: InferencePolicy | None = None,
    table: PuzzleIdTable | None = None,
) -> list[Answer]:
    """Answer every test query of ``puzzles``; ``policy`` sets depth, halting, samples and
    selection (docs/test-time-compute.md); without it ``steps`` sets the depth. ``table``
    replaces the bundle's puzzle-id table (an adapted model in memory, `trmkit.training.adapt`)."""
    check_task_matches(bundle, task)
    if policy is None:
        policy = InferencePolicy(steps=steps, seed=seed)
    model = bundle.model
    data = bundle.manifest.dataset
    per_variant = data.num_puzzle_identifiers > 1
    check_policy(policy, model, task, per_variant)
    blank_id = data.blank_identifier_id
    if table is None:
        table = PuzzleIdTable(bundle.path, data.num_puzzle_identifiers)
    rng = np.random.default_rng(seed)
    k = int(policy.steps) if policy.steps else model.halt_max_steps

    rows: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (query, pid, transform, tokens)
    queries: list[tuple[RawPuzzle, int, str]] = []
    for puzzle in puzzles:
        variants, note = _variants(task, puzzle, table, per_variant, num_aug, blank_id, rng)
        for qi, example in enumerate(puzzle.test):
            q = len(queries)
            queries.append((puzzle, qi, note))
            # the codec judges the query as given first: an augmenter may assume its shape
            # (Sudoku's moves cells by index, and cut a 5x5 grid to a 4x4 one)
            query = np.asarray(example.input)
            try:
                task.codec.encode(query)
                tokens = [task.codec.encode(task.augmenter.apply(t, query)) for _, t in variants]
            except ValueError as exc:
                raise PuzzleError(f"{puzzle.name}, query {qi + 1}: {exc}") from exc
            rows += [(q, pid, t, row) for (pid, t), row in zip(variants, tokens, strict=True)]
    if not rows:
        raise PuzzleError("no query to solve (the puzzle has no test input)")

    preds_by_step, conf_by_step, used = _run(model, task, rows, k, policy, per_variant, trace)
    answers = []
    for q, (puzzle, qi, note) in enumerate(queries):
        idx = [i for i, r in enumerate(rows) if r[0] == q]
        rankings = [  # per kept step: only the last, the answer, unless ``trace``
            rank([_decode(task, rows[i][2], preds[i]) for i in idx], [conf[i] for i in idx])
            for preds, conf in zip(preds_by_step, conf_by_step, strict=True)
        ]
        ranked = rankings[-1]
        grid = ranked[0].grid
        expected = np.asarray(puzzle.test[qi].output)
        known = puzzle.meta.get("has_solution", True) and expected.size > 1
        correct = bool(np.array_equal(grid, expected)) if known else None  # shapes too
        valid = _check_answer(task, np.asarray(puzzle.test[qi].input), grid)
        steps_trace = []
        if trace:
            won = [r[0] for r in rankings]
            steps_trace = trace_steps(
                task, puzzle.test[qi].input, [w.grid for w in won], [w.confidence for w in won]
            )
        answers.append(
            Answer(
                puzzle=puzzle.name,
                query=qi,
                grid=grid,
                votes=ranked[0].votes,
                variants=len(idx),
                confidence=ranked[0].confidence,
                steps=float(np.mean([used[i] for i in idx])),
                correct=correct,
                valid=valid,
                trace=steps_trace,
                note=note,
                attempts=[c.grid for c in ranked[:2]],
            )
        )
    return answers


def _decode(task: Task, transform: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    # an undecodable sample answer (all INVALID) is decoded as pad tokens
    grid = np.asarray(task.codec.decode(np.clip(tokens, 0, None)))
    try:
        return np.asarray(task.augmenter.invert(transform, grid))
    except (ValueError, IndexError):
        return grid  # an undecodable prediction (e.g. a malformed ARC crop) stays as is


@torch.no_grad()
def _run(
    model: RecursiveModel,
    task: Task,
    rows,
    k: int,
    policy: InferencePolicy,
    per_variant: bool,
    trace: bool,
):
    """Per row: the policy's answer and its confidence after each step (only the last
    unless ``trace``), and the mean steps of its trajectories."""
    n = len(rows)
    keep_steps = k if trace else 1
    chunk_rows = max(1, BATCH_ROWS // policy.samples)
    check_record_fits(
        k, policy.samples, min(n, chunk_rows), len(rows[0][3]), aux=len(policy.needs())
    )
    preds = [np.zeros((n, len(rows[0][3])), np.int64) for _ in range(keep_steps)]
    conf = [np.zeros(n) for _ in range(keep_steps)]
    used = np.zeros(n, dtype=np.float64)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(policy.seed)
    fixed = HaltPolicy("fixed")
    model.eval()
    for start in range(0, n, chunk_rows):
        chunk = rows[start : start + chunk_rows]
        here = slice(start, start + len(chunk))
        batch = RowBatch(
            inputs=np.stack([r[3] for r in chunk]).astype(np.int64),
            puzzle_ids=np.array([r[1] for r in chunk], dtype=np.int64),
            keys=np.arange(start, start + len(chunk)),
        )
        rec = record(
            model, batch, policy, task, depth=k, per_variant_ids=per_variant, generator=generator
        )
        checker = answer_checker(task, rec.inputs) if policy.checks else None
        final = decide(rec, policy.halt, policy.select, checker=checker)
        if trace:
            for depth in range(1, k):
                d = decide(rec, fixed, policy.select, depth=depth, checker=checker)
                preds[depth - 1][here] = d.preds
                conf[depth - 1][here] = d.confidence
        preds[-1][here] = final.preds
        conf[-1][here] = final.confidence
        used[here] = final.steps.mean(axis=0)
    return preds, conf, used
