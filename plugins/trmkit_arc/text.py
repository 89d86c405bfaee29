"""Grid text for `trmkit data info` / `trmkit solve`, and ARC task files given to `solve`.

`render` prints one digit per cell (0 = black ... 9 = maroon). With ``TRMKIT_COLOR=1`` in
the environment each cell is also painted in the ARC palette (ANSI 24-bit background);
the default stays plain text because the same string lands in ``solve --json`` output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from trmkit import textio
from trmkit.errors import PuzzleError, SourceError
from trmkit.grids import text as text_grids
from trmkit.task import Example, RawPuzzle
from trmkit_arc.files import is_single_task, parse_task, read_task_file

# the usual ARC palette: black, blue, red, green, yellow, grey, magenta, orange, sky, maroon
PALETTE = bytes.fromhex("000000 0074D9 FF4136 2ECC40 FFDC00 AAAAAA F012BE FF851B 7FDBFF 870C25")
# a cell of each colour: its digit on its colour, in dark text on the light ones
CELLS = {
    v: "\x1b[{};48;2;{};{};{}m{} \x1b[0m".format("30" if sum(rgb) > 380 else "97", *rgb, v)
    for v, rgb in enumerate(PALETTE[i : i + 3] for i in range(0, len(PALETTE), 3))
}


def render(grid: np.ndarray) -> str:
    """One line per row, digits separated by spaces (with TRMKIT_COLOR=1: each digit on its
    colour, an ANSI 24-bit background in the ARC palette)."""
    rows = np.asarray(grid).tolist()
    if os.environ.get("TRMKIT_COLOR", "").lower() in ("1", "true", "always"):
        return "\n".join("".join(CELLS.get(v, f"{v} ") for v in row) for row in rows)
    return "\n".join(" ".join(str(int(v)) for v in row) for row in rows)


def format_puzzle(puzzle: RawPuzzle) -> str:
    """The puzzle as ARC task JSON ({"train": [...], "test": [...]}), which `parse_puzzles`
    reads back (a puzzle without test pairs, a training-set task, gives its last
    demonstration as the test pair, so the examples stay in order)."""

    def pairs(examples: tuple[Example, ...]) -> list[dict[str, list[list[int]]]]:
        return [
            {"input": np.asarray(e.input).tolist(), "output": np.asarray(e.output).tolist()}
            for e in examples
        ]

    train, test = puzzle.train, puzzle.test
    if not test:
        train, test = train[:-1], train[-1:]
    return json.dumps({"train": pairs(train), "test": pairs(test)})


def parse_puzzles(spec: str) -> list[RawPuzzle]:
    """An ARC task file (or its JSON text) -> one RawPuzzle per task; or grids as `render`
    prints them (`trmkit.grids.text`) -> one test-only puzzle per grid.

    Accepts a single task {"train": [...], "test": [...]} or a {task_id: task} file. The
    demonstrations become ``train``, the test pairs ``test``; a test pair without an output
    gets its input as a stand-in label of the right shape (``meta['test_outputs_known']``
    is then False, and any "correct" verdict on it means nothing). A grid is one row per
    line of digits 0-9 (spaces between them optional), grids separated by blank lines, a
    ``# name`` line naming the grid below it; it has no demonstrations, so only a model
    that learnt its task can answer it.
    """
    path = Path(spec).expanduser()
    # is_existing_file never raises: a "File name too long" spec is text
    is_file = len(spec) < 4096 and textio.is_existing_file(str(path))
    try:
        if is_file and path.name.endswith((".json", ".json.gz")):
            tasks = read_task_file(path, {})
        else:
            src = text_grids.read_puzzle_text(spec, text="ARC grid text", what="ARC task file")
            if not src.body.lstrip().startswith(("{", "[")):
                return _grid_puzzles(src)
            data = textio.loads_json(src.body, src.where, error=PuzzleError, what="ARC task JSON")
            if is_single_task(data):
                tasks = [parse_task(data, src.stem or "puzzle", src.where)]
            elif isinstance(data, dict) and data:
                tasks = [parse_task(t, str(k), src.where) for k, t in data.items()]
            else:
                raise PuzzleError('expected {"train": [...], "test": [...]} or {id: task}')
    except SourceError as exc:
        raise PuzzleError(str(exc)) from None
    return [
        RawPuzzle(
            name=task.id,
            train=[Example(i, o) for i, o in task.train],
            test=[Example(i, i if o is None else o) for i, o in task.test],
            meta={"test_outputs_known": task.test_outputs_known},
        )
        for task in tasks
    ]


DIGITS = {str(d): d for d in range(10)}


def _grid_puzzles(src: text_grids.PuzzleText) -> list[RawPuzzle]:
    """Grids as `render` prints them, each a puzzle of one test input (no known output)."""
    hint = "an ARC grid is rows of digits 0-9; or give ARC task JSON"
    blocks = text_grids.text_blocks(src.body)
    if not blocks:
        raise PuzzleError(f"{src.where}: neither ARC task JSON nor a grid of digits")
    grids = []
    for block in blocks:
        rows = [
            (n, text_grids.grid_cells(line, n, DIGITS, src.where, hint, " \t"))
            for n, line in block.rows
        ]
        width = len(rows[0][1])
        for n, cells in rows:
            if len(cells) != width:
                raise PuzzleError(
                    f"{src.where}, line {n}: {len(cells)} cells, expected {width} (the width "
                    f"of the grid at line {block.line})"
                )
        grids.append(np.array([c for _, c in rows], dtype=np.int64))
    names = text_grids.puzzle_names([block.name for block in blocks], src.stem, "grid")
    return [
        RawPuzzle(name, test=(Example(grid, grid),), meta={"test_outputs_known": False})
        for name, grid in zip(names, grids, strict=True)
    ]
