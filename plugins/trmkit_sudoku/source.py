"""Sudoku sources: CSV files (local or from the hub), the generator, and `trmkit solve` input.

Grid values: 0 blank, 1..n digits. Every puzzle becomes a RawPuzzle with one example in
``train`` (rows of train.csv, generated training puzzles) or in ``test``; ``meta`` holds
the rating, the CSV ``source`` column and the line number.
"""

from __future__ import annotations

import functools
import hashlib
import json

import numpy as np

from trmkit.errors import PuzzleError, SourceError
from trmkit.grids import csvsource
from trmkit.grids import text as text_grids
from trmkit.task import Example, RawData, RawPuzzle, Source, SourceRequest
from trmkit_sudoku import generator
from trmkit_sudoku.solver import Geometry, consistent, solve, valid_solutions

HUB_REPO = "sapientinc/sudoku-extreme"
CSV_OPTIONS = {
    "min_rating": "keep puzzles whose rating column is >= this value, train and test "
    "(the reference's min_difficulty; rows without a rating are then dropped)",
    "subsample": "keep this many random train puzzles (seeded by --seed; the recipe uses "
    "1000); the test split is kept whole",
}


def read_tables(geo: Geometry, tables: list[csvsource.CsvTable], options, seed: int):
    """Validated puzzles from CSV tables: filters first, then checks the kept rows."""
    n = geo.n
    digits = {str(d): d for d in range(1, n + 1)}
    question_lut = csvsource.make_lut({".": 0, "0": 0, **digits})
    answer_lut = csvsource.make_lut(digits)
    puzzles: list[RawPuzzle] = []
    for table in csvsource.kept_tables(tables, options, seed, require_rows=True):
        questions = csvsource.map_chars(
            table, table.questions, "question", question_lut, ".0" + "".join(digits)
        ).reshape(-1, n, n)
        answers = csvsource.map_chars(
            table, table.answers, "answer", answer_lut, "".join(digits)
        ).reshape(-1, n, n)
        agree = consistent(questions, answers)
        if not agree.all():
            row = int(np.flatnonzero(~agree)[0])
            cell = int(np.flatnonzero((questions[row] != 0) & (questions[row] != answers[row]))[0])
            raise table.fail(
                row,
                f"answer contradicts its givens at row {cell // n + 1}, column {cell % n + 1} "
                f"(given {questions[row].flat[cell]}, answer {answers[row].flat[cell]})",
            )
        valid = valid_solutions(answers, geo)
        if not valid.all():
            raise table.fail(
                int(np.flatnonzero(~valid)[0]),
                "answer is not a valid sudoku (a digit repeats in a row, column or box)",
            )
        puzzles += csvsource.table_puzzles(table, questions, answers)
    return puzzles


def csv_sources(geo: Geometry, task: str, hub: bool) -> dict[str, Source]:
    """The ``csv`` source, and the ``hub`` one (Sudoku-Extreme) when ``hub``."""
    sizes = "train.csv 3.8M rows, test.csv 423k"
    return csvsource.sources(
        functools.partial(read_tables, geo),
        geo.cells,
        "sudokus",
        CSV_OPTIONS,
        (HUB_REPO, task, sizes) if hub else None,
    )


def generator_source(
    geo: Geometry, *, count: int, test_count: int, min_rating: int, givens: int
) -> Source:
    defaults = {
        "count": count,
        "test_count": test_count,
        "min_rating": min_rating,
        "givens": givens,
    }
    # range-checked (docs/errors.md): givens=99 on a 4x4 grid is refused
    most = {
        "count": csvsource.MAX_GENERATED,
        "test_count": csvsource.MAX_GENERATED,
        "givens": geo.cells,
    }

    def load(request: SourceRequest) -> RawData:
        opts = {
            key: csvsource.parse_int_option(request.options, key, value, hi=most.get(key))
            for key, value in defaults.items()
        }
        params = {"n": geo.n, "seed": request.seed, **opts}
        rng = np.random.default_rng(request.seed)
        seen: set[bytes] = set()
        puzzles: list[RawPuzzle] = []
        for split, key in (("train", "count"), ("test", "test_count")):
            made = generator.generate(
                geo,
                opts[key],
                rng,
                min_rating=opts["min_rating"],
                givens=opts["givens"],
                avoid=seen,
            )
            try:
                items = list(made)
            except RuntimeError as exc:
                raise SourceError(f"sudoku generator: {exc}") from None
            for i, item in enumerate(items):
                example = Example(item.puzzle, item.solution)
                meta = {"rating": float(item.rating), "source": "trmkit-generator"}
                puzzles.append(RawPuzzle.single(f"{split}-{i:06d}", example, split, meta))
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        return RawData(puzzles, {"generator": digest}, f"generated {geo.n}x{geo.n}: {params}")

    return Source(
        name="generate",
        description=f"seeded {geo.n}x{geo.n} generator: unique-solution puzzles with a "
        f"solver-guess rating (offline, deterministic for --seed)",
        load=load,
        kind="generator",
        options={
            "count": f"training puzzles (default {count})",
            "test_count": f"test puzzles, disjoint from training (default {test_count})",
            "min_rating": f"minimum solver guesses; 0 = any (default {min_rating})",
            "givens": f"stop removing clues at this many givens; 0 = minimal puzzles "
            f"(default {givens})",
        },
    )


