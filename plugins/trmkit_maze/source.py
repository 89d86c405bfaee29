"""Maze sources: CSV files (local or hub), the generator, and `trmkit solve` input.

Grid values are indices into ``"# SGo"`` (see `trmkit_maze.grid`). A question may hold
``# SG``; its answer must equal it except that some open cells became ``o``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json

import numpy as np

from trmkit.errors import PuzzleError, SourceError
from trmkit.grids import csvsource
from trmkit.grids import text as text_grids
from trmkit.task import Example, RawData, RawPuzzle, Source, SourceRequest
from trmkit_maze import generator
from trmkit_maze.grid import CHARS, GOAL, OPEN, PATH, START, WALL, shortest_path

HUB_REPO = "sapientinc/maze-30x30-hard-1k"
CSV_OPTIONS = {
    "min_rating": "keep rows whose rating column is >= this value (Maze-Hard's is empty)",
    "subsample": "keep this many random train mazes (seeded by --seed)",
}
QUESTION_LUT = csvsource.make_lut({ch: i for i, ch in enumerate(CHARS[:4])})
ANSWER_LUT = csvsource.make_lut({ch: i for i, ch in enumerate(CHARS)})


def read_tables(side: int, tables: list[csvsource.CsvTable], options, seed: int):
    puzzles: list[RawPuzzle] = []
    for table in csvsource.kept_tables(tables, options, seed):
        questions = csvsource.map_chars(table, table.questions, "question", QUESTION_LUT, "# SG")
        answers = csvsource.map_chars(table, table.answers, "answer", ANSWER_LUT, CHARS)
        for value, name in ((START, "S"), (GOAL, "G")):
            counts = (questions == value).sum(axis=1)
            if (counts != 1).any():
                row = int(np.flatnonzero(counts != 1)[0])
                raise table.fail(row, f"question has {counts[row]} {name} cells, expected 1")
        same = (questions == answers) | ((questions == OPEN) & (answers == PATH))
        if not same.all():
            row, cell = (int(v) for v in np.argwhere(~same)[0])
            raise table.fail(
                row,
                f"answer differs from the question at row {cell // side + 1}, column "
                f"{cell % side + 1} ({CHARS[questions[row, cell]]!r} -> "
                f"{CHARS[answers[row, cell]]!r}); only ' ' -> 'o' is allowed",
            )
        puzzles += csvsource.table_puzzles(
            table, questions.reshape(-1, side, side), answers.reshape(-1, side, side)
        )
    return puzzles


def csv_sources(side: int, task: str, hub: bool) -> dict[str, Source]:
    """The ``csv`` source, and the ``hub`` one (Maze-Hard) when ``hub``."""
    return csvsource.sources(
        functools.partial(read_tables, side),
        side * side,
        "mazes",
        CSV_OPTIONS,
        (HUB_REPO, task, "1000 train, 1000 test") if hub else None,
    )


def parse_sides(value: str | None, side: int) -> tuple[int, ...]:
    """The ``train_sides`` option: comma-separated maze sides for the training split, each
    in 5..``side`` (smaller mazes are padded with walls into the side x side frame)."""
    if value is None or not value.strip():
        return (side,)
    parts = [part.strip() for part in value.split(",")]
    for part in parts:
        if not part.isdigit() or not 5 <= int(part) <= side:
            raise SourceError(
                f"option train_sides={value!r}: {part!r} is not a side between 5 and {side}; "
                f'write e.g. train_sides = "7,9,{side}"'
            )
    return tuple(int(part) for part in parts)


MAX = csvsource.MAX_GENERATED


def generator_source(
    side: int, *, count: int, test_count: int, min_path: int, braid: float
) -> Source:
    def load(request: SourceRequest) -> RawData:
        most = {"count": MAX, "test_count": MAX, "min_path": side * side}  # docs/errors.md
        opts = {
            key: csvsource.parse_int_option(request.options, key, value, hi=most[key])
            for key, value in (("count", count), ("test_count", test_count), ("min_path", min_path))
        }
        chosen = csvsource.parse_float_option(request.options, "braid")
        chosen = braid if chosen is None else chosen
        if not 0 <= chosen <= 1:
            raise SourceError(f"option braid={chosen}: must be between 0 and 1")
        sides = parse_sides(request.options.get("train_sides"), side)
        params: dict[str, object] = {"side": side, "seed": request.seed, "braid": chosen, **opts}
        if sides != (side,):
            params["train_sides"] = list(sides)
        rng = np.random.default_rng(request.seed)
        seen: set[bytes] = set()
        puzzles: list[RawPuzzle] = []
        # the train count split evenly over the sides (the first ones get the remainder)
        count_of, parts = opts["count"], len(sides)
        plan = [
            ("train", s, count_of // parts + (i < count_of % parts)) for i, s in enumerate(sides)
        ]
        plan.append(("test", side, opts["test_count"]))
        numbered = {"train": itertools.count(), "test": itertools.count()}
        for split, maze_side, n in plan:
            # stepping stones: S and G at least a corner-to-corner walk apart (2 side - 1 cells)
            shortest = opts["min_path"] if maze_side == side else 2 * maze_side - 1
            try:
                made = list(
                    generator.generate(
                        maze_side, n, rng, min_path=shortest, braid=chosen, avoid=seen
                    )
                )
            except RuntimeError as exc:
                raise SourceError(f"maze generator: {exc}") from None
            # a smaller maze sits in the top-left corner of a side x side frame of walls
            pad = {"pad_width": (0, side - maze_side), "constant_values": WALL}
            for item in made:
                example = Example(np.pad(item.maze, **pad), np.pad(item.solution, **pad))
                meta = {
                    "path_cells": item.path_cells,
                    "side": maze_side,
                    "source": "trmkit-generator",
                }
                name = f"{split}-{next(numbered[split]):06d}"
                puzzles.append(RawPuzzle.single(name, example, split, meta))
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        return RawData(puzzles, {"generator": digest}, f"generated mazes: {params}")

    return Source(
        name="generate",
        description=f"seeded {side}x{side} maze generator (braided DFS maze, shortest path "
        f">= {min_path} cells; offline, deterministic for --seed)",
        load=load,
        kind="generator",
        options={
            "count": f"training mazes (default {count})",
            "test_count": f"test mazes, disjoint from training (default {test_count})",
            "min_path": f"minimum shortest-path cells incl. S and G (default {min_path})",
            "braid": f"fraction of inner walls opened to add loops (default {braid})",
            "train_sides": f"comma-separated sides of the training mazes, e.g. 7,9,{side}: "
            f"count is split evenly, smaller mazes are padded with walls into the {side}x{side} "
            "frame (stepping stones, shortest path >= 2 side - 1 cells); the test split stays "
            f"{side}x{side} (default {side})",
        },
    )


def parse_puzzles(side: int):
    """`trmkit solve` input, a maze text or a file of them, read by `trmkit.grids.text`:
    ``side`` lines of ``side`` characters ``# SG`` (``o``, a path cell as `render` prints
    it, is read as open); lines shorter than ``side`` are padded with spaces because
    editors strip trailing blanks (so an all-open row may be an empty line). Mazes are
    separated by a line of dashes (``---``) or by blank lines; a ``# name`` line (a ``#``
    followed by text that is not maze cells) names the maze below it.
    The test example's output is the BFS shortest path, so answers can be scored.
    """
    lut = {ch: i for i, ch in enumerate(CHARS)}
    hint = "use '#', ' ', 'S', 'G'"

    def name_of(line: str) -> str | None:
        if not line.startswith("#") or all(ch in lut for ch in line):
            return None
        return line[1:].strip()

    def parse(text: str) -> list[RawPuzzle]:
        src = text_grids.read_puzzle_text(text, text="maze text", what="maze file")
        found: list[tuple[str | None, int, Example]] = []
        for block in text_grids.text_blocks(
            src.body, name_of=name_of, separator=_is_dashes, blank_ends=False
        ):
            for i, rows in enumerate(_mazes_of(block.rows, side)):
                first = rows[0][0]
                if len(rows) != side:
                    raise PuzzleError(
                        f"{src.where}, maze at line {first}: {len(rows)} lines, expected {side}"
                    )
                cells = []
                for number, line in rows:
                    if len(line) > side:
                        raise PuzzleError(
                            f"{src.where}, line {number}: {len(line)} characters, expected "
                            f"at most {side}"
                        )
                    cells.append(
                        text_grids.grid_cells(line.ljust(side), number, lut, src.where, hint, "")
                    )
                grid = np.array(cells, dtype=np.int64)
                grid[grid == PATH] = OPEN
                solved = shortest_path(grid)
                if solved is None:
                    raise PuzzleError(
                        f"{src.where}, maze at line {first}: needs exactly one S and one G "
                        "joined by open cells"
                    )
                found.append((block.name if i == 0 else None, first, Example(grid, solved)))
        if not found:
            raise PuzzleError(f"{src.where}: no maze found")
        names = text_grids.puzzle_names([name for name, _, _ in found], src.stem, "maze")
        return [
            RawPuzzle(name, test=(example,), meta={"line": first})
            for name, (_, first, example) in zip(names, found, strict=True)
        ]

    return parse


def _is_dashes(line: str) -> bool:
    return len(line.strip()) >= 3 and set(line.strip()) == {"-"}


def _mazes_of(rows: tuple[tuple[int, str], ...], side: int) -> list[list[tuple[int, str]]]:
    """The mazes of a block: empty lines around it are dropped while it has more than
    ``side`` lines (they may be all-open rows); a block still longer is split at its empty
    lines."""
    maze = list(rows)
    while len(maze) > side and not maze[0][1].strip():
        maze.pop(0)
    while len(maze) > side and not maze[-1][1].strip():
        maze.pop()
    if len(maze) <= side:
        return [maze]
    runs = itertools.groupby(maze, key=lambda row: bool(row[1].strip()))
    return [list(run) for filled, run in runs if filled]


def render(grid: np.ndarray) -> str:
    """Grid -> its "# SGo" text ('?' for a value outside the alphabet)."""
    return "\n".join("".join(cell_text(v) for v in row.tolist()) for row in np.asarray(grid))


def cell_text(value: int) -> str:
    """One cell's "# SGo" character, '?' outside the alphabet (`Task.cell_text`)."""
    return CHARS[value] if 0 <= value < len(CHARS) else "?"


def givens(grid: np.ndarray) -> np.ndarray:
    """What a maze fixes: its walls, S and G; only open cells may become path (`Task.givens`)."""
    return np.asarray(grid) != OPEN
