"""Seeded maze generator in the Maze-Hard spirit: long shortest paths on a square grid.

A perfect maze is carved by randomised depth-first search on the lattice of even (row,
col) cells (walls in between; for an even side the last row and column stay walls), then
braided: a fraction of the remaining walls between two lattice cells is opened, which
adds loops and several competing routes. S is a random open cell and G a random cell at
least ``min_path`` cells away along the shortest path (path cells include S and G); the
maze is redrawn when no such G exists. The label draws one shortest path with `o`
(`grid.shortest_path`). Maze-Hard's own mazes (Lehnert et al. 2024) have irregular random
walls instead of a lattice; the path-length criterion is the part matched here.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import numpy as np

from trmkit_maze.grid import GOAL, OPEN, START, WALL, bfs, shortest_path

MAX_DRAWS_PER_MAZE = 200


@attrs.frozen
class GeneratedMaze:
    maze: np.ndarray
    solution: np.ndarray
    path_cells: int


def carve(side: int, rng: np.random.Generator, braid: float) -> np.ndarray:
    """A side x side grid of WALL/OPEN: DFS maze on the even lattice, then braided."""
    grid = np.full((side, side), WALL, dtype=np.int64)
    cells = (side + 1) // 2
    seen = np.zeros((cells, cells), dtype=bool)
    r0, c0 = (int(v) for v in rng.integers(cells, size=2))
    stack = [(r0, c0)]
    seen[r0, c0] = True
    grid[2 * r0, 2 * c0] = OPEN
    steps = ((-1, 0), (1, 0), (0, -1), (0, 1))
    while stack:
        r, c = stack[-1]
        options = [
            (r + dr, c + dc)
            for dr, dc in steps
            if 0 <= r + dr < cells and 0 <= c + dc < cells and not seen[r + dr, c + dc]
        ]
        if not options:
            stack.pop()
            continue
        nr, nc = options[int(rng.integers(len(options)))]
        seen[nr, nc] = True
        grid[2 * nr, 2 * nc] = OPEN
        grid[r + nr, c + nc] = OPEN  # the wall cell between the two lattice cells
        stack.append((nr, nc))
    # walls between two lattice cells: (even, odd) or (odd, even) positions inside the lattice
    top = 2 * cells - 1
    odd = np.add.outer(np.arange(top), np.arange(top)) % 2 == 1
    candidates = np.argwhere(odd & (grid[:top, :top] == WALL))
    opened = rng.random(len(candidates)) < braid
    grid[tuple(candidates[opened].T)] = OPEN
    return grid


def generate(
    side: int,
    count: int,
    rng: np.random.Generator,
    *,
    min_path: int,
    braid: float = 0.08,
    avoid: set[bytes] | None = None,
) -> Iterator[GeneratedMaze]:
    """``count`` distinct mazes whose shortest S->G path has >= ``min_path`` cells."""
    seen = avoid if avoid is not None else set()
    made = draws = 0
    while made < count:
        draws += 1
        if draws > MAX_DRAWS_PER_MAZE * (made + 1):
            raise RuntimeError(
                f"the maze generator found only {made} of {count} {side}x{side} mazes with a "
                f"path of >= {min_path} cells; lower min_path or braid"
            )
        grid = carve(side, rng, braid)
        free = np.flatnonzero(grid.reshape(-1) == OPEN)
        start = int(free[rng.integers(len(free))])
        dist = np.asarray(bfs(grid, start))
        far = np.flatnonzero(dist >= min_path - 1)
        if not len(far):
            continue
        goal = int(far[rng.integers(len(far))])
        flat = grid.reshape(-1)
        flat[start], flat[goal] = START, GOAL
        key = grid.astype(np.uint8).tobytes()
        if key in seen:
            continue
        solution = shortest_path(grid)
        assert solution is not None  # G was chosen among reachable cells
        seen.add(key)
        made += 1
        yield GeneratedMaze(grid, solution, int(dist[goal]) + 1)
