"""ARC evaluation: crop, undo each variant's augmentation, vote, pass@K (reference 7.2).

For every prediction row the input, the prediction and the label are cropped from their
canvas (`crop_shapes`) and mapped back through the inverse of the row's transform. Rows are
grouped by (task, hash of the de-augmented input), i.e. by test input. Identical predicted
grids pool their votes: votes = count, score = mean halting confidence; the ranking is
(votes, mean q) descending. pass@K: the true output is among the top K; a task scores the
fraction of its test inputs solved; ``ARC/pass@K`` is the mean over the split's tasks.

Votes belong to one `ArcEvalRun` (one evaluation pass). The reference kept them for the
whole training run and so silently ensembled every checkpoint evaluated so far (9.1 #3);
here ensembling is explicit: ``run.merge(other_run)`` or `ArcVotes.load(path).merge(...)`
on the ``arc_votes.json.gz`` file each pass writes beside ``submission.json``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from trmkit import atomic
from trmkit.errors import StoreError
from trmkit.grids.metrics import AccuracyTally, real_rows
from trmkit.task import EvalContext, PredictionBatch
from trmkit.voting import grid_hash
from trmkit_arc.codec import ArcCodec

PASS_KS: tuple[int, ...] = (1, 2, 5, 10, 100, 1000)
SUBMISSION_K = 2
VOTES_FILE = "arc_votes.json.gz"
SUBMISSION_FILE = "submission.json"
KEEP_GRIDS = 10


@attrs.define
class TestInput:
    """Votes for one test input of one task."""

    order: tuple[int, int]
    """(puzzle index, row within the puzzle) of its first sighting: submission order."""
    truth: str
    """hash of the true output grid."""
    votes: dict[str, list[float]] = attrs.field(factory=dict)
    """predicted grid hash -> [count, sum of q_halt]."""

    def ranked(self) -> list[tuple[str, int, float]]:
        """(hash, votes, mean q) best first; exact ties broken by hash for determinism."""
        rows = [(h, int(c), s / c) for h, (c, s) in self.votes.items()]
        rows.sort(key=lambda r: (-r[1], -r[2], r[0]))
        return rows


class ArcVotes:
    """All votes of one or more evaluation passes; mergeable and saveable (JSON.gz)."""

    def __init__(self, tasks: Iterable[str] = ()) -> None:
        self.tasks: set[str] = set(tasks)
        """every task of the split (the pass@K denominator, seen or not)."""
        self.inputs: dict[str, dict[str, TestInput]] = {}
        self.grids: dict[str, tuple[int, int, bytes]] = {}
        """hash -> compact grid (rows, cols, uint8 cells) of predictions and truths."""

    def add(
        self,
        task: str,
        input_hash: str,
        order: tuple[int, int],
        truth: np.ndarray,
        prediction: np.ndarray,
        q: float,
    ) -> None:
        self.tasks.add(task)
        entry = self.inputs.setdefault(task, {}).get(input_hash)
        if entry is None:
            truth_hash = grid_hash(truth)
            self.grids.setdefault(truth_hash, _pack(truth))
            entry = self.inputs[task][input_hash] = TestInput(order, truth_hash)
        elif order < entry.order:
            entry.order = order
        pred_hash = grid_hash(prediction)
        if pred_hash not in self.grids:
            self.grids[pred_hash] = _pack(prediction)
        slot = entry.votes.setdefault(pred_hash, [0, 0.0])
        slot[0] += 1
        slot[1] += float(q)

    def merge(self, other: ArcVotes) -> ArcVotes:
        """Pool ``other``'s votes into these (explicit checkpoint ensembling); returns self."""
        self.tasks |= other.tasks
        self.grids.update({h: g for h, g in other.grids.items() if h not in self.grids})
        for task, entries in other.inputs.items():
            mine = self.inputs.setdefault(task, {})
            for input_hash, theirs in entries.items():
                entry = mine.setdefault(input_hash, TestInput(theirs.order, theirs.truth))
                entry.order = min(entry.order, theirs.order)
                for h, (count, q_sum) in theirs.votes.items():
                    slot = entry.votes.setdefault(h, [0, 0.0])
                    slot[0] += count
                    slot[1] += q_sum
        return self

    def ordered(self, task: str) -> list[TestInput]:
        return sorted(self.inputs.get(task, {}).values(), key=lambda e: e.order)

    def metrics(self, pass_ks: Sequence[int] = PASS_KS) -> dict[str, float]:
        """``ARC/pass@K``: mean over tasks of the fraction of test inputs solved in top K."""
        totals = dict.fromkeys(pass_ks, 0.0)
        for task in self.tasks:
            entries = self.ordered(task)
            if not entries:
                continue
            for k in pass_ks:
                solved = sum(any(h == e.truth for h, _, _ in e.ranked()[:k]) for e in entries)
                totals[k] += solved / len(entries)
        n = max(len(self.tasks), 1)
        out = {f"ARC/pass@{k}": totals[k] / n for k in pass_ks}
        out["ARC/tasks"] = float(len(self.tasks))
        out["ARC/test_inputs"] = float(sum(len(v) for v in self.inputs.values()))
        return out

    def submission(self, k: int = SUBMISSION_K) -> dict[str, list[dict[str, Any]]]:
        """Kaggle format: {task: [{"attempt_1": grid, ...} per test input, in order]}."""
        out: dict[str, list[dict[str, Any]]] = {}
        for task in sorted(self.inputs):
            attempts = []
            for entry in self.ordered(task):
                # candidates whose grid was not kept (merged from a saved file) are skipped
                ranked = [h for h, _, _ in entry.ranked() if h in self.grids]
                top = [_unpack(self.grids[h]) for h in ranked[:k]] or [[[0]]]
                top += [top[0]] * (k - len(top))  # pad by repeating the first attempt
                attempts.append({f"attempt_{i + 1}": grid for i, grid in enumerate(top)})
            out[task] = attempts
        return out

    # ------------------------------------------------------------------ persistence

    def to_json(self, keep_grids: int = KEEP_GRIDS) -> dict[str, Any]:
        """Plain data: every vote, but grids only of each input's truth and ``keep_grids``
        best candidates (an untrained model predicts ~one distinct grid per row)."""
        every = [e for entries in self.inputs.values() for e in entries.values()]
        kept = {e.truth for e in every} | {h for e in every for h, _, _ in e.ranked()[:keep_grids]}
        return {
            "format": "trmkit-arc-votes/1",
            "tasks": sorted(self.tasks),
            "inputs": {
                task: {h: attrs.asdict(e) for h, e in entries.items()}
                for task, entries in self.inputs.items()
            },
            "grids": {h: _unpack(g) for h, g in self.grids.items() if h in kept},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArcVotes:
        if data.get("format") != "trmkit-arc-votes/1":
            raise ValueError("not a trmkit ARC votes file")
        votes = cls(data["tasks"])
        votes.grids = {h: _pack(np.asarray(g, dtype=np.int64)) for h, g in data["grids"].items()}
        for task, entries in data["inputs"].items():
            votes.inputs[task] = {
                h: TestInput(tuple(e["order"]), e["truth"], _votes(e["votes"]))
                for h, e in entries.items()
            }
        return votes

    def save(self, path: Path) -> None:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            json.dump(self.to_json(), fh)

    @classmethod
    def load(cls, path: Path) -> ArcVotes:
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return cls.from_json(json.load(fh))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{path}: not a readable ARC votes file ({exc})") from None


class ArcEvalRun:
    """One evaluation pass (see module docstring)."""

    def __init__(
        self,
        context: EvalContext,
        pass_ks: Sequence[int] = PASS_KS,
        submission_k: int = SUBMISSION_K,
    ) -> None:
        self.context = context
        self.pass_ks = tuple(pass_ks)
        self.submission_k = submission_k
        groups = np.unique(np.asarray(context.puzzle_group))
        self.votes = ArcVotes(context.group_names[int(g)] for g in groups)
        self.tally = AccuracyTally(context.codec.ignore_label_id)
        self._rows_seen: dict[int, int] = {}

    def update(self, batch: PredictionBatch) -> None:
        rows = real_rows(batch)
        if not len(rows):
            return
        ctx = self.context
        labels = np.asarray(batch.labels)[rows]
        predictions = np.asarray(batch.predictions)[rows]
        inputs = np.asarray(batch.inputs)[rows]
        self.tally.update(labels, predictions)
        puzzles = np.asarray(batch.puzzle_index)[rows].astype(np.int64)
        groups = np.asarray(ctx.puzzle_group)[puzzles]
        transforms = np.asarray(ctx.transforms)[puzzles]
        q_halt = np.asarray(batch.q_halt, dtype=np.float64)[rows]
        # the canvas side follows the row length (C x C tokens)
        crops = [ArcCodec.decode_batch(a) for a in (inputs, predictions, labels)]
        invert = ctx.augmenter.invert
        for j, puzzle in enumerate(puzzles.tolist()):
            t = transforms[j]
            grid_in, grid_pred, grid_label = (invert(t, crop[j]) for crop in crops)
            ordinal = self._rows_seen.get(puzzle, 0)
            self._rows_seen[puzzle] = ordinal + 1
            task = ctx.group_names[int(groups[j])]
            self.votes.add(
                task, grid_hash(grid_in), (puzzle, ordinal), grid_label, grid_pred, q_halt[j]
            )

    def merge(self, other: ArcEvalRun | ArcVotes) -> ArcEvalRun:
        """Pool another pass's votes into this one (explicit ensembling); returns self."""
        self.votes.merge(other.votes if isinstance(other, ArcEvalRun) else other)
        return self

    def finish(self) -> dict[str, float]:
        metrics = {**self.tally.metrics(), **self.votes.metrics(self.pass_ks)}
        out_dir = self.context.out_dir
        if out_dir is not None:
            out_dir = Path(out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            submission = self.votes.submission(self.submission_k)
            atomic.write_text(out_dir / SUBMISSION_FILE, json.dumps(submission))
            self.votes.save(out_dir / VOTES_FILE)
        return metrics


def _pack(grid: np.ndarray) -> tuple[int, int, bytes]:
    grid = np.asarray(grid)
    return int(grid.shape[0]), int(grid.shape[1]), grid.astype(np.uint8).tobytes()


def _unpack(packed: tuple[int, int, bytes]) -> list[list[int]]:
    rows, cols, cells = packed
    if rows * cols == 0:
        return [[0]]  # an empty crop is no valid ARC answer
    return np.frombuffer(cells, np.uint8).reshape(rows, cols).tolist()


def _votes(raw: dict[str, list[float]]) -> dict[str, list[float]]:
    return {h: [int(c), float(q)] for h, (c, q) in raw.items()}


@attrs.frozen
class ArcEvaluator:
    """Starts one `ArcEvalRun` per evaluation pass."""

    pass_ks: tuple[int, ...] = PASS_KS
    submission_k: int = SUBMISSION_K

    def start(self, context: EvalContext) -> ArcEvalRun:
        return ArcEvalRun(context, self.pass_ks, self.submission_k)
