"""Traces: an answer after each supervision step, as one record the text, PNG and HTML render.

A `TraceStep` holds what a person needs to read one step (docs/reports.md, "Traces"): the
step number, the grid, the cells the puzzle fixes (`Task.givens`), the cells that changed
since the previous step (at step 1: since the puzzle input, where it has the grid's shape)
and the halting confidence sigmoid(q_halt) of the answer at that step. `trmkit.solve` builds
them; `render_trace_text` (here), `trmkit.reports.plot_trace` (PNG) and
`trmkit.html_report` (the step slider) only draw them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import attrs
import numpy as np

from trmkit.task import Task


@attrs.frozen
class TraceStep:
    step: int
    """the supervision step, 1-based."""
    grid: np.ndarray
    """the (voted) answer after this step."""
    given: np.ndarray
    """bool, the grid's shape: cells the puzzle input fixes (all False without `Task.givens`
    or when the answer's shape differs from the input's)."""
    changed: np.ndarray
    """bool, the grid's shape: cells that differ from the previous step (step 1: from the
    input; every cell where the shape changed)."""
    confidence: float
    """sigmoid(q_halt) of this step's answer (mean over the variants that voted for it)."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: the grid as rows, the marks as ``[row, column]`` cells."""
        return {
            "step": self.step,
            "grid": self.grid.tolist(),
            "confidence": self.confidence,
            "given": np.argwhere(self.given).tolist(),
            "changed": np.argwhere(self.changed).tolist(),
        }


def trace_steps(
    task: Task, puzzle_input: np.ndarray, grids: Sequence[np.ndarray], confidences: Sequence[float]
) -> list[TraceStep]:
    """The trace of one answer: ``grids[i]`` and ``confidences[i]`` after step i + 1."""
    before = np.asarray(puzzle_input)
    givens = np.zeros(before.shape) if task.givens is None else task.givens(before)
    fixed = np.asarray(givens, dtype=bool)
    steps = []
    for i, (grid, conf) in enumerate(zip(grids, confidences, strict=True), start=1):
        grid = np.asarray(grid)
        given = fixed if fixed.shape == grid.shape else np.zeros(grid.shape, dtype=bool)
        same = before.shape == grid.shape
        changed = np.asarray(before != grid) if same else np.ones(grid.shape, dtype=bool)
        steps.append(TraceStep(i, grid, given, changed, float(conf)))
        before = grid
    return steps


GIVEN_ANSI = "\x1b[1;30;47m"
"""bold black on light grey: a cell the puzzle fixes."""
CHANGED_ANSI = "\x1b[30;43m"
"""black on yellow: a cell that changed since the previous step."""
RESET = "\x1b[0m"


def colour_wanted(stream: TextIO) -> bool:
    """ANSI marks only on a terminal, and never with ``NO_COLOR`` set (to any value but "")."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


LEGEND_PLAIN = "(x) given by the puzzle, [x] changed since the previous step"


def render_trace_text(
    steps: Sequence[TraceStep], cell_text: Callable[[int], str], *, colour: bool
) -> str:
    """Every step under its title, one cell per ``cell_text`` symbol. ``colour``: ANSI
    backgrounds (givens grey and bold, changed cells yellow); else the plain marks of
    `LEGEND_PLAIN`, written once above the first step, so the marks survive a pipe or a log."""
    lines = [] if colour else [LEGEND_PLAIN]
    for st in steps:
        n = int(st.changed.sum())  # the title: "-- step 2/3  confidence 0.731  5 cells changed"
        lines.append(
            f"-- step {st.step}/{len(steps)}  confidence {st.confidence:.3f}  "
            f"{n} cell{'' if n == 1 else 's'} changed"
        )
        width = max(len(cell_text(int(v))) for v in st.grid.reshape(-1))
        for r, row in enumerate(st.grid):
            cells = []
            for c, v in enumerate(row.tolist()):
                sym = cell_text(int(v)).ljust(width)
                changed, given = bool(st.changed[r, c]), bool(st.given[r, c])
                if colour:
                    style = CHANGED_ANSI if changed else GIVEN_ANSI if given else ""
                    cells.append(f"{style} {sym} {RESET}" if style else f" {sym} ")
                else:
                    cells.append(f"[{sym}]" if changed else f"({sym})" if given else f" {sym} ")
            lines.append("".join(cells).rstrip())
    return "\n".join(lines)
