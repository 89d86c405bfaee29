"""Sudoku plugin: codec, augmenter, solver/generator, evaluator, solve-input parsing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trmkit.errors import PuzzleError
from trmkit.plugins import get_task
from trmkit.task import EvalContext, PredictionBatch, SourceRequest
from trmkit_sudoku.augment import SudokuAugmenter
from trmkit_sudoku.generator import generate
from trmkit_sudoku.solver import GEOMETRIES, consistent, rating, solve, valid_solutions

# a Sudoku-Extreme train row (line 2 of train-1k.csv.gz)
QUESTION = "...7.2..5....95.8.19..8..67..4...6....79...2.26...1......5......39.....8....784.."
ANSWER = "846712935372695184195483267984237651517964823263851749728549316439126578651378492"


def grid_of(text: str) -> np.ndarray:
    return np.array([0 if ch == "." else int(ch) for ch in text]).reshape(9, 9)


@pytest.fixture(scope="module")
def solved_pairs():
    """(puzzle, solution) pairs per size from the generator (seeded)."""
    rng = np.random.default_rng(7)
    return {n: [(g.puzzle, g.solution) for g in generate(GEOMETRIES[n], 3, rng)] for n in (4, 6, 9)}


def test_registered_tasks_have_reference_codecs():
    extreme = get_task("sudoku")
    assert extreme.name == "sudoku-extreme"
    assert (extreme.codec.seq_len, extreme.codec.vocab_size) == (81, 11)
    assert (extreme.codec.pad_id, extreme.codec.ignore_label_id) == (0, 0)
    assert extreme.defaults.num_aug == 1000 and extreme.defaults.source == "generate"
    assert set(extreme.sources) == {"generate", "csv", "hub"}
    assert (get_task("sudoku-6x6").codec.seq_len, get_task("sudoku-6x6").codec.vocab_size) == (
        36,
        8,
    )
    assert (get_task("sudoku-4x4").codec.seq_len, get_task("sudoku-4x4").codec.vocab_size) == (
        16,
        6,
    )


def test_codec_tokens_match_reference():
    codec = get_task("sudoku").codec
    tokens = codec.encode(grid_of(QUESTION))
    assert tokens.dtype == np.uint8
    assert tokens[0] == 1 and tokens[3] == 8  # blank -> 1, digit 7 -> 8
    assert set(codec.encode(grid_of(ANSWER)).tolist()) == set(range(2, 11))


@given(st.sampled_from([4, 6, 9]), st.data())
@settings(max_examples=40)
def test_codec_round_trip(n, data):
    codec = get_task({4: "sudoku-4x4", 6: "sudoku-6x6", 9: "sudoku"}[n]).codec
    cells = data.draw(st.lists(st.integers(0, n), min_size=n * n, max_size=n * n))
    grid = np.array(cells).reshape(n, n)
    assert np.array_equal(codec.decode(codec.encode(grid)), grid)


@given(st.sampled_from([4, 6, 9]), st.integers(0, 2**32 - 1), st.data())
@settings(max_examples=60, deadline=None)
def test_augment_inverts_and_keeps_validity(solved_pairs, n, seed, data):
    augmenter = SudokuAugmenter(GEOMETRIES[n])
    puzzle, solution = data.draw(st.sampled_from(solved_pairs[n]))
    transforms = augmenter.draw(None, 5, np.random.default_rng(seed))
    assert len(transforms) == 5
    for t in transforms:
        assert t.shape == (augmenter.transform_size,)
        assert not np.array_equal(t, augmenter.identity())
        new_p, new_s = augmenter.apply(t, puzzle), augmenter.apply(t, solution)
        assert np.array_equal(augmenter.invert(t, new_p), puzzle)
        assert np.array_equal(augmenter.invert(t, new_s), solution)
        assert valid_solutions(new_s[None], GEOMETRIES[n])[0]
        assert consistent(new_p[None], new_s[None])[0]
        assert (new_p == 0).sum() == (puzzle == 0).sum()
    if n == 6:  # a transpose would break 2x3 boxes
        assert all(t[0] == 0 for t in transforms)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=20, deadline=None)
def test_apply_batch_matches_apply(seed):
    augmenter = SudokuAugmenter(GEOMETRIES[9])
    rng = np.random.default_rng(seed)
    transforms = augmenter.draw_batch(16, rng)
    grids = rng.integers(-1, 10, size=(16, 9, 9))  # -1: an invalid decoded cell
    batch = augmenter.apply_batch(transforms, grids)
    for t, g, out in zip(transforms, grids, batch, strict=True):
        assert np.array_equal(out, augmenter.apply(t, g))
    assert np.array_equal(augmenter.invert_batch(transforms, batch), grids)


def test_reference_transform_formula():
    """new[i, j] = digit_map[T(old)[row_perm[i], col_perm[j]]] as in reference 6.1."""
    augmenter = SudokuAugmenter(GEOMETRIES[9])
    t = augmenter.draw_batch(1, np.random.default_rng(3))[0]
    t[0] = 1
    old = grid_of(ANSWER)
    rows, cols, digits = t[1:10], t[10:19], t[19:]
    expected = np.array([[digits[old.T[rows[i], cols[j]]] for j in range(9)] for i in range(9)])
    assert np.array_equal(augmenter.apply(t, old), expected)
    assert sorted(rows[:3] // 3) == [rows[0] // 3] * 3  # rows stay inside their band


def test_solver_and_rating():
    geo = GEOMETRIES[9]
    result = solve(grid_of(QUESTION), geo)
    assert len(result.solutions) == 1
    assert np.array_equal(result.solutions[0], grid_of(ANSWER))
    bad = grid_of(QUESTION)
    bad[0, 0] = 7  # a second 7 in row 0: no solution
    assert solve(bad, geo).solutions == []
    easy = grid_of(ANSWER)
    easy[0, :3] = 0
    assert rating(easy, geo) == 0  # singles only
    assert rating(grid_of(QUESTION), geo) > 0
    empty = np.zeros((9, 9), dtype=int)
    assert len(solve(empty, geo, limit=2).solutions) == 2


def test_generator_unique_rated_deterministic_and_disjoint():
    task = get_task("sudoku")
    request = SourceRequest(None, 5, {"count": "4", "test_count": "3", "min_rating": "3"})
    data = task.sources["generate"].load(request)
    again = task.sources["generate"].load(request)
    train = [p for p in data.puzzles if p.train]
    test = [p for p in data.puzzles if p.test]
    assert (len(train), len(test)) == (4, 3)
    keys = set()
    for p, q in zip(data.puzzles, again.puzzles, strict=True):
        ex = (p.train or p.test)[0]
        assert np.array_equal(ex.input, (q.train or q.test)[0].input)  # same seed, same puzzles
        result = solve(ex.input, GEOMETRIES[9])
        assert len(result.solutions) == 1 and np.array_equal(result.solutions[0], ex.output)
        assert p.meta["rating"] == result.guesses >= 3
        keys.add(np.asarray(ex.input).tobytes())
    assert len(keys) == 7  # train and test disjoint
    other = task.sources["generate"].load(SourceRequest(None, 6, {"count": "1", "test_count": "0"}))
    assert not np.array_equal(other.puzzles[0].train[0].input, data.puzzles[0].train[0].input)


def test_generator_givens_option_and_small_sizes():
    rng = np.random.default_rng(1)
    easy = list(generate(GEOMETRIES[9], 2, rng, givens=40))
    assert all((g.puzzle > 0).sum() == 40 for g in easy)
    for n in (4, 6):
        for g in generate(GEOMETRIES[n], 5, rng):
            assert len(solve(g.puzzle, GEOMETRIES[n]).solutions) == 1
            assert valid_solutions(g.solution[None], GEOMETRIES[n])[0]


def _context(task, transforms):
    return EvalContext(
        codec=task.codec,
        augmenter=task.augmenter,
        group_names=["a", "b", "c"],
        puzzle_group=np.arange(3),
        transforms=transforms,
    )


def test_evaluator_hand_made_predictions():
    task = get_task("sudoku")
    codec = task.codec
    puzzle, solution = grid_of(QUESTION), grid_of(ANSWER)
    inputs = np.stack([codec.encode(puzzle)] * 4)
    labels = np.stack([codec.encode(solution)] * 4)
    preds = labels.copy()
    preds[1, 0] = 0  # one PAD token: wrong, and not a valid grid
    swapped = solution.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]  # same stack: still a valid sudoku
    preds[2] = codec.encode(swapped)  # valid grid, but contradicts givens (col 1 given '9')
    run = task.evaluator.start(_context(task, np.stack([task.augmenter.identity()] * 3)))
    run.update(PredictionBatch(inputs, labels, preds, np.array([0, 1, 2, -1]), np.zeros(4)))
    metrics = run.finish()
    assert metrics["count"] == 3
    assert metrics["exact_accuracy"] == pytest.approx(1 / 3)
    wrong2 = float((preds[2] != labels[2]).sum())
    assert metrics["token_accuracy"] == pytest.approx((1 + 80 / 81 + (81 - wrong2) / 81) / 3)
    assert metrics["valid_solution_rate"] == pytest.approx(1 / 3)


def test_evaluator_inverts_augmented_rows():
    task = get_task("sudoku")
    aug, codec = task.augmenter, task.codec
    t = aug.draw(None, 1, np.random.default_rng(0))[0]
    puzzle, solution = aug.apply(t, grid_of(QUESTION)), aug.apply(t, grid_of(ANSWER))
    row = lambda g: codec.encode(g)[None]  # noqa: E731
    run = task.evaluator.start(_context(task, np.stack([t] * 3)))
    run.update(
        PredictionBatch(row(puzzle), row(solution), row(solution), np.array([2]), np.zeros(1))
    )
    assert run.finish()["valid_solution_rate"] == 1.0


def test_parse_puzzles_and_render(tmp_path: Path):
    task = get_task("sudoku")
    file = tmp_path / "q.txt"
    file.write_text(f"# two puzzles\n{QUESTION}\n{QUESTION.replace('.', '0')}\n")
    puzzles = task.parse_puzzles(str(file))
    assert len(puzzles) == 2 and puzzles[0].meta["unique"]
    assert np.array_equal(puzzles[1].test[0].output, grid_of(ANSWER))
    assert len(task.parse_puzzles(QUESTION)) == 1
    with pytest.raises(PuzzleError, match="line 1: 80 cells"):
        task.parse_puzzles(QUESTION[:-1])
    with pytest.raises(PuzzleError, match="illegal character 'x'"):
        task.parse_puzzles("x" + QUESTION[1:])
    text = task.render(grid_of(QUESTION))
    assert text.splitlines()[0] == ". . . | 7 . 2 | . . 5"
    assert text.splitlines()[3] == "------+-------+------"


def test_generator_option_errors():
    from trmkit.errors import SourceError

    source = get_task("sudoku-4x4").sources["generate"]
    with pytest.raises(SourceError, match="option test_count=-1: must be >= 0"):
        source.load(SourceRequest(None, 0, {"test_count": "-1"}))
    with pytest.raises(SourceError, match="rating >= 1 .*lower min_rating"):
        source.load(SourceRequest(None, 0, {"count": "1", "min_rating": "1"}))  # 4x4: all 0
