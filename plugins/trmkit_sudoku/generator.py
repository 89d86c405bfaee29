"""Seeded sudoku generator: unique-solution puzzles with a difficulty rating.

Each puzzle comes from a random complete grid (the solver with a shuffled digit order) by
removing cells in random order, keeping a removal only while the solution stays unique.
Uniqueness after removing a cell holding digit d is tested by asking for *any* solution
with that cell forbidden to be d: none means the old solution is still the only one, and
that search usually fails quickly by propagation. Removal stops at a minimal puzzle, or
once only ``givens`` clues are left when a larger clue count is asked for (easier puzzles).

The rating is the solver's guess count (see `solver.rating`); ``min_rating`` keeps drawing
until enough puzzles reach it. Everything derives from one ``numpy.random.Generator``, so a
seed reproduces the same puzzles, and train and test come from disjoint draws (a test
puzzle equal to a train puzzle is redrawn).
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import numpy as np

from trmkit_sudoku.solver import Geometry, rating, solve

MAX_DRAWS_PER_PUZZLE = 500
BULK_FRACTION = 0.45


@attrs.frozen
class GeneratedSudoku:
    puzzle: np.ndarray
    solution: np.ndarray
    rating: int


def minimal_puzzle(
    solution: np.ndarray, geo: Geometry, rng: np.random.Generator, givens: int = 0
) -> np.ndarray:
    """Remove cells of ``solution`` in random order while the solution stays unique."""
    puzzle = solution.reshape(-1).copy()
    order = rng.permutation(geo.cells).tolist()
    # Removing the first ~45% of cells almost never breaks uniqueness: do it in one step,
    # verify once, and fall back to cell-by-cell checks in the rare case it did.
    bulk = min(int(geo.cells * BULK_FRACTION), max(geo.cells - givens, 0))
    puzzle[order[:bulk]] = 0
    if len(solve(puzzle, geo, limit=2).solutions) == 1:
        order = order[bulk:]
        remaining = geo.cells - bulk
    else:
        puzzle = solution.reshape(-1).copy()
        remaining = geo.cells
    for cell in order:
        if remaining <= givens:
            break
        digit = int(puzzle[cell])
        puzzle[cell] = 0
        other = solve(puzzle, geo, limit=1, excluded=(cell, digit))
        if other.solutions:
            puzzle[cell] = digit  # removing it would admit a second solution
        else:
            remaining -= 1
    return puzzle.reshape(geo.n, geo.n)


def generate(
    geo: Geometry,
    count: int,
    rng: np.random.Generator,
    *,
    min_rating: int = 0,
    givens: int = 0,
    avoid: set[bytes] | None = None,
) -> Iterator[GeneratedSudoku]:
    """``count`` puzzles with rating >= ``min_rating`` and no more removals than leave
    ``givens`` clues (0 = go down to a minimal puzzle); ``avoid`` holds puzzle bytes that
    must not be produced (and collects the ones produced)."""
    seen = avoid if avoid is not None else set()
    made = draws = 0
    while made < count:
        draws += 1
        if draws > MAX_DRAWS_PER_PUZZLE * (made + 1):
            raise RuntimeError(
                f"the generator found only {made} of {count} puzzles with rating >= "
                f"{min_rating} in {draws} draws; lower min_rating"
            )
        empty = np.zeros((geo.n, geo.n), dtype=np.int64)
        solution = solve(empty, geo, limit=1, rng=rng).solutions[0]
        puzzle = minimal_puzzle(solution, geo, rng, givens)
        key = puzzle.astype(np.uint8).tobytes()
        if key in seen:
            continue
        score = rating(puzzle, geo)
        if score < min_rating:
            continue
        seen.add(key)
        made += 1
        yield GeneratedSudoku(puzzle, solution, score)
