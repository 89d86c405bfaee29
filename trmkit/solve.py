"""`trmkit solve`: answer puzzles with a trained checkpoint, with test-time augmentation voting.

For every query (a test example of a parsed puzzle) the solver builds the variants to run:

* tasks with one shared puzzle id (Sudoku, Maze): the puzzle as given, id 0;
* tasks with per-variant ids (ARC): every variant of that task the checkpoint was trained
  with, each with its own embedding row (from the checkpoint's puzzle-id table). A task that
  is not in the table gets the blank id and ``num_aug`` freshly drawn variants; the answer
  says so, because ARC models are transductive: without the task's trained embedding rows
  accuracy collapses (reference 9.2; arXiv 2512.11847 reports 0% with blank ids).

Each variant is encoded, run for K supervision steps (or until the halting head fires, with
``adaptive``), decoded, mapped back with the augmenter's exact inverse, and the variants
vote: the most frequent grid wins, ties broken by the mean halting confidence (as the ARC
evaluator, reference 7.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from trmkit.errors import CheckpointError, PuzzleError
from trmkit.evaluation import max_steps_override, model_halt_max_steps
from trmkit.task import RawPuzzle, Task
from trmkit.training.checkpoint import Bundle
from trmkit.training.state import read_json, read_safetensors

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


def check_task_matches(bundle: Bundle, task: Task) -> None:
    """The checkpoint must have been trained on this task's encoding."""
    data = bundle.manifest["dataset"]
    codec = task.codec
    if bundle.manifest["task"].get("version") != task.version:
        raise CheckpointError(
            f"{bundle.path}: trained with task {task.name!r} version "
            f"{bundle.manifest['task'].get('version')!r}, the installed plugin is version "
            f"{task.version!r}; use the matching plugin version")
    for key, want in (("seq_len", codec.seq_len), ("vocab_size", codec.vocab_size)):
        if int(data.get(key, -1)) != int(want):
            raise CheckpointError(
                f"{bundle.path}: checkpoint {key} {data.get(key)} does not match task "
                f"{task.name!r} ({want}); it was trained on another task or vocabulary")


class PuzzleIdTable:
    """Checkpoint-side map (puzzle name, transform) -> embedding row."""

    def __init__(self, bundle_path: Path) -> None:
        self.groups: dict[str, list[tuple[int, np.ndarray]]] = {}
        file = bundle_path / "puzzle_ids.safetensors"
        if not file.exists():
            return
        arrays = read_safetensors(file)
        names = read_json(bundle_path / "puzzle_ids.json")["group_names"]
        group = arrays["group"].numpy()
        transforms = arrays["transform"].numpy()
        for pid in np.nonzero(group >= 0)[0]:
            self.groups.setdefault(names[group[pid]], []).append((int(pid), transforms[pid]))

    def variants(self, name: str) -> list[tuple[int, np.ndarray]]:
        return self.groups.get(name, [])


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
    data = bundle.manifest["dataset"]
    per_variant = int(data.get("num_puzzle_identifiers", 1)) > 1
    blank_id = int(data.get("blank_identifier_id", 0))
    table = PuzzleIdTable(bundle.path)
    rng = np.random.default_rng(seed)
    k = int(steps) if steps else model_halt_max_steps(model)

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
    buckets: dict[tuple, list[int]] = {}
    for i, g in enumerate(grids):
        buckets.setdefault((g.shape, g.tobytes()), []).append(i)
    best = max(buckets.values(), key=lambda ix: (len(ix), float(np.mean([q[i] for i in ix]))))
    return grids[best[0]], len(best), float(np.mean([q[i] for i in best]))


@torch.no_grad()
def _run(model, rows, k: int, adaptive: bool, trace: bool, device):
    """Predictions after each step (only the last unless ``trace``), final q, steps used."""
    n = len(rows)
    keep_steps = k if trace else 1
    preds = [np.zeros((n, len(rows[0][3])), np.int64) for _ in range(keep_steps)]
    q_final = np.zeros(n)
    used = np.full(n, k, dtype=np.float64)
    model.eval()
    with max_steps_override(model, k):
        for start in range(0, n, BATCH_ROWS):
            chunk = rows[start:start + BATCH_ROWS]
            inputs = torch.tensor(np.stack([r[3] for r in chunk]).astype(np.int32), device=device)
            batch = {"inputs": inputs,
                     "labels": torch.full_like(inputs, -100),
                     "puzzle_identifiers": torch.tensor([r[1] for r in chunk], dtype=torch.int32,
                                                        device=device)}
            carry = model.initial_carry(batch)
            stopped = torch.zeros(len(chunk), dtype=torch.bool, device=device)
            held = None
            held_q = torch.zeros(len(chunk), device=device)
            for s in range(1, k + 1):
                carry, _loss, _m, out, _h = model(carry, batch)
                p, q = out["preds"], out["q_halt_logits"].float()
                if adaptive:
                    held = p.clone() if held is None else torch.where(stopped[:, None], held, p)
                    held_q = torch.where(stopped, held_q, q)
                    newly = (~stopped) & (q > 0)
                    used[start:start + len(chunk)][newly.cpu().numpy()] = s
                    stopped |= newly
                    p, q = held, held_q
                if trace:
                    preds[s - 1][start:start + len(chunk)] = p.cpu().numpy()
                elif s == k:
                    preds[0][start:start + len(chunk)] = p.cpu().numpy()
            q_final[start:start + len(chunk)] = torch.sigmoid(q.double()).cpu().numpy()
    return preds, q_final, used


def render_trace_png(task: Task, answer: Answer, out: Path) -> bool:
    """The answer after each supervision step as a strip of coloured grids (matplotlib)."""
    from trmkit.training.metrics_log import have_matplotlib

    if not have_matplotlib() or not answer.trace:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(answer.trace)
    cols = min(k, 8)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.9 * rows), squeeze=False)
    vmax = max(int(np.max(g)) for g in answer.trace) if answer.trace else 1
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:
            g = answer.trace[i]
            ax.imshow(g, cmap="tab20", vmin=-1, vmax=max(vmax, 1), interpolation="nearest")
            if g.size <= 100:
                for (r, c), v in np.ndenumerate(g):
                    ax.text(c, r, str(int(v)), ha="center", va="center", fontsize=6)
            ax.set_title(f"step {i + 1}", fontsize=8)
    fig.suptitle(f"{answer.puzzle} (query {answer.query + 1})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True
