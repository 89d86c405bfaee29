"""Answers as a submission file in the ARC Prize format (`trmkit solve --submission`).

    {"<task id>": [{"attempt_1": grid, "attempt_2": grid}, ...one per test input, in order]}

Every puzzle given and every one of its test inputs is present, even when the model gave
no usable answer (then ``[[0]]``); the attempts are the best-ranked distinct answers of the
vote (`trmkit.voting`), the first repeated when there is only one. The file is written
atomically (`trmkit.atomic`): a reader sees the old file or the complete new one.
`read_submission` reads one back with every structural problem as one `SubmissionError`
line; scoring against solutions is the task's (ARC: `trmkit score`, `trmkit_arc.submission`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trmkit import atomic, textio
from trmkit.errors import SubmissionError
from trmkit.task import RawPuzzle

ATTEMPTS = 2
EMPTY_GRID: list[list[int]] = [[0]]
MAX_SUBMISSION_BYTES = 256 << 20


def attempt_keys(attempts: int = ATTEMPTS) -> list[str]:
    return [f"attempt_{i + 1}" for i in range(attempts)]


def _grid(value: Any) -> list[list[int]]:
    grid = np.asarray(value)
    if grid.ndim != 2 or grid.size == 0:
        return [list(row) for row in EMPTY_GRID]
    return grid.astype(np.int64).tolist()


def submission_of(
    puzzles: Sequence[RawPuzzle], answers: Sequence[Any], attempts: int = ATTEMPTS
) -> dict[str, list[dict[str, list[list[int]]]]]:
    """The submission of ``answers`` (`trmkit.solve.Answer`: ``puzzle``, ``query`` and
    ``attempts``, best first, or ``grid``) for every test input of ``puzzles``."""
    by_query = {(a.puzzle, a.query): a for a in answers}
    keys = attempt_keys(attempts)
    out: dict[str, list[dict[str, list[list[int]]]]] = {}
    for puzzle in puzzles:
        if puzzle.name in out:
            raise SubmissionError(
                f"task {puzzle.name!r} is given twice; a submission holds each task id once"
            )
        entries = []
        for q in range(len(puzzle.test)):
            answer = by_query.get((puzzle.name, q))
            given = [] if answer is None else getattr(answer, "attempts", None) or [answer.grid]
            grids = [_grid(g) for g in given[:attempts]] or [_grid(EMPTY_GRID)]
            grids += [grids[0]] * (attempts - len(grids))
            entries.append(dict(zip(keys, grids, strict=True)))
        out[puzzle.name] = entries
    return out


def write_submission(path: str | Path, submission: Mapping[str, Any]) -> Path:
    """``submission`` as JSON at ``path``, atomically."""
    return atomic.write_text(path, json.dumps(submission))


def _check_grid(value: Any, where: str) -> None:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(row, list) and row for row in value)
    ):
        raise SubmissionError(f"{where}: not a grid (a non-empty list of non-empty rows)")
    width = len(value[0])
    for r, row in enumerate(value):
        if len(row) != width:
            raise SubmissionError(
                f"{where}: ragged grid (row 0 has {width} cells, row {r} has {len(row)})"
            )
        for v in row:
            if type(v) is not int:
                raise SubmissionError(f"{where}: row {r} holds {v!r}; cells must be integers")


def check_submission(
    data: Any, where: str | Path, attempts: int = ATTEMPTS
) -> dict[str, list[dict[str, list[list[int]]]]]:
    """``data`` as a submission, or one SubmissionError naming ``where``, the task, the
    test input and what is wrong (a missing attempt, a grid that is not a grid)."""
    if not isinstance(data, dict) or not data:
        raise SubmissionError(
            f'{where}: expected an object {{"<task id>": [{{"attempt_1": grid, '
            f'"attempt_2": grid}}, ...]}}'
        )
    keys = attempt_keys(attempts)
    for task, entries in data.items():
        if not isinstance(entries, list) or not entries:
            raise SubmissionError(
                f"{where}: task {task}: expected a list with one entry per test input"
            )
        for i, entry in enumerate(entries):
            at = f"{where}: task {task}, test input {i + 1}"
            if not isinstance(entry, dict):
                raise SubmissionError(f"{at}: expected an object with {', '.join(keys)}")
            for key in keys:
                if key not in entry:
                    raise SubmissionError(
                        f"{at}: {key} is missing; every test input needs {attempts} attempts"
                    )
                _check_grid(entry[key], f"{at} {key}")
    return data


def read_submission(path: str | Path, attempts: int = ATTEMPTS) -> dict[str, Any]:
    """A submission file, checked (`check_submission`)."""
    data = textio.read_json(
        path, max_bytes=MAX_SUBMISSION_BYTES, error=SubmissionError, what="submission file"
    )
    return check_submission(data, path, attempts)


__all__ = [
    "ATTEMPTS",
    "attempt_keys",
    "check_submission",
    "read_submission",
    "submission_of",
    "write_submission",
]
