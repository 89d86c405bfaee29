"""Scoring an ARC Prize submission against solutions, as the ARC Prize scores it.

A submission is ``{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}``, one entry per
test input in the task's order (`trmkit.inference.submission` writes and checks the
shape). Per test input, pass@1 is ``attempt_1 == truth`` and pass@2 ``attempt_1 == truth or
attempt_2 == truth`` (exact grids: shape and every cell); a task scores the fraction of
its test inputs passed; the score is the mean over the solutions' tasks. Every task of the
solutions must be in the submission with every test input and both attempts, and the
submission may hold no other task: anything else is one `SubmissionError` line naming the
file, the task and the test input.

Solutions are read from a Kaggle ``arc-agi_<subset>_solutions.json`` (``{task_id: [output
grid, ...]}``) or from task files that carry their test outputs (a ``{task_id: task}``
file, a single task file, a folder of task files: `trmkit_arc.files`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from trmkit.errors import SourceError, SubmissionError
from trmkit.inference.submission import attempt_keys, check_submission, read_submission
from trmkit_arc.files import is_single_task, parse_grid, read_json, read_subset


@attrs.frozen
class ArcScore:
    pass_at_1: float
    pass_at_2: float
    tasks: int
    test_inputs: int
    per_task: dict[str, tuple[float, float]]
    """task -> (pass@1, pass@2) fraction of its test inputs."""

    def to_json(self) -> dict[str, Any]:
        return {
            "pass@1": self.pass_at_1,
            "pass@2": self.pass_at_2,
            "tasks": self.tasks,
            "test_inputs": self.test_inputs,
            "per_task": {k: {"pass@1": a, "pass@2": b} for k, (a, b) in self.per_task.items()},
        }


def _is_solutions(data: Any) -> bool:
    """{task_id: [grid, ...]}: every value a list whose items are lists of lists."""
    return (
        isinstance(data, Mapping)
        and bool(data)
        and not is_single_task(data)
        and all(
            isinstance(v, list)
            and all(isinstance(g, list) and g and isinstance(g[0], list) for g in v)
            for v in data.values()
        )
    )


def read_solutions(path: str | Path) -> dict[str, list[np.ndarray]]:
    """task id -> its test outputs in order (see the module docstring)."""
    path = Path(path)
    try:
        if path.is_file():
            data = read_json(path)
            if _is_solutions(data):
                return {
                    str(task): [
                        parse_grid(g, f"{path}: task {task} test output {i + 1}")
                        for i, g in enumerate(grids)
                    ]
                    for task, grids in data.items()
                }
        if not path.exists():
            raise SubmissionError(f"{path}: no such solutions file or folder")
        tasks = read_subset(path, {})
    except SourceError as exc:
        raise SubmissionError(str(exc)) from None
    for task in tasks:
        for i, (_, output) in enumerate(task.test, 1):
            if output is None:
                raise SubmissionError(
                    f"{task.origin}: task {task.id} test input {i} has no output; give "
                    "the solutions file (arc-agi_<subset>_solutions.json) or tasks with outputs"
                )
    return {task.id: [output for _, output in task.test] for task in tasks}


def score_submission(
    submission: Any, solutions: Mapping[str, list[np.ndarray]], where: str | Path
) -> ArcScore:
    """The ARC Prize score of ``submission`` (parsed JSON) against ``solutions``."""
    submission = check_submission(submission, where)
    extra = sorted(set(submission) - set(solutions))
    if extra:
        raise SubmissionError(
            f"{where}: task {extra[0]} is not in the solutions ({len(extra)} such); score "
            "against the solutions of the same task set"
        )
    keys = attempt_keys()
    per_task: dict[str, tuple[float, float]] = {}
    inputs = 0
    for task, truths in solutions.items():
        entries = submission.get(task)
        if entries is None:
            raise SubmissionError(
                f"{where}: task {task} is missing; a submission holds every task, with "
                "attempts even when the model has no answer"
            )
        if len(entries) != len(truths):
            raise SubmissionError(
                f"{where}: task {task} has {len(entries)} test inputs, the solutions "
                f"{len(truths)}; give one entry per test input, in order"
            )
        one = two = 0
        for i, (entry, truth) in enumerate(zip(entries, truths, strict=True)):
            at = f"{where}: task {task}, test input {i + 1}"
            try:
                hits = [np.array_equal(parse_grid(entry[k], f"{at} {k}"), truth) for k in keys]
            except SourceError as exc:
                raise SubmissionError(str(exc)) from None
            one += hits[0]
            two += any(hits)
        inputs += len(truths)
        per_task[task] = (one / len(truths), two / len(truths))
    n = max(len(solutions), 1)
    return ArcScore(
        pass_at_1=sum(a for a, _ in per_task.values()) / n,
        pass_at_2=sum(b for _, b in per_task.values()) / n,
        tasks=len(solutions),
        test_inputs=inputs,
        per_task=per_task,
    )


def score_files(submission: str | Path, solutions: str | Path) -> ArcScore:
    """`trmkit score SUBMISSION SOLUTIONS`."""
    data = read_submission(submission)
    return score_submission(data, read_solutions(solutions), submission)


__all__ = ["ArcScore", "read_solutions", "score_files", "score_submission"]
