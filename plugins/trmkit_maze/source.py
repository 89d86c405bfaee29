"""Maze sources: CSV files (local or hub), the generator, and `trmkit solve` input.

Grid values are indices into ``"# SGo"`` (see `trmkit_maze.grid`). A question may hold
``# SG``; its answer must equal it except that some open cells became ``o``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from trmkit import textio
from trmkit.errors import PuzzleError, SourceError
from trmkit.grids import csvsource
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


def _shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal counts (the first ones get the remainder)."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def parse_sides(value: str | None, side: int) -> tuple[int, ...]:
    """The ``train_sides`` option: comma-separated maze sides for the training split, each
    in 5..``side`` (smaller mazes are padded with walls into the side x side frame)."""
    if value is None or not value.strip():
        return (side,)
    sides: list[int] = []
    for part in value.split(","):
        part = part.strip()
        if not part.isdigit() or not 5 <= int(part) <= side:
            raise SourceError(
                f"option train_sides={value!r}: {part!r} is not a side between 5 and {side}; "
                f'write e.g. train_sides = "7,9,{side}"'
            )
        sides.append(int(part))
    return tuple(sides)


def _padded(grid: np.ndarray, side: int) -> np.ndarray:
    """``grid`` in the top-left corner of a side x side frame of walls."""
    frame = np.full((side, side), WALL, dtype=grid.dtype)
    frame[: grid.shape[0], : grid.shape[1]] = grid
    return frame


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
        shares = _shares(opts["count"], len(sides))
        plan = [("train", s, n) for s, n in zip(sides, shares, strict=True)]
        plan.append(("test", side, opts["test_count"]))
        numbered = {"train": 0, "test": 0}
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
            for item in made:
                example = Example(_padded(item.maze, side), _padded(item.solution, side))
                meta = {
                    "path_cells": item.path_cells,
                    "side": maze_side,
                    "source": "trmkit-generator",
                }
                name = f"{split}-{numbered[split]:06d}"
                numbered[split] += 1
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


MAX_PUZZLE_FILE_BYTES = 64 << 20
"""a maze file given to `trmkit solve` larger than 64 MiB is refused."""


def parse_puzzles(side: int):
    """`trmkit solve` input: a file (or text) of mazes, ``side`` lines of ``side`` chars each.

    Characters ``# SG`` (``o`` is read as open); lines shorter than ``side`` are padded with
    spaces because editors strip trailing blanks (so an all-open row may be an empty line).
    Several mazes are separated by a line of dashes (``---``); empty lines before and after
    each maze are ignored.
    The test example's output is the BFS shortest path, so answers can be scored.
    """
    lut = {ch: i for i, ch in enumerate(CHARS)}

    def parse(text: str) -> list[RawPuzzle]:
        path = Path(text).expanduser()
        is_file = len(text) < 4096 and textio.is_existing_file(text)
        where = str(path) if is_file else "maze text"
        # through textio: bounded, UTF-8 checked, a leading BOM dropped (docs/errors.md)
        body = (
            textio.read_text(
                path, max_bytes=MAX_PUZZLE_FILE_BYTES, error=PuzzleError, what="maze file"
            )
            if is_file
            else text
        )
        blocks: list[tuple[int, list[str]]] = []
        current: list[str] = []
        lines = body.splitlines() + ["---"]
        first = 1
        for number, line in enumerate(lines, start=1):
            line = line.rstrip("\r\n")
            if len(line) >= 3 and set(line.strip()) == {"-"}:
                # blank lines around a maze are not rows, unless the maze needs them
                while len(current) > side and not current[0].strip():
                    current.pop(0)
                    first += 1
                while len(current) > side and not current[-1].strip():
                    current.pop()
                if any(row.strip() for row in current):
                    if len(current) != side:
                        raise PuzzleError(
                            f"{where}, maze at line {first}: {len(current)} lines, expected {side}"
                        )
                    blocks.append((first, current))
                current, first = [], number + 1
                continue
            if len(line) > side:
                raise PuzzleError(
                    f"{where}, line {number}: {len(line)} characters, expected at most {side}"
                )
            bad = next((ch for ch in line if ch not in lut), None)
            if bad is not None:
                raise PuzzleError(
                    f"{where}, line {number}: illegal character {bad!r} (use '#', ' ', 'S', 'G')"
                )
            current.append(line.ljust(side))
        puzzles = []
        for first, lines in blocks:
            grid = np.array([[lut[ch] for ch in row] for row in lines], dtype=np.int64)
            grid[grid == PATH] = OPEN
            solved = shortest_path(grid)
            if solved is None:
                raise PuzzleError(
                    f"{where}, maze at line {first}: needs exactly one S and one G joined by "
                    f"open cells"
                )
            example = Example(grid, solved)
            puzzles.append(RawPuzzle(f"maze-{first}", test=(example,), meta={"line": first}))
        if not puzzles:
            raise PuzzleError(f"{where}: no maze found")
        return puzzles

    return parse


def render(grid: np.ndarray) -> str:
    """Grid -> its "# SGo" text ('?' for a value outside the alphabet)."""
    grid = np.asarray(grid)
    return "\n".join(
        "".join(CHARS[v] if 0 <= v < len(CHARS) else "?" for v in row.tolist()) for row in grid
    )
