"""`solve` judges an answer with the task's own checker (docs/training.md, "`trmkit solve`"):
a valid answer to a puzzle with several solutions is VALID, not WRONG."""

from __future__ import annotations

import numpy as np
import pytest

from trmkit import plugins
from trmkit.commands.solve import _verdict
from trmkit.solve import _check_answer

EMPTY = np.zeros((4, 4), dtype=np.int64)
SOLVED = np.array([[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]])
OTHER = np.array([[1, 2, 3, 4], [3, 4, 1, 2], [4, 3, 2, 1], [2, 1, 4, 3]])  # also valid


def test_the_checker_accepts_any_valid_solution_of_an_open_puzzle():
    task = plugins.get_task("sudoku-4x4")
    assert _check_answer(task, EMPTY, SOLVED) is True
    assert _check_answer(task, EMPTY, OTHER) is True
    broken = SOLVED.copy()
    broken[0, 0] = 2  # a repeated digit in row, column and box
    assert _check_answer(task, EMPTY, broken) is False
    givens = EMPTY.copy()
    givens[0, 0] = 4  # a given the answer does not keep
    assert _check_answer(task, givens, SOLVED) is False


def test_tasks_without_a_checker_have_no_validity():
    task = plugins.get_task("arc-agi-1")
    assert _check_answer(task, np.zeros((2, 2)), np.zeros((2, 2))) is None


@pytest.mark.parametrize(
    ("valid", "correct", "shown"),
    [
        (True, False, ", VALID (not the given solution)"),  # the empty-grid case: was WRONG
        (True, True, ", VALID"),
        (True, None, ", VALID"),
        (False, False, ", INVALID"),
        (False, None, ", INVALID"),
        (None, True, ", correct"),
        (None, False, ", WRONG"),
        (None, None, ""),
    ],
)
def test_the_verdict(valid, correct, shown):
    assert _verdict(valid, correct) == shown
