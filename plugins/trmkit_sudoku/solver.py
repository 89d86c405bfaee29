"""A small exact sudoku solver for any box shape (2x2, 2x3, 3x3, ...).

Candidates are bitmasks (bit d set = digit d possible). Propagation applies naked singles
(a cell with one candidate) and hidden singles (a digit with one place in a unit); search
branches on a cell with the fewest candidates. The number of guesses made while exhausting
the search tree (`SolveResult.guesses`) is the difficulty rating: 0 means solvable by
singles alone, like the low end of tdoku's backtrack count used by Sudoku-Extreme (not the
same scale: it is our solver's count, deterministic for a given puzzle).
"""

from __future__ import annotations

from functools import cache

import attrs
import numpy as np


@attrs.frozen
class Geometry:
    """A sudoku of side n = box_rows * box_cols; boxes are box_rows x box_cols cells."""

    box_rows: int
    box_cols: int

    @property
    def n(self) -> int:
        return self.box_rows * self.box_cols

    @property
    def cells(self) -> int:
        return self.n * self.n


GEOMETRIES = {4: Geometry(2, 2), 6: Geometry(2, 3), 9: Geometry(3, 3)}


@cache
def _tables(
    geo: Geometry,
) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...], tuple[int, ...]]:
    n, br, bc = geo.n, geo.box_rows, geo.box_cols
    cells = np.arange(n * n).reshape(n, n)
    boxes = cells.reshape(n // br, br, n // bc, bc).transpose(0, 2, 1, 3).reshape(n, n)
    units = tuple(tuple(unit.tolist()) for unit in (*cells, *cells.T, *boxes))
    peers = tuple(
        tuple(sorted({p for unit in units if cell in unit for p in unit} - {cell}))
        for cell in range(n * n)
    )
    popcount = tuple(bin(m).count("1") for m in range(1 << (n + 1)))
    return units, peers, popcount


@attrs.frozen
class SolveResult:
    solutions: list[np.ndarray]
    guesses: int


class _Search:
    """One search; digits are bits 1..n of each cell's mask (bit 0 unused)."""

    def __init__(self, geo: Geometry, limit: int, rng: np.random.Generator | None) -> None:
        self.geo = geo
        self.units, self.peers, self.popcount = _tables(geo)
        self.full = ((1 << geo.n) - 1) << 1
        self.limit = limit
        self.rng = rng
        self.guesses = 0
        self.solutions: list[list[int]] = []

    def start(self, grid: np.ndarray, excluded: tuple[int, int] | None = None) -> None:
        cand = [self.full] * self.geo.cells
        if excluded is not None:
            cell, digit = excluded
            cand[cell] &= ~(1 << digit)
        placed = [False] * self.geo.cells
        queue = []
        for cell, digit in enumerate(np.asarray(grid).reshape(-1).tolist()):
            if digit:
                bit = 1 << digit
                if not cand[cell] & bit:
                    return
                cand[cell] = bit
                queue.append(cell)
        if self._propagate(cand, placed, queue):
            self._search(cand, placed)

    def _propagate(self, cand: list[int], placed: list[bool], queue: list[int]) -> bool:
        peers, popcount, units = self.peers, self.popcount, self.units
        while True:
            while queue:
                cell = queue.pop()
                if placed[cell]:
                    continue
                placed[cell] = True
                bit = cand[cell]
                for p in peers[cell]:
                    m = cand[p]
                    if m & bit:
                        m &= ~bit
                        if not m:
                            return False
                        cand[p] = m
                        if popcount[m] == 1:
                            queue.append(p)
            # hidden singles: a digit possible in exactly one cell of a unit
            full = self.full
            for unit in units:
                once = twice = done = 0
                for c in unit:
                    m = cand[c]
                    if placed[c]:
                        done |= m
                    twice |= once & m
                    once |= m
                if once != full:
                    return False
                hidden = once & ~twice & ~done  # placed digits are trivially "hidden"
                if hidden:
                    for c in unit:
                        m = cand[c] & hidden
                        if m and not placed[c]:
                            if popcount[m] > 1:
                                return False  # two digits forced into one cell
                            if cand[c] != m:
                                cand[c] = m
                            queue.append(c)
            if not queue:
                return True

    def _search(self, cand: list[int], placed: list[bool]) -> bool:
        """Depth-first search; returns True to stop (enough solutions found)."""
        popcount = self.popcount
        best, best_count = -1, 99
        for cell, m in enumerate(cand):
            if not placed[cell]:
                k = popcount[m]
                if k < best_count:
                    best, best_count = cell, k
                    if k == 2:
                        break
        if best < 0:
            self.solutions.append([m.bit_length() - 1 for m in cand])
            return len(self.solutions) >= self.limit
        digits = [d for d in range(1, self.geo.n + 1) if cand[best] >> d & 1]
        if self.rng is not None:
            self.rng.shuffle(digits)
        for digit in digits:
            self.guesses += 1
            child, child_placed = cand[:], placed[:]
            child[best] = 1 << digit
            if self._propagate(child, child_placed, [best]) and self._search(child, child_placed):
                return True
        return False


def solve(
    grid: np.ndarray,
    geo: Geometry,
    *,
    limit: int = 2,
    rng: np.random.Generator | None = None,
    excluded: tuple[int, int] | None = None,
) -> SolveResult:
    """Up to ``limit`` solutions of ``grid`` (0 = blank) and the guesses made.

    ``rng`` randomises the digit order (used to draw random full grids); ``excluded``
    = (cell, digit) forbids one digit in one cell (the generator's uniqueness test).
    """
    search = _Search(geo, limit, rng)
    search.start(grid, excluded)
    sols = [np.asarray(s, dtype=np.int64).reshape(geo.n, geo.n) for s in search.solutions]
    return SolveResult(sols, search.guesses)


def rating(grid: np.ndarray, geo: Geometry) -> int:
    """Guesses needed to solve ``grid`` and prove its solution unique (0 = singles only)."""
    return solve(grid, geo, limit=2).guesses


def valid_solutions(grids: np.ndarray, geo: Geometry) -> np.ndarray:
    """bool[N]: complete grids whose rows, columns and boxes each hold 1..n once."""
    grids = np.asarray(grids)
    n, br, bc = geo.n, geo.box_rows, geo.box_cols
    count = len(grids)
    rows = grids.reshape(count, n, n)
    cols = rows.transpose(0, 2, 1)
    boxes = rows.reshape(count, n // br, br, n // bc, bc).transpose(0, 1, 3, 2, 4)
    boxes = boxes.reshape(count, n, n)
    target = np.arange(1, n + 1)
    ok = [(np.sort(units, axis=2) == target).all(axis=(1, 2)) for units in (rows, cols, boxes)]
    return np.logical_and.reduce(ok)


def consistent(puzzles: np.ndarray, solutions: np.ndarray) -> np.ndarray:
    """bool[N]: every given (non-zero) cell of the puzzle equals the solution's cell."""
    p = np.asarray(puzzles).reshape(len(puzzles), -1)
    s = np.asarray(solutions).reshape(len(p), -1)
    return ((p == 0) | (p == s)).all(axis=1)
