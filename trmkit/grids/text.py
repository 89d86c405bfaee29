"""Puzzles as people type them (docs/plugins.md, "Helpers for grid tasks"): the reading
every built-in task's ``parse_puzzles`` shares, so `trmkit solve` and ``model.solve``
accept the same layouts for Sudoku, Maze and ARC grids.

* `read_puzzle_text`: the argument is a file (read through `trmkit.textio`: UTF-8,
  bounded) or the text itself; a file gives its name to the puzzles in it.
* `text_blocks`: grids are separated by blank lines (a task may also end a grid at a
  separator line, Maze's ``---``); a ``# name`` line names the grid below it.
* `grid_cells`: one row's cells through the task's character table, skipping the
  separators the task allows (spaces, ``|``, ``+``, ``-``).
* `grids_of_block`: the rows of a block as grids of a fixed shape: one grid per line
  (the whole grid on one line, as the CSV files hold it) or R lines of C cells each
  (as `Task.render` prints it); rules (lines of separators only) are skipped.
* `puzzle_names`: the ``# name``, else the file's name (``name-2`` ... when it holds
  several grids), else ``puzzle-K`` for the K-th grid.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
import numpy as np

from trmkit import textio
from trmkit.errors import PuzzleError

MAX_PUZZLE_FILE_BYTES = 64 << 20
"""a puzzle file larger than 64 MiB is refused before it is parsed."""
SEPARATORS = " \t|+-"
"""characters that only lay a grid out: between cells, and box rules."""
BLANKS = "._0"
"""how people write an empty cell (for tasks whose 0 is a blank)."""


@attrs.frozen
class PuzzleText:
    body: str
    where: str
    """the file, or ``what`` the text is, for messages."""
    stem: str | None
    """the file's name without its suffix (None for inline text)."""


def read_puzzle_text(
    spec: str, *, text: str = "puzzle text", what: str = "puzzle file"
) -> PuzzleText:
    """``spec`` as a file's text when it names an existing file, else as the text."""
    if len(spec) < 4096 and textio.is_existing_file(spec):
        path = Path(spec).expanduser()
        body = textio.read_text(path, max_bytes=MAX_PUZZLE_FILE_BYTES, error=PuzzleError, what=what)
        return PuzzleText(body, str(path), path.name.split(".")[0] or path.name)
    return PuzzleText(spec, text, None)


@attrs.frozen
class TextBlock:
    name: str | None
    """the text of the ``# name`` line above it, if any."""
    rows: tuple[tuple[int, str], ...]
    """(1-based line number, line) of each of its lines."""

    @property
    def line(self) -> int:
        return self.rows[0][0]


def hash_name(line: str) -> str | None:
    """``# name`` -> "name" (any line whose first non-blank character is ``#``)."""
    stripped = line.strip()
    return stripped[1:].strip() if stripped.startswith("#") else None


def text_blocks(
    body: str,
    *,
    name_of: Callable[[str], str | None] = hash_name,
    separator: Callable[[str], bool] = lambda line: False,
    blank_ends: bool = True,
) -> list[TextBlock]:
    """The blocks of lines of ``body``: a blank line or a ``separator`` line ends a block;
    a line ``name_of`` reads as a name ends one too and names the block right below it
    (with a blank line between, it is a comment). Without
    ``blank_ends`` blank lines stay in their block, as rows (Maze's all-open rows)."""
    blocks: list[TextBlock] = []
    name: str | None = None
    rows: list[tuple[int, str]] = []

    def close() -> None:
        nonlocal name, rows
        if any(line.strip() for _, line in rows):
            blocks.append(TextBlock(name, tuple(rows)))
            name = None
        rows = []

    for number, line in enumerate(body.splitlines(), start=1):
        named = name_of(line)
        if named is not None:
            close()
            name = named or None
        elif separator(line) or (blank_ends and not line.strip()):
            close()
            name = None  # a `#` line with a blank line below it is a comment
        else:
            rows.append((number, line))
    close()
    return blocks


def grid_cells(
    line: str, number: int, lut: Mapping[str, int], where: str, hint: str, skip: str = SEPARATORS
) -> list[int]:
    """The cells of one row: each character through ``lut``, ``skip`` characters dropped;
    any other character is one `PuzzleError` line naming the line and ``hint``."""
    cells = []
    for ch in line:
        if ch in lut:
            cells.append(lut[ch])
        elif ch not in skip:
            raise PuzzleError(f"{where}, line {number}: illegal character {ch!r} ({hint})")
    return cells


def grids_of_block(
    block: TextBlock, shape: tuple[int, int], lut: Mapping[str, int], where: str, hint: str
) -> list[tuple[int, np.ndarray]]:
    """(first line, grid) of each grid of ``block``: one line of rows x cols cells per
    grid, or rows lines of cols cells each (lines of separators only are box rules)."""
    rows, cols = shape
    lines = [(n, grid_cells(text, n, lut, where, hint)) for n, text in block.rows]
    lines = [(n, cells) for n, cells in lines if cells]
    whole = rows * cols
    if not lines:
        return []
    if len(lines) == 1 or all(len(cells) == whole for _, cells in lines) and cols != whole:
        for n, cells in lines:
            if len(cells) != whole:
                raise PuzzleError(
                    f"{where}, line {n}: {len(cells)} cells, expected {whole} ({rows}x{cols} "
                    f"on one line, or {rows} lines of {cols})"
                )
        return [(n, np.array(cells, dtype=np.int64).reshape(rows, cols)) for n, cells in lines]
    for n, cells in lines:
        if len(cells) != cols:
            raise PuzzleError(
                f"{where}, line {n}: {len(cells)} cells, expected {cols} (a row of the "
                f"{rows}x{cols} grid at line {lines[0][0]})"
            )
    if len(lines) % rows:
        first = lines[len(lines) - len(lines) % rows][0]
        raise PuzzleError(
            f"{where}, grid at line {first}: {len(lines) % rows} rows, expected {rows} (grids "
            "are separated by blank lines)"
        )
    return [
        (lines[i][0], np.array([c for _, c in lines[i : i + rows]], dtype=np.int64))
        for i in range(0, len(lines), rows)
    ]


def puzzle_names(
    names: Sequence[str | None], stem: str | None, default: str = "puzzle"
) -> list[str]:
    """A name per grid, K its place among them: its ``# name`` (``name-1``, ``name-2``...
    when one name covers several grids); else the file's stem (``stem-K`` when the file
    holds several grids); else ``default-K``."""
    counts = Counter(name for name in names if name is not None)
    seen: Counter[str] = Counter()
    out = []
    for k, name in enumerate(names, start=1):
        if name is None:
            out.append(stem if stem and len(names) == 1 else f"{stem or default}-{k}")
        else:
            seen[name] += 1
            out.append(name if counts[name] == 1 else f"{name}-{seen[name]}")
    return out
