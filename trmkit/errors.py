"""Domain errors. The CLI turns every `TrmkitError` into one line and a non-zero exit."""

from __future__ import annotations


class TrmkitError(Exception):
    """Base class of every expected failure; its message is shown to the user as is."""


class PluginError(TrmkitError):
    """A plugin registered something invalid (the message names the plugin)."""


class UnknownNameError(TrmkitError):
    """A task, model, recipe or source name that nobody registered."""


class SourceError(TrmkitError):
    """A raw puzzle file is missing, unreadable or malformed (names file and row)."""


class StoreError(TrmkitError):
    """A dataset store is missing, incomplete, of another task or of another format."""


class ConfigError(TrmkitError):
    """A recipe or --set override is unknown or badly typed."""


class CheckpointError(TrmkitError):
    """A checkpoint bundle is missing, corrupt or does not match the task/data."""


class PuzzleError(TrmkitError):
    """A puzzle given to `trmkit solve` has the wrong size or alphabet."""


class OptionError(TrmkitError):
    """A command-line option out of range, or not applicable to this task or model."""


class RunDirError(TrmkitError):
    """A run directory is in use by another process, or is not a run to write into."""


class SubmissionError(TrmkitError):
    """A submission file (ARC Prize format) or the solutions it is scored against is
    malformed, or misses tasks, test inputs or attempts."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``exc``'s message (at most ``limit`` characters), or its type's name
    when it has none: how a foreign exception is quoted inside a one-line error."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