def parse_puzzles(geo: Geometry):
    """`trmkit solve` input, a puzzle text or a file of them, read by `trmkit.grids.text`:
    each puzzle on one line of n*n cells row-major (the CSV layout), or on n lines of n
    cells (as `render` prints it: spaces, ``|``, ``-`` and ``+`` lay it out); ``.``, ``0``
    or ``_`` for a blank; puzzles separated by blank lines (one-line puzzles may follow
    each other), a ``# name`` line naming the puzzle below it.

    The test example's output is the solver's solution (cheap here), so `trmkit solve` can
    also score itself; meta["unique"] says whether it was the only one.
    """
    n = geo.n
    lut = {**dict.fromkeys(text_grids.BLANKS, 0), **{str(d): d for d in range(1, n + 1)}}
    hint = f"use 1-{n}, '.', '0' or '_' for blanks; spaces, '|', '-' and '+' lay it out"

    def parse(text: str) -> list[RawPuzzle]:
        src = text_grids.read_puzzle_text(text)
        found = [
            (block.name, line, grid)
            for block in text_grids.text_blocks(src.body)
            for line, grid in text_grids.grids_of_block(block, (n, n), lut, src.where, hint)
        ]
        if not found:
            raise PuzzleError(f"{src.where}: no puzzle found")
        names = text_grids.puzzle_names([name for name, _, _ in found], src.stem)
        puzzles = []
        for name, (_, line, grid) in zip(names, found, strict=True):
            result = solve(grid, geo, limit=2)
            if not result.solutions:
                raise PuzzleError(f"{src.where}, line {line}: this sudoku has no solution")
            meta = {"unique": len(result.solutions) == 1, "line": line}
            example = Example(grid, result.solutions[0])
            puzzles.append(RawPuzzle(name, test=(example,), meta=meta))
        return puzzles

    return parse


def format_puzzle(puzzle: RawPuzzle) -> str:
    """The puzzle's question grids as `parse_puzzles` reads them: one line of digits each
    ('.' blank)."""
    return "\n".join(
        "".join(str(int(v)) if v else "." for v in np.asarray(e.input).reshape(-1))
        for e in (*puzzle.train, *puzzle.test)
    )


def render(geo: Geometry):
    """Grid -> text with box separators ('.' blank, '?' for an invalid predicted cell)."""
    n, br, bc = geo.n, geo.box_rows, geo.box_cols
    rule = "+".join("-" * (2 * bc + 1) for _ in range(n // bc))[1:-1]

    def draw(grid: np.ndarray) -> str:
        grid = np.asarray(grid).reshape(n, n)
        lines = []
        for r in range(n):
            if r and r % br == 0:
                lines.append(rule)
            boxes = (grid[r, c0 : c0 + bc] for c0 in range(0, n, bc))
            lines.append(" | ".join(" ".join(_cell(int(v), n) for v in box) for box in boxes))
        return "\n".join(lines)

    return draw


def givens(grid: np.ndarray) -> np.ndarray:
    """The clues: every non-blank cell of the puzzle (`Task.givens`)."""
    return np.asarray(grid) != 0


def cell_text(geo: Geometry):
    """One cell as `render` prints it (`Task.cell_text`)."""
    return lambda value: _cell(int(value), geo.n)


def _cell(value: int, n: int) -> str:
    if value == 0:
        return "."
    return str(value) if 1 <= value <= n else "?"
