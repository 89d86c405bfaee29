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
from trmkit.task import Example, RawPuzzle
from trmkit_arc.files import is_single_task, parse_task, read_task_file

# the usual ARC palette: black, blue, red, green, yellow, grey, magenta, orange, sky, maroon
PALETTE = (
    (0, 0, 0),
    (0, 116, 217),
    (255, 65, 54),
    (46, 204, 64),
    (255, 220, 0),
    (170, 170, 170),
    (240, 18, 190),
    (255, 133, 27),
    (127, 219, 255),
    (135, 12, 37),
)


def render_colour(grid: np.ndarray) -> str:
    """Digits on ANSI 24-bit backgrounds in the ARC palette."""
    lines = []
    for row in np.asarray(grid):
        cells = []
        for v in row.tolist():
            if 0 <= v < len(PALETTE):
                r, g, b = PALETTE[v]
                fg = "30" if sum(PALETTE[v]) > 380 else "97"
                cells.append(f"\x1b[{fg};48;2;{r};{g};{b}m{v} \x1b[0m")
            else:
                cells.append(f"{v} ")
        lines.append("".join(cells))
    return "\n".join(lines)


def render(grid: np.ndarray) -> str:
    """One line per row, digits separated by spaces (coloured with TRMKIT_COLOR=1)."""
    if os.environ.get("TRMKIT_COLOR", "").lower() in ("1", "true", "always"):
        return render_colour(grid)
    return "\n".join(" ".join(str(int(v)) for v in row) for row in np.asarray(grid))


def _is_file(path: Path) -> bool:
    return textio.is_existing_file(str(path))  # never raises: "File name too long" = text


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
    """An ARC task file (or its JSON text) -> one RawPuzzle per task.

    Accepts a single task {"train": [...], "test": [...]} or a {task_id: task} file. The
    demonstrations become ``train``, the test pairs ``test``; a test pair without an output
    gets its input as a stand-in label of the right shape (``meta['test_outputs_known']``
    is then False, and any "correct" verdict on it means nothing).
    """
    path = Path(spec).expanduser()
    try:
        if len(spec) < 4096 and _is_file(path):
            tasks = read_task_file(path, {})
        else:
            if not spec.lstrip().startswith(("{", "[")):
                raise PuzzleError(f"{spec[:60]!r}: neither an ARC task file nor ARC task JSON")
            data = textio.loads_json(
                spec, "ARC task JSON argument", error=PuzzleError, what="ARC task JSON"
            )
            if is_single_task(data):
                tasks = [parse_task(data, "puzzle", "<argument>")]
            elif isinstance(data, dict) and data:
                tasks = [parse_task(t, str(k), "<argument>") for k, t in data.items()]
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
