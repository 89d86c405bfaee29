"""Maze plugin: codec, dihedral augmenter, generator, path checks, evaluator, parsing."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trmkit.errors import PuzzleError
from trmkit.grids.dihedral import DIHEDRAL_INVERSE, apply_dihedral, invert_dihedral
from trmkit.plugins import get_task
from trmkit.task import EvalContext, PredictionBatch, SourceRequest
from trmkit_maze.augment import DihedralAugmenter
from trmkit_maze.generator import generate
from trmkit_maze.grid import CHARS, OPEN, PATH, WALL, bfs, endpoints, path_checks

DATA = Path(__file__).parents[2] / "shared" / "data" / "maze-30x30-hard-1k"


def maze_of(text: list[str]) -> np.ndarray:
    return np.array([[CHARS.index(ch) for ch in row] for row in text])


SMALL = maze_of(["S  #", " # #", " #  ", "   G"])
SMALL_PATH = maze_of(["S  #", "o# #", "o#  ", "oooG"])


@pytest.fixture(scope="module")
def mazes():
    return list(generate(15, 4, np.random.default_rng(3), min_path=56))


def test_registered_tasks():
    task = get_task("maze")
    assert task.name == "maze-hard"
    assert (task.codec.seq_len, task.codec.vocab_size, task.codec.pad_id) == (900, 6, 0)
    assert task.defaults.num_aug == 7
    assert get_task("maze-small").codec.seq_len == 225
    assert get_task("maze-tiny").codec.seq_len == 121


def test_codec_tokens_match_reference():
    codec = get_task("maze-tiny").codec
    grid = np.zeros((11, 11), dtype=int)
    grid[0, :5] = [0, 1, 2, 3, 4]
    assert codec.encode(grid)[:5].tolist() == [1, 2, 3, 4, 5]  # "# SGo" -> 1..5


@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 7), st.integers(0, 2**32 - 1))
@settings(max_examples=80)
def test_dihedral_inverse_any_shape(rows, cols, tid, seed):
    grid = np.random.default_rng(seed).integers(0, 5, size=(rows, cols))
    out = apply_dihedral(grid, tid)
    assert np.array_equal(invert_dihedral(out, tid), grid)
    assert np.array_equal(apply_dihedral(out, DIHEDRAL_INVERSE[tid]), grid)


def test_dihedral_ids_match_reference():
    g = np.arange(6).reshape(2, 3)
    expected = [
        g,
        np.rot90(g),
        np.rot90(g, 2),
        np.rot90(g, 3),
        np.fliplr(g),
        np.flipud(g),
        g.T,
        np.fliplr(np.rot90(g)),
    ]
    for tid, want in enumerate(expected):
        assert np.array_equal(apply_dihedral(g, tid), want)
    assert (
        len({apply_dihedral(g, t).tobytes() + bytes(apply_dihedral(g, t).shape) for t in range(8)})
        == 8
    )


def test_draw_all_seven_and_batch(mazes):
    aug = DihedralAugmenter()
    ts = aug.draw(None, 7, np.random.default_rng(0))
    assert sorted(int(t[0]) for t in ts) == list(range(1, 8))
    few = aug.draw(None, 3, np.random.default_rng(0))
    assert len({int(t[0]) for t in few}) == 3 and all(t[0] != 0 for t in few)
    grids = np.stack([m.solution for m in mazes] * 2)
    transforms = np.array([[t] for t in range(8)])
    out = aug.apply_batch(transforms, grids)
    for t, g, o in zip(transforms, grids, out, strict=True):
        assert np.array_equal(o, aug.apply(t, g))
    assert np.array_equal(aug.invert_batch(transforms, out), grids)


@given(st.integers(0, 7), st.integers(0, 3))
@settings(max_examples=32, deadline=None)
def test_augmented_paths_stay_shortest(mazes, tid, which):
    aug = DihedralAugmenter()
    m = mazes[which]
    t = np.array([tid])
    maze, solution = aug.apply(t, m.maze), aug.apply(t, m.solution)
    assert path_checks(maze, solution) == (True, True)
    assert np.array_equal(aug.invert(t, solution), m.solution)


def test_generator_path_length_determinism_disjoint():
    task = get_task("maze")
    request = SourceRequest(None, 11, {"count": "3", "test_count": "2"})
    data = task.sources["generate"].load(request)
    again = task.sources["generate"].load(request)
    assert [p.name for p in data.puzzles] == [f"train-{i:06d}" for i in range(3)] + [
        f"test-{i:06d}" for i in range(2)
    ]
    keys = set()
    for p, q in zip(data.puzzles, again.puzzles, strict=True):
        ex = (p.train or p.test)[0]
        assert np.array_equal(ex.input, (q.train or q.test)[0].input)
        start, goal = endpoints(ex.input)
        steps = bfs(ex.input, start)[goal]
        assert steps + 1 > 110 and p.meta["path_cells"] == steps + 1
        assert path_checks(ex.input, ex.output) == (True, True)
        keys.add(np.asarray(ex.input).tobytes())
    assert len(keys) == 5


def test_path_checks_cases():
    assert path_checks(SMALL, SMALL_PATH) == (True, True)
    longer = maze_of(["Soo#", " #o#", " #oo", "   G"])
    assert path_checks(SMALL, longer) == (True, True)  # another shortest path
    detour = maze_of(["Soo#", "o#o#", "o#oo", "oooG"])
    assert path_checks(SMALL, detour) == (True, False)  # connected, too many cells
    broken = maze_of(["S  #", "o# #", " #  ", "oooG"])
    assert path_checks(SMALL, broken) == (False, False)
    through_wall = SMALL_PATH.copy()
    through_wall[1, 1] = PATH
    assert path_checks(SMALL, through_wall) == (False, False)


def _batch(codec, pairs, index):
    inputs = np.stack([codec.encode(m) for m, _, _ in pairs])
    labels = np.stack([codec.encode(s) for _, s, _ in pairs])
    preds = np.stack([codec.encode(p) for _, _, p in pairs])
    return PredictionBatch(inputs, labels, preds, np.asarray(index), np.zeros(len(pairs)))


def test_evaluator_hand_made_predictions(mazes):
    task = get_task("maze-small")
    codec, aug = task.codec, task.augmenter
    m0, m1, m2 = mazes[:3]
    wrong = m1.solution.copy()
    wrong[wrong == PATH] = OPEN  # no path at all
    # a different shortest path is not exact, but is shortest; rotate the third pair
    t = np.array([3])
    pairs = [
        (m0.maze, m0.solution, m0.solution),
        (m1.maze, m1.solution, wrong),
        (aug.apply(t, m2.maze), aug.apply(t, m2.solution), aug.apply(t, m2.solution)),
        (m0.maze, m0.solution, m0.solution),  # padding row, skipped
    ]
    transforms = np.array([[0], [0], [3]])
    ctx = EvalContext(
        codec=codec,
        augmenter=aug,
        group_names=["a", "b", "c"],
        puzzle_group=np.arange(3),
        transforms=transforms,
    )
    run = task.evaluator.start(ctx)
    run.update(_batch(codec, pairs, [0, 1, 2, -1]))
    metrics = run.finish()
    wrong_cells = int((m1.solution == PATH).sum())
    assert metrics["exact_accuracy"] == pytest.approx(2 / 3)
    assert metrics["token_accuracy"] == pytest.approx((2 + (225 - wrong_cells) / 225) / 3)
    assert metrics["valid_path_rate"] == pytest.approx(2 / 3)
    assert metrics["shortest_path_rate"] == pytest.approx(2 / 3)


@pytest.mark.skipif(not DATA.exists(), reason="shared maze data not present")
def test_real_maze_answers_are_shortest_paths():
    with gzip.open(DATA / "train.csv.gz", "rt") as handle:
        lines = handle.read().splitlines()[1:6]
    for line in lines:
        _, q, a, _ = line.split(",")
        maze = maze_of([q[i : i + 30] for i in range(0, 900, 30)])
        answer = maze_of([a[i : i + 30] for i in range(0, 900, 30)])
        assert path_checks(maze, answer) == (True, True)
        for tid in range(8):
            assert path_checks(apply_dihedral(maze, tid), apply_dihedral(answer, tid)) == (
                True,
                True,
            )


def test_parse_puzzles_and_render(tmp_path: Path):
    task = get_task("maze-tiny")
    m = list(generate(11, 2, np.random.default_rng(0), min_path=41))
    text = "\n---\n".join(task.render(g.maze).replace("o", " ") for g in m)
    file = tmp_path / "mazes.txt"
    file.write_text("\n".join(line.rstrip() for line in text.splitlines()) + "\n")
    puzzles = task.parse_puzzles(str(file))
    assert len(puzzles) == 2
    for p, g in zip(puzzles, m, strict=True):
        assert np.array_equal(p.test[0].input, g.maze)
        assert path_checks(g.maze, p.test[0].output) == (True, True)
    assert task.render(SMALL_PATH).splitlines()[1] == "o# #"
    with pytest.raises(PuzzleError, match="illegal character 'x'"):
        task.parse_puzzles("x" + text[1:])
    with pytest.raises(PuzzleError, match="one S and one G"):
        task.parse_puzzles(text.split("\n---\n")[0].replace("S", " "))
    with pytest.raises(PuzzleError, match="10 lines, expected 11"):
        task.parse_puzzles("\n".join(text.splitlines()[:10]))
    assert WALL == 0


@given(st.sampled_from(["maze", "maze-small", "maze-tiny"]), st.data())
@settings(max_examples=30, deadline=None)
def test_codec_round_trip(name, data):
    codec = get_task(name).codec
    side = int(round(codec.seq_len**0.5))
    cells = data.draw(st.lists(st.integers(0, 4), min_size=side * side, max_size=side * side))
    grid = np.array(cells).reshape(side, side)
    assert np.array_equal(codec.decode(codec.encode(grid)), grid)
    assert codec.decode(np.zeros(side * side, dtype=np.uint8)).min() == -1  # PAD is invalid


def test_small_generators_respect_min_path(mazes):
    assert all(m.path_cells >= 56 for m in mazes)
    for m in generate(11, 5, np.random.default_rng(9), min_path=41):
        start, goal = endpoints(m.maze)
        assert bfs(m.maze, start)[goal] + 1 == m.path_cells >= 41


def test_generator_option_errors():
    from trmkit.errors import SourceError

    source = get_task("maze-tiny").sources["generate"]
    with pytest.raises(SourceError, match="option count='many'"):
        source.load(SourceRequest(None, 0, {"count": "many"}))
    with pytest.raises(SourceError, match="option braid=2.0"):
        source.load(SourceRequest(None, 0, {"braid": "2"}))
    with pytest.raises(SourceError, match="lower min_path"):
        source.load(SourceRequest(None, 0, {"count": "1", "min_path": "500"}))
    with pytest.raises(SourceError, match=r"train_sides='7,13'.*between 5 and 11"):
        source.load(SourceRequest(None, 0, {"count": "2", "train_sides": "7,13"}))


def test_train_sides_stepping_stones_are_padded_solved_mazes():
    """train_sides: smaller training mazes sit in the top-left corner of the task's frame,
    walls around them, with their own shortest path; the test split stays full size."""
    source = get_task("maze-tiny").sources["generate"]
    options = {"count": "9", "test_count": "3", "braid": "0", "train_sides": "5,7,11"}
    data = source.load(SourceRequest(None, 0, options))
    train = [p for p in data.puzzles if p.train]
    test = [p for p in data.puzzles if p.test]
    assert [p.meta["side"] for p in train] == [5] * 3 + [7] * 3 + [11] * 3
    assert [p.meta["side"] for p in test] == [11] * 3
    assert len({p.name for p in data.puzzles}) == len(data.puzzles)
    for puzzle in train:
        side, example = puzzle.meta["side"], puzzle.train[0]
        assert example.input.shape == example.output.shape == (11, 11)
        outside = np.ones((11, 11), dtype=bool)
        outside[:side, :side] = False
        assert (example.input[outside] == WALL).all() and (example.output[outside] == WALL).all()
        start, goal = endpoints(example.input)
        assert bfs(example.input, start)[goal] + 1 == puzzle.meta["path_cells"] >= 2 * side - 1
        assert path_checks(example.input, example.output) == (True, True)  # a shortest path
    # the default (no train_sides) draws the same full-size mazes as before the option existed
    plain = source.load(SourceRequest(None, 0, {"count": "3", "test_count": "1", "braid": "0"}))
    again = source.load(
        SourceRequest(None, 0, {"count": "3", "test_count": "1", "braid": "0", "train_sides": "11"})
    )
    assert plain.files == again.files
    assert all(
        np.array_equal(a.train[0].input, b.train[0].input)
        for a, b in zip(plain.puzzles[:3], again.puzzles[:3], strict=True)
    )
