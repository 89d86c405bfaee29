"""Reading ARC task files in the published layouts, with one-line errors for bad input.

Accepted inputs (a "subset" is one of these):
- a {task_id: task} JSON object, optionally gzipped (as in ``shared/data``: training.json.gz);
- a Kaggle ``arc-agi_<subset>_challenges.json``; its sibling ``..._solutions.json``
  ({task_id: [output grid per test input]}) is read when present;
- a folder of per-task ``<task_id>.json`` files, searched recursively (fchollet/ARC-AGI and
  arcprize/ARC-AGI-2 ``data/training``, ConceptARC ``corpus/<concept>/*.json``);
- a single task file {"train": [...], "test": [...]} (its id is the file name).

A task is {"train": [pair, ...], "test": [pair, ...]}, a pair {"input": grid, "output":
grid} and a grid a rectangular list of rows of ints 0..9, 1..30 a side. Test outputs may be
missing (Kaggle challenges without solutions): `ArcTask.test_outputs_known` is then False.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from trmkit import textio
from trmkit.errors import SourceError
from trmkit.grids.csvsource import file_sha256

MAX_SIDE = 30
MAX_FILE_BYTES = 1 << 30
"""an ARC JSON file (or its unpacked .gz) larger than 1 GiB is refused."""


@attrs.frozen
class ArcTask:
    """One ARC task as read: demonstration pairs and test pairs (outputs may be unknown)."""

    id: str
    train: tuple[tuple[np.ndarray, np.ndarray], ...]
    test: tuple[tuple[np.ndarray, np.ndarray | None], ...]
    origin: str
    """file the task came from (for messages)."""

    @property
    def test_outputs_known(self) -> bool:
        return all(out is not None for _, out in self.test)


def read_json(path: Path) -> Any:
    """Parse a .json or .json.gz file; SourceError naming the file if it is not JSON (not
    UTF-8, too large, nested too deeply, numbers beyond 64 bits: `trmkit.textio`)."""
    return textio.read_json(path, max_bytes=MAX_FILE_BYTES, error=SourceError, what="ARC JSON file")


def parse_grid(value: Any, where: str) -> np.ndarray:
    """A JSON grid -> int64[h, w]; SourceError ``where: problem`` otherwise."""
    if not isinstance(value, list) or not value:
        raise SourceError(f"{where}: a grid must be a non-empty list of rows")
    width = len(value[0]) if isinstance(value[0], list) else 0
    kinds: set[type] = set()
    for r, row in enumerate(value):
        if not isinstance(row, list) or not row:
            raise SourceError(f"{where}: row {r} is not a non-empty list")
        if len(row) != width:
            raise SourceError(
                f"{where}: ragged grid (row 0 has {width} cells, row {r} has {len(row)})"
            )
        kinds.update(map(type, row))  # C-level scan; bool and float are refused below
    h = len(value)
    if h > MAX_SIDE or width > MAX_SIDE:
        raise SourceError(f"{where}: grid is {h}x{width}; ARC grids are at most 30x30")
    try:
        grid = np.array(value, dtype=np.int64) if kinds == {int} else None
    except OverflowError:  # e.g. a colour of 10**30: the scan below names it
        grid = None
    if grid is None or grid.min() < 0 or grid.max() > 9:
        for r, row in enumerate(value):
            for v in row:
                if type(v) is not int or not 0 <= v <= 9:
                    raise SourceError(f"{where}: row {r} holds {v!r}; cells must be ints 0..9")
    assert grid is not None  # the scan above raised for anything but ints 0..9
    return grid


def parse_task(
    value: Any, task_id: str, origin: str, solutions: list[Any] | None = None
) -> ArcTask:
    """A JSON task object -> ArcTask. ``solutions`` fills missing test outputs (Kaggle)."""
    where = f"{origin}: task {task_id}"
    if not isinstance(value, Mapping):
        raise SourceError(f'{where}: expected an object with "train" and "test" lists')
    for part in ("train", "test"):
        if not isinstance(value.get(part), list):
            raise SourceError(f'{where}: "{part}" must be a list of {{"input", "output"}} pairs')
    if not value["test"]:
        raise SourceError(f"{where}: no test pairs")
    if solutions is not None and (
        not isinstance(solutions, list) or len(solutions) != len(value["test"])
    ):
        raise SourceError(
            f"{where}: the solutions file must give a list of {len(value['test'])} output grids"
        )
    pairs: dict[str, list] = {"train": [], "test": []}
    for part in ("train", "test"):
        for i, pair in enumerate(value[part]):
            at = f"{where} {part} pair {i}"
            if not isinstance(pair, Mapping) or "input" not in pair:
                raise SourceError(f'{at}: expected an object with "input" and "output" grids')
            inp = parse_grid(pair["input"], f"{at} input")
            out = pair.get("output")
            if out is None and part == "test" and solutions is not None:
                out = solutions[i]
            if out is None and part == "train":
                raise SourceError(f'{at}: missing "output" grid')
            pairs[part].append((inp, None if out is None else parse_grid(out, f"{at} output")))
    if not value["train"]:
        raise SourceError(
            f'{where}: no demonstration pairs ("train" is empty); an ARC task needs at least one'
        )
    return ArcTask(task_id, tuple(pairs["train"]), tuple(pairs["test"]), origin)


def is_single_task(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("train"), list)


def _kaggle_solutions(path: Path) -> Path | None:
    """The ``..._solutions.json(.gz)`` beside a Kaggle ``..._challenges.json(.gz)``, if any."""
    name = re.sub(r"_challenges(\.json(\.gz)?)\Z", r"_solutions\1", path.name)
    sibling = path.with_name(name)
    return sibling if name != path.name and sibling.exists() else None


def read_task_file(path: Path, files: dict[str, str]) -> list[ArcTask]:
    """Every task in one JSON file (task dict, Kaggle challenges or single task)."""
    data = read_json(path)
    files[str(path)] = file_sha256(path)
    if is_single_task(data):
        task_id = path.name.split(".")[0]
        return [parse_task(data, task_id, str(path))]
    if not isinstance(data, Mapping) or not data:
        raise SourceError(
            f"{path}: expected a {{task_id: task}} object, a Kaggle challenges file or a "
            f'single task {{"train": [...], "test": [...]}}'
        )
    solutions: Mapping[str, Any] = {}
    solutions_path = _kaggle_solutions(path)
    if solutions_path is not None:
        solutions = read_json(solutions_path)
        files[str(solutions_path)] = file_sha256(solutions_path)
        if not isinstance(solutions, Mapping):
            raise SourceError(f"{solutions_path}: expected a {{task_id: [grid, ...]}} object")
    return [
        parse_task(task, str(task_id), str(path), solutions.get(task_id))
        for task_id, task in data.items()
    ]


def read_task_folder(folder: Path, files: dict[str, str]) -> list[ArcTask]:
    """A folder of per-task JSON files (recursive; ids = file names, must be unique): the
    regular ``.json``/``.json.gz`` files; such a name on a pipe, socket or device is refused
    (reading it could block forever)."""
    tasks: list[ArcTask] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if not path.name.endswith((".json", ".json.gz")):
            continue
        if textio.is_special_file(path):
            raise textio.special_file_error(path, SourceError, "ARC JSON file")
        if not path.is_file():
            continue
        data = read_json(path)
        if not is_single_task(data):
            raise SourceError(
                f'{path}: expected one task {{"train": [...], "test": [...]}} per file in '
                f"folder {folder}"
            )
        task_id = path.name.split(".")[0]
        if task_id in seen:
            raise SourceError(f"{path}: task id {task_id} also in {seen[task_id]}")
        seen[task_id] = path
        files[str(path)] = file_sha256(path)
        tasks.append(parse_task(data, task_id, str(path)))
    if not tasks:
        raise SourceError(f"{folder}: no .json task files found")
    return tasks


def read_subset(path: Path, files: dict[str, str]) -> list[ArcTask]:
    """One subset: a folder of task files or one JSON file."""
    return (read_task_folder if path.is_dir() else read_task_file)(path, files)
