"""Maze grids: the "# SGo" alphabet, breadth-first search and path checks.

A maze grid holds values 0..4 = index in ``"# SGo"``: 0 wall, 1 open, 2 start, 3 goal,
4 path. Path length is counted in cells including S and G (= BFS steps + 1), so Maze-Hard's
"shortest path longer than 110" means at least 110 BFS steps.
"""

from __future__ import annotations

from collections import deque

import numpy as np

CHARS = "# SGo"
WALL, OPEN, START, GOAL, PATH = range(5)


def _neighbours(cell: int, rows: int, cols: int) -> list[int]:
    """The flat cells up, down, left and right of ``cell`` (in that order) inside the grid."""
    r, c = divmod(cell, cols)
    around = (
        (cell - cols, r > 0),
        (cell + cols, r < rows - 1),
        (cell - 1, c > 0),
        (cell + 1, c < cols - 1),
    )
    return [v for v, ok in around if ok]


def bfs(grid: np.ndarray, start: int) -> list[int]:
    """Steps from flat cell ``start`` to every cell through non-wall cells (-1 unreachable)."""
    rows, cols = grid.shape
    free = (np.asarray(grid) != WALL).reshape(-1).tolist()
    dist = [-1] * (rows * cols)
    dist[start] = 0
    queue = deque([start])
    while queue:
        u = queue.popleft()
        for v in _neighbours(u, rows, cols):
            if free[v] and dist[v] < 0:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


def endpoints(grid: np.ndarray) -> tuple[int, int] | None:
    """Flat indices of the single S and single G, or None if either is missing or repeated."""
    flat = np.asarray(grid).reshape(-1)
    starts = np.flatnonzero(flat == START)
    goals = np.flatnonzero(flat == GOAL)
    if len(starts) != 1 or len(goals) != 1:
        return None
    return int(starts[0]), int(goals[0])


def shortest_path(grid: np.ndarray) -> np.ndarray | None:
    """The maze with one shortest S->G path drawn as PATH, or None if G is unreachable.

    Among several shortest paths the one found by walking back from G through the first
    neighbour (up, down, left, right) one step closer to S is drawn: deterministic, like
    any fixed tie-break (Maze-Hard's own labels pick one of several shortest paths too).
    """
    grid = np.asarray(grid)
    ends = endpoints(grid)
    if ends is None:
        return None
    start, goal = ends
    rows, cols = grid.shape
    dist = bfs(grid, start)
    if dist[goal] < 0:
        return None
    out = grid.reshape(-1).copy()
    cell = goal
    while dist[cell] > 1:
        cell = next(v for v in _neighbours(cell, rows, cols) if dist[v] == dist[cell] - 1)
        out[cell] = PATH
    return out.reshape(rows, cols)


def path_checks(maze: np.ndarray, predicted: np.ndarray) -> tuple[bool, bool]:
    """(valid, shortest) for a predicted grid against the unsolved ``maze``.

    valid: the predicted PATH cells are all open in the maze and, together with the maze's
    S and G, form one 4-connected set (so they connect S to G using only open cells).
    shortest: valid and the number of path cells is exactly the BFS distance - 1, which
    forces the set to be one shortest S->G path with no stray cells.
    """
    maze = np.asarray(maze)
    predicted = np.asarray(predicted)
    ends = endpoints(maze)
    if ends is None or predicted.shape != maze.shape:
        return False, False
    start, goal = ends
    flat_maze = maze.reshape(-1)
    on_path = predicted.reshape(-1) == PATH
    if not (flat_maze[on_path] == OPEN).all():
        return False, False
    members = on_path.copy()
    members[start] = members[goal] = True
    reach = bfs(np.where(members.reshape(maze.shape), OPEN, WALL), start)
    if not all(reach[i] >= 0 for i in np.flatnonzero(members).tolist()):
        return False, False
    steps = bfs(maze, start)[goal]
    return True, int(on_path.sum()) == steps - 1
