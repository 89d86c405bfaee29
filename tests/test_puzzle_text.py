"""Puzzles as people write them (`trmkit.grids.text`, used by every built-in task's
`parse_puzzles`): what `Task.render` prints reads back as the same grid, for every built-in
task; grids on several lines with or without separators, blanks as '.', '0' or '_',
several puzzles separated by blank lines, names from `# name` lines or the file's name;
the old one-line forms still parse."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trmkit import plugins
from trmkit.errors import PuzzleError
from trmkit.grids.text import puzzle_names, text_blocks

SUDOKUS = ["sudoku-extreme", "sudoku-easy", "sudoku-6x6", "sudoku-4x4"]
MAZES = ["maze-11x11", "maze-15x15", "maze-hard"]
ARCS = ["arc-agi-1", "arc-agi-2"]


def test_every_builtin_task_is_covered():
    assert sorted(plugins.task_entries()) == sorted(SUDOKUS + MAZES + ARCS)


def inputs(puzzles):
    return [np.asarray(p.test[0].input) for p in puzzles]


@st.composite
def sudoku_grids(draw, name):
    """A solvable puzzle: the pattern solution of the task's geometry, digits permuted,
    some cells blanked."""
    from trmkit_sudoku.solver import GEOMETRIES

    task = plugins.get_task(name)
    geo = GEOMETRIES[int(round(task.codec.seq_len**0.5))]
    n, br, bc = geo.n, geo.box_rows, geo.box_cols
    digits = np.array([0, *draw(st.permutations(range(1, n + 1)))])
    solution = np.array(
        [[((r % br) * bc + r // br + c) % n + 1 for c in range(n)] for r in range(n)]
    )
    blank = draw(st.lists(st.booleans(), min_size=n * n, max_size=n * n))
    grid = digits[solution].reshape(-1)
    grid[np.array(blank)] = 0
    return task, grid.reshape(n, n), digits[solution]


@pytest.mark.parametrize("name", SUDOKUS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_sudoku_render_parse_is_the_identity(name, data):
    task, grid, solution = data.draw(sudoku_grids(name))
    (puzzle,) = task.parse_puzzles(task.render(grid))
    assert np.array_equal(puzzle.test[0].input, grid)
    assert task.evaluator.check_answer(grid, puzzle.test[0].output)
    # the one-line form (format_puzzle, the CSV layout) and the digits-only rows still parse
    one_line = task.format_puzzle(puzzle)
    assert "\n" not in one_line
    assert np.array_equal(inputs(task.parse_puzzles(one_line))[0], grid)
    bare = "\n".join("".join(str(v) if v else "_" for v in row) for row in grid)
    assert np.array_equal(inputs(task.parse_puzzles(bare))[0], grid)
    # several puzzles: blank lines between rendered grids, or one line each
    two = task.parse_puzzles(task.render(grid) + "\n\n\n" + task.render(solution))
    assert [p.name for p in two] == ["puzzle-1", "puzzle-2"]
    assert all(np.array_equal(a, b) for a, b in zip(inputs(two), [grid, solution], strict=True))
    lines = task.parse_puzzles(one_line + "\n" + one_line.replace(".", "0"))
    assert len(lines) == 2 and np.array_equal(inputs(lines)[1], grid)


@st.composite
def mazes(draw, name):
    from trmkit_maze.generator import generate

    task = plugins.get_task(name)
    side = int(round(task.codec.seq_len**0.5))
    seed = draw(st.integers(0, 2**32 - 1))
    (maze,) = generate(side, 1, np.random.default_rng(seed), min_path=2 * side // 3)
    return task, maze


@pytest.mark.parametrize("name", MAZES)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_maze_render_parse_is_the_identity(name, data):
    task, maze = data.draw(mazes(name))
    (puzzle,) = task.parse_puzzles(task.render(maze.maze))
    assert np.array_equal(puzzle.test[0].input, maze.maze)
    # the answer as `trmkit solve` prints it (the path drawn as 'o') reads back as its maze
    answer = task.render(puzzle.test[0].output)
    assert "o" in answer
    assert np.array_equal(inputs(task.parse_puzzles(answer))[0], maze.maze)
    # editors strip trailing blanks; mazes separated by '---' (the old form) or blank lines
    stripped = "\n".join(line.rstrip() for line in task.render(maze.maze).splitlines())
    for sep in ("\n---\n", "\n\n"):
        if sep == "\n\n" and not all(line.strip() for line in stripped.split("\n")):
            continue  # an all-open row is an empty line: only '---' separates such mazes
        two = task.parse_puzzles(stripped + sep + answer)
        assert [p.name for p in two] == ["maze-1", "maze-2"]
        assert all(np.array_equal(g, maze.maze) for g in inputs(two))


@st.composite
def arc_grids(draw):
    rows, cols = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    cells = draw(st.lists(st.integers(0, 9), min_size=rows * cols, max_size=rows * cols))
    return np.array(cells).reshape(rows, cols)


@pytest.mark.parametrize("name", ARCS)
@settings(max_examples=15, deadline=None)
@given(first=arc_grids(), second=arc_grids())
def test_arc_render_parse_is_the_identity(name, first, second):
    task = plugins.get_task(name)
    (puzzle,) = task.parse_puzzles(task.render(first))
    assert np.array_equal(puzzle.test[0].input, first) and not puzzle.train
    assert puzzle.meta["test_outputs_known"] is False
    two = task.parse_puzzles(f"# a\n{task.render(first)}\n\n# b\n{task.render(second)}\n")
    assert [p.name for p in two] == ["a", "b"]
    assert np.array_equal(inputs(two)[1], second)
    packed = "\n".join("".join(str(v) for v in row) for row in first)  # digits without spaces
    assert np.array_equal(inputs(task.parse_puzzles(packed))[0], first)


SIX = """\
. 5 . | . . 1
. 6 . | 2 . .
------+------
4 3 6 | . . .
2 1 5 | 4 . .
------+------
. 4 . | . . .
6 . . | 3 . .
"""


def test_names_from_name_lines_and_files(tmp_path):
    task = plugins.get_task("sudoku-6x6")
    bare = SIX.replace(" ", "").replace("|", "").replace("------+------\n", "")
    got = task.parse_puzzles(f"# the first\n{SIX}\n{bare.replace('.', '0')}")
    assert [p.name for p in got] == ["the first", "puzzle-2"]  # not named by line number
    assert got[1].meta["line"] == 11 and np.array_equal(*inputs(got))
    one = tmp_path / "easy.txt"
    one.write_text(SIX)
    assert [p.name for p in task.parse_puzzles(str(one))] == ["easy"]
    two = tmp_path / "week.sudoku.txt"
    two.write_text(f"# a comment, then two puzzles\n\n{SIX}\n{bare}")
    assert [p.name for p in task.parse_puzzles(str(two))] == ["week-1", "week-2"]
    # a name over several one-line puzzles numbers them
    line = "".join(bare.split())
    assert [p.name for p in task.parse_puzzles(f"# set\n{line}\n{line}")] == ["set-1", "set-2"]


def test_maze_name_lines_are_not_wall_rows():
    task = plugins.get_task("maze-11x11")
    from trmkit_maze.generator import generate

    (maze,) = generate(11, 1, np.random.default_rng(3), min_path=20)
    text = task.render(maze.maze)
    assert text.splitlines()[1].startswith("#")  # rows of walls start with '#'
    (puzzle,) = task.parse_puzzles(f"# my maze\n{text}")
    assert puzzle.name == "my maze" and np.array_equal(puzzle.test[0].input, maze.maze)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("123", "puzzle text, line 1: 3 cells, expected 36 (6x6 on one line, or 6 lines of 6)"),
        (SIX.replace("6 . . | 3 . .", "6 . . | 3 ."), "line 8: 5 cells, expected 6"),
        ("\n".join(SIX.splitlines()[:4]), "grid at line 1: 3 rows, expected 6"),
        (SIX.replace("4 3 6", "4 x 6"), "line 4: illegal character 'x' (use 1-6, '.', '0' or '_'"),
        ("# only a name\n\n", "puzzle text: no puzzle found"),
        (SIX.replace(". 5 .", "5 5 ."), "line 1: this sudoku has no solution"),
    ],
)
def test_sudoku_errors_name_the_line(text, message):
    with pytest.raises(PuzzleError) as err:
        plugins.get_task("sudoku-6x6").parse_puzzles(text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_arc_rows_of_unequal_width_are_one_line():
    with pytest.raises(PuzzleError, match=r"line 2: 2 cells, expected 3 \(the width"):
        plugins.get_task("arc-agi-1").parse_puzzles("1 2 3\n4 5")


def test_helpers():
    blocks = text_blocks("# a\n1\n2\n\n\n3\n---\n4", separator=lambda line: line == "---")
    assert [(b.name, b.line, [t for _, t in b.rows]) for b in blocks] == [
        ("a", 2, ["1", "2"]),
        (None, 6, ["3"]),
        (None, 8, ["4"]),
    ]
    assert puzzle_names([None, "x", None], None) == ["puzzle-1", "x", "puzzle-3"]
    assert puzzle_names([None], "file") == ["file"]
    assert puzzle_names(["x", "x", None], "f") == ["x-1", "x-2", "f-3"]
