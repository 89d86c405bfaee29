"""Registers the sudoku task (filled in by the tasks issue)."""

from trmkit.hookspecs import hookimpl


@hookimpl
def register_tasks(register):
    return None
