"""ARC evaluator: de-augmented voting, pass@K per task, tie-breaks, submission.json, merging."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trmkit.errors import StoreError
from trmkit.task import EvalContext, PredictionBatch
from trmkit_arc.augment import ArcAugmenter
from trmkit_arc.codec import ArcCodec
from trmkit_arc.evaluate import ArcEvaluator, ArcVotes

codec, aug = ArcCodec(), ArcAugmenter()
ROT = np.array([1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 1])  # rot90 + a colour swap

A_IN = [np.array([[1, 2, 3], [0, 0, 4]]), np.array([[5, 5], [6, 0], [0, 7]])]
A_OUT = [np.array([[4, 0], [3, 0], [2, 1]]), np.array([[7, 0, 5], [0, 6, 5]])]
B_IN, B_OUT = np.array([[2, 2], [0, 2]]), np.array([[9]])
WRONG = np.array([[1, 1], [1, 1]])


def _context(out_dir: Path | None = None) -> EvalContext:
    # puzzles: 0 = A identity, 1 = A rotated, 2 = B identity, 3 = B rotated
    transforms = np.stack([aug.identity(), ROT, aug.identity(), ROT])
    return EvalContext(
        codec=codec,
        augmenter=aug,
        group_names=["taskA", "taskB"],
        puzzle_group=np.array([0, 0, 1, 1]),
        transforms=transforms,
        out_dir=out_dir,
    )


def _row(t, grid_in, grid_out, pred):
    """Tokens for one row; ``pred`` is a grid in original orientation (None = truth)."""
    pred = grid_out if pred is None else pred
    return (
        codec.encode(aug.apply(t, grid_in)),
        codec.encode(aug.apply(t, grid_out)),
        codec.encode(aug.apply(t, pred)),
    )


def _batch(rows, puzzles, q) -> PredictionBatch:
    inputs, labels, preds = (np.stack(x) for x in zip(*rows, strict=True))
    return PredictionBatch(
        inputs=inputs.astype(np.int64),
        labels=labels.astype(np.int64),
        predictions=preds.astype(np.int64),
        puzzle_index=np.asarray(puzzles),
        q_halt=np.asarray(q, dtype=np.float32),
    )


def _scenario(b_wrong_q: float, b_right_q: float):
    """A: test input 0 right in both variants, input 1 wrong in both; B: a 1-1 tie."""
    ident = aug.identity()
    rows = [
        _row(ident, A_IN[0], A_OUT[0], None),
        _row(ident, A_IN[1], A_OUT[1], WRONG),
        _row(ROT, A_IN[0], A_OUT[0], None),
        _row(ROT, A_IN[1], A_OUT[1], WRONG[:1]),
        _row(ident, B_IN, B_OUT, WRONG),
        _row(ROT, B_IN, B_OUT, None),
    ]
    return rows, [0, 0, 1, 1, 2, 3], [0.9, 0.9, 0.8, 0.8, b_wrong_q, b_right_q]


def _run(out_dir=None, b_wrong_q=0.2, b_right_q=0.7):
    run = ArcEvaluator().start(_context(out_dir))
    rows, puzzles, q = _scenario(b_wrong_q, b_right_q)
    run.update(_batch(rows[:3], puzzles[:3], q[:3]))
    pad = _row(aug.identity(), B_IN, B_OUT, WRONG)
    run.update(_batch([*rows[3:], pad], [*puzzles[3:], -1], [*q[3:], 0.0]))  # -1: padding
    return run


def test_pass_at_k_per_task_and_tie_break_by_mean_q():
    metrics = _run(b_wrong_q=0.2, b_right_q=0.7).finish()
    # task A: 1 of 2 test inputs solved -> 0.5; task B: right answer wins the 1-1 tie by q
    assert metrics["ARC/pass@1"] == pytest.approx(0.75)
    assert metrics["ARC/pass@2"] == pytest.approx(0.75)
    assert metrics["ARC/tasks"] == 2 and metrics["ARC/test_inputs"] == 3
    # rows: A0 x2 right, A1 x2 wrong, B wrong, B right -> 3 of 6 exact (padding ignored)
    assert metrics["exact_accuracy"] == pytest.approx(0.5) and metrics["count"] == 6
    assert 0.5 < metrics["token_accuracy"] < 1
    flipped = _run(b_wrong_q=0.9, b_right_q=0.1).finish()
    assert flipped["ARC/pass@1"] == pytest.approx(0.25)  # B's wrong grid now ranks first
    assert flipped["ARC/pass@2"] == pytest.approx(0.75)
    assert flipped["ARC/pass@1000"] == pytest.approx(0.75)


def test_votes_outweigh_confidence():
    run = ArcEvaluator().start(_context())
    ident = aug.identity()
    rows = [_row(ident, B_IN, B_OUT, WRONG), _row(ROT, B_IN, B_OUT, WRONG)]
    rows.append(_row(ROT, B_IN, B_OUT, None))
    run.update(_batch(rows, [2, 3, 3], [0.1, 0.1, 0.99]))
    metrics = run.finish()
    # the de-augmented WRONG grid has 2 votes against 1: pass@1 fails, pass@2 succeeds
    assert metrics["ARC/pass@1"] == 0 and metrics["ARC/pass@2"] == pytest.approx(0.5)


def test_unseen_task_counts_as_zero():
    run = ArcEvaluator().start(_context())
    run.update(_batch([_row(aug.identity(), B_IN, B_OUT, None)], [2], [0.5]))
    assert run.finish()["ARC/pass@1"] == pytest.approx(0.5)  # taskA never predicted


def test_submission_json(tmp_path: Path):
    _run(tmp_path, b_wrong_q=0.2, b_right_q=0.7).finish()
    submission = json.loads((tmp_path / "submission.json").read_text())
    assert sorted(submission) == ["taskA", "taskB"]
    a0, a1 = submission["taskA"]  # test inputs in order
    assert a0 == {"attempt_1": A_OUT[0].tolist(), "attempt_2": A_OUT[0].tolist()}  # padded
    assert a1["attempt_1"] in (WRONG.tolist(), WRONG[:1].tolist())
    assert {json.dumps(a1["attempt_1"]), json.dumps(a1["attempt_2"])} == {
        json.dumps(WRONG.tolist()),
        json.dumps(WRONG[:1].tolist()),
    }
    (b0,) = submission["taskB"]
    assert b0 == {"attempt_1": B_OUT.tolist(), "attempt_2": WRONG.tolist()}
    assert (tmp_path / "arc_votes.json.gz").exists()


def test_state_is_per_run_and_merging_is_explicit(tmp_path: Path):
    first = _run(b_wrong_q=0.2, b_right_q=0.7)
    second = _run(b_wrong_q=0.2, b_right_q=0.7)
    assert second.finish()["ARC/pass@1"] == pytest.approx(0.75)  # no carry-over
    # a third pass that votes twice for the wrong B grid
    third = ArcEvaluator().start(_context(tmp_path))
    rows = [_row(aug.identity(), B_IN, B_OUT, WRONG), _row(ROT, B_IN, B_OUT, WRONG)]
    third.update(_batch(rows, [2, 3], [0.5, 0.5]))
    third.finish()
    assert first.finish()["ARC/pass@1"] == pytest.approx(0.75)
    merged = first.merge(third).finish()
    assert merged["ARC/pass@1"] == pytest.approx(0.25)  # wrong B now has 3 votes vs 1
    loaded = ArcVotes.load(tmp_path / "arc_votes.json.gz")
    again = _run().merge(loaded).finish()
    assert again["ARC/pass@1"] == pytest.approx(0.25)
    roundtrip = ArcVotes.from_json(json.loads(json.dumps(loaded.to_json())))
    assert roundtrip.metrics() == loaded.metrics()


def test_bad_votes_file(tmp_path: Path):
    (tmp_path / "v.json.gz").write_bytes(b"nope")
    with pytest.raises(StoreError, match="not a readable ARC votes file"):
        ArcVotes.load(tmp_path / "v.json.gz")
