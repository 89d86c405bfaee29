"""Traces a person can read (docs/reports.md, "Traces"): one `TraceStep` per supervision step
with the givens, the cells changed since the step before and the confidence, rendered as
plain marks, ANSI colour and PNG from the same record."""

from __future__ import annotations

import io
import re

import attrs
import numpy as np
import pytest

from trmkit import plugins
from trmkit.reports import have_matplotlib, plot_trace
from trmkit.testing import ConformanceError, check_task, sample_puzzles
from trmkit.traces import (
    CHANGED_ANSI,
    GIVEN_ANSI,
    RESET,
    colour_wanted,
    render_trace_text,
    trace_steps,
)

SUDOKU = plugins.get_task("sudoku-4x4")
PUZZLE = np.array([[1, 0, 0, 4], [0, 3, 0, 0], [0, 0, 2, 0], [0, 1, 0, 0]])


def _steps():
    first = np.array([[1, 2, 0, 4], [0, 3, 0, 0], [0, 0, 2, 0], [0, 1, 0, 0]])
    second = np.array([[1, 2, 3, 4], [4, 3, 0, 0], [0, 0, 2, 0], [0, 1, 0, 3]])
    return trace_steps(SUDOKU, PUZZLE, [first, second], [0.25, 0.875])


def test_trace_steps_mark_givens_changes_and_confidence():
    one, two = _steps()
    assert (one.step, one.confidence, two.step, two.confidence) == (1, 0.25, 2, 0.875)
    assert np.array_equal(one.given, PUZZLE != 0) and np.array_equal(two.given, PUZZLE != 0)
    assert np.argwhere(one.changed).tolist() == [[0, 1]]  # step 1 against the puzzle input
    assert np.argwhere(two.changed).tolist() == [[0, 2], [1, 0], [3, 3]]
    assert two.to_json() == {
        "step": 2,
        "grid": [[1, 2, 3, 4], [4, 3, 0, 0], [0, 0, 2, 0], [0, 1, 0, 3]],
        "confidence": 0.875,
        "given": [[0, 0], [0, 3], [1, 1], [2, 2], [3, 1]],
        "changed": [[0, 2], [1, 0], [3, 3]],
    }


def test_trace_without_givens_or_with_a_new_shape():
    # a task without `givens` marks none; a step whose shape differs changed everywhere
    bare = attrs.evolve(SUDOKU, givens=None)
    [st] = trace_steps(bare, PUZZLE, [PUZZLE], [0.5])
    assert not st.given.any() and not st.changed.any()
    wide = np.zeros((2, 6), dtype=int)
    a, b = trace_steps(SUDOKU, PUZZLE, [wide, wide], [0.1, 0.2])
    assert a.changed.all() and not a.given.any() and not b.changed.any()


def test_plain_text_marks_read_back_by_eye():
    text = render_trace_text(_steps(), SUDOKU.cell_text, colour=False)
    assert text.splitlines() == [
        "(x) given by the puzzle, [x] changed since the previous step",
        "-- step 1/2  confidence 0.250  1 cell changed",
        "(1)[2] . (4)",
        " . (3) .  .",
        " .  . (2) .",
        " . (1) .  .",
        "-- step 2/2  confidence 0.875  3 cells changed",
        "(1) 2 [3](4)",
        "[4](3) .  .",
        " .  . (2) .",
        " . (1) . [3]",
    ]


def test_colour_text_paints_givens_and_changes():
    text = render_trace_text(_steps(), SUDOKU.cell_text, colour=True)
    lines = text.splitlines()
    assert lines[0] == "-- step 1/2  confidence 0.250  1 cell changed"
    assert lines[1] == f"{GIVEN_ANSI} 1 {RESET}{CHANGED_ANSI} 2 {RESET} . {GIVEN_ANSI} 4 {RESET}"
    assert "(" not in text and "[" not in text.replace("\x1b[", "")


def test_colour_only_on_a_terminal_without_no_color(monkeypatch):
    class Stream(io.StringIO):
        def __init__(self, tty):
            super().__init__()
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour_wanted(Stream(True)) and not colour_wanted(Stream(False))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_wanted(Stream(True))
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: only a non-empty value disables
    assert colour_wanted(Stream(True))


def test_maze_givens_are_walls_start_and_goal():
    maze = plugins.get_task("maze-11x11")
    grid = np.array([[0, 1, 2], [1, 3, 0]])
    assert maze.givens(grid).tolist() == [[True, False, True], [False, True, True]]
    assert [maze.cell_text(v) for v in range(6)] == ["#", " ", "S", "G", "o", "?"]
    assert [SUDOKU.cell_text(v) for v in (0, 1, 4, 5)] == [".", "1", "4", "?"]


def test_conformance_catches_givens_a_label_changes():
    puzzles = sample_puzzles(SUDOKU, count=3)
    check_task(SUDOKU, puzzles, checks=["parse"])
    wrong = attrs.evolve(SUDOKU, givens=lambda g: np.ones(np.shape(g), dtype=bool))
    with pytest.raises(ConformanceError, match="changes a cell givens marks as fixed"):
        check_task(wrong, puzzles, checks=["parse"])
    flat = attrs.evolve(SUDOKU, givens=lambda g: np.asarray(g).reshape(-1) != 0)
    with pytest.raises(ConformanceError, match="return a bool mask of the input's shape"):
        check_task(flat, puzzles, checks=["parse"])


@pytest.mark.skipif(not have_matplotlib(), reason="matplotlib (the plots extra) is not installed")
def test_trace_png_is_drawn_from_the_same_record(tmp_path):
    out = tmp_path / "trace.png"
    assert plot_trace(_steps(), "puzzle", out, SUDOKU.cell_text)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_long_curves_are_thinned_to_keep_the_page_small():
    from trmkit.html_report import MAX_POINTS, line_chart

    svg = line_chart("loss", "loss", "step", [("lm_loss", [(i, 1 / i) for i in range(1, 65_105)])])
    [points] = re.findall(r'<polyline points="([^"]*)"', svg)
    assert len(points.split()) == -(-65_104 // -(-65_104 // MAX_POINTS)) + 1
    assert points.split()[-1] == "446.0,216.0"  # the last step, at the lowest loss: drawn
