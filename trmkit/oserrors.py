"""Operating-system faults at the write boundaries, as one line a user can act on.

A full disk, a read-only mount, a missing permission, a name the filesystem cannot hold, a
path whose parent is a file or a dangling link: the OS reports them as `OSError` with an
errno; a command should neither print a 40-line traceback for them nor find out only after
hours of training. Two tools (docs/errors.md, "Write boundaries"):

* `describe_os_error` turns such an `OSError` into ``<path>: <cause>; <fix>``. The CLI
  applies it to every `OSError` a command raises whose errno is in `ENVIRONMENT_ERRNOS`.
* `check_writable_dir` is the check a command runs *before* long work: it creates the
  directory if needed and writes and removes a probe file in it, so a read-only place, a
  file in the way or a dangling link is refused in milliseconds.

Base layer: imports nothing from trmkit but the errors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path

from trmkit.errors import TrmkitError

# errno -> (cause, fix). Anything else is not an environment fault and stays an exception.
_CAUSES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free some space or write somewhere else"),
    errno.EROFS: ("the file system is read-only", "choose a writable location"),
    errno.EACCES: ("permission denied", "choose a location you may write to"),
    errno.EPERM: ("operation not permitted", "choose a location you may write to"),
    errno.ENAMETOOLONG: ("the name is too long for the file system", "choose a shorter name"),
    errno.ENOTDIR: (
        "a part of the path is a file, not a directory",
        "move that file away or choose another path",
    ),
    errno.EISDIR: ("is a directory where a file was expected", "choose another path"),
    errno.EEXIST: ("already exists", "remove it or choose another path"),
    errno.ELOOP: ("too many levels of symbolic links", "fix or remove the link"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or close other work"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write somewhere else"),
    errno.EFBIG: ("the file is too large for the file system", "write somewhere else"),
    errno.EIO: ("input/output error", "check the disk (dmesg) and try again"),
}

ENVIRONMENT_ERRNOS = frozenset(_CAUSES)


class WriteError(TrmkitError):
    """A place trmkit must write to is unusable (full, read-only, a file, ...)."""


def describe_os_error(
    exc: OSError, path: str | os.PathLike[str] | None = None, *, name_path: bool = False
) -> str:
    """``<path>: <cause>; <fix>`` for an OSError: the path it names, else ``path`` (always
    ``path`` with ``name_path``, when the file the OS names is an internal one)."""
    where = path if name_path or exc.filename is None else exc.filename
    cause, fix = _CAUSES.get(
        exc.errno or 0, (exc.strerror or type(exc).__name__, "check the path and try again")
    )
    if isinstance(where, (str, bytes, os.PathLike)):
        where = os.fsdecode(where)
    prefix = f"{where}: " if where is not None else ""
    return f"{prefix}{cause}; {fix}"


def is_environment_fault(exc: BaseException) -> bool:
    """True for an OSError caused by the machine (disk, permissions, names), not by code."""
    return isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS


# Rust's io::Error as safetensors reports it: "... No space left on device (os error 28)"
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def find_os_error(exc: BaseException) -> OSError | None:
    """The environment OSError behind ``exc``, if any: ``exc`` itself, one in its
    ``__cause__``/``__context__`` chain (torch.save writing to a Python file wraps the
    file's OSError in a RuntimeError), or the errno in a safetensors error message."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if is_environment_fault(current):
            return current  # type: ignore[return-value]
        match = _RUST_OS_ERROR.search(str(current))
        if match and int(match.group(1)) in ENVIRONMENT_ERRNOS:
            code = int(match.group(1))
            return OSError(code, os.strerror(code))
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def writing(path: str | os.PathLike[str], what: str = "file") -> Iterator[None]:
    """Turn an environment fault raised while writing ``path`` (by Python, zarr, torch or
    safetensors) into a `WriteError` naming ``path``; anything else passes unchanged.
    Cleaning up a partial write is the caller's (it knows what is temporary)."""
    try:
        yield
    except WriteError:
        raise
    except Exception as exc:
        found = find_os_error(exc)
        if found is None:
            raise
        raise WriteError(f"writing the {what}: {describe_os_error(found, path)}") from exc


def _name_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


INNER_PATH_BYTES = 256
"""room `check_writable_dir` keeps for what a command writes inside the directory (the
longest: a run's ``checkpoints/.tmp-step_<N>.<pid>@<host>/train_state.safetensors``)."""


def _path_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        return 4096


def _check_name_lengths(p: Path, what: str, limit: int = 255) -> None:
    """Names longer than NAME_MAX (255 bytes on every common filesystem) before any stat
    call, which would itself fail with ENAMETOOLONG."""
    for name in p.parts:
        size = len(os.fsencode(name))
        if size > limit:
            raise WriteError(
                f"{p}: a name in the {what} is {size} bytes, longer than the {limit} a file "
                f"system allows ({name[:24]}...); choose a shorter name"
            )


def _unwritable(directory: Path) -> OSError | None:
    """Why ``directory`` cannot take a new file, asked without touching it: access(2)
    answers for permissions and read-only mounts (root included), statvfs for a full
    filesystem. None when it can (as far as the OS says before the write itself)."""
    try:
        stats = os.statvfs(directory)
    except (OSError, AttributeError):
        stats = None
    if not os.access(directory, os.W_OK | os.X_OK):
        readonly = stats is not None and stats.f_flag & os.ST_RDONLY
        code = errno.EROFS if readonly else errno.EACCES
        return OSError(code, os.strerror(code))
    privileged = os.name == "posix" and os.geteuid() == 0  # root may use the reserve
    if stats is not None and (stats.f_bfree if privileged else stats.f_bavail) == 0:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return None


def check_writable_dir(path: str | os.PathLike[str], what: str = "output directory") -> Path:
    """Check that ``path`` is, or can become, a directory that takes files, or raise
    `WriteError` naming it. Changes nothing on disk: ``path`` if it exists, else its
    nearest existing ancestor, is asked (access(2), statvfs) whether it takes a new file,
    and the names still to be created are checked against that filesystem's name length.
    Cheap; call it before long work."""
    p = Path(path)
    _check_name_lengths(p, what)
    if p.is_symlink() and not p.exists():
        raise WriteError(
            f"{p}: the {what} is a dangling symbolic link (to {os.readlink(p)}); "
            "remove the link or point it at a directory"
        )
    if p.exists() and not p.is_dir():
        raise WriteError(
            f"{p}: the {what} is a file, not a directory; move it away or choose another path"
        )
    existing, missing = p.absolute(), []
    while not existing.exists() and not existing.is_symlink():
        missing.append(existing.name)
        existing = existing.parent
    if not existing.is_dir():
        raise WriteError(
            f"{existing}: a part of the {what} {p} is a file, not a directory; "
            "move that file away or choose another path"
        )
    path_max = _path_max(existing)
    size = len(os.fsencode(p.absolute()))
    if size + INNER_PATH_BYTES > path_max:  # found at the first checkpoint, after training
        raise WriteError(
            f"{p}: the {what} path is {size} bytes; with the up to {INNER_PATH_BYTES} of the "
            f"names trmkit writes inside it, a path passes the {path_max} bytes the OS allows; "
            "choose a shorter path"
        )
    limit = _name_max(existing)
    for name in missing:
        if len(os.fsencode(name)) > limit:
            raise WriteError(
                f"{p}: the name {name[:40]}... is {len(os.fsencode(name))} bytes, longer than "
                f"the {limit} the file system allows; choose a shorter name"
            )
    problem = _unwritable(existing)
    if problem is not None:
        line = describe_os_error(problem, existing, name_path=True)
        raise WriteError(line if existing == p.absolute() else f"{p}: {line}")
    return p


def check_writable_file(path: str | os.PathLike[str], what: str = "output file") -> Path:
    """The file ``path`` can be written (its directory takes a file; the path itself is not
    a directory or a dangling link). Does not create or change ``path``."""
    p = Path(path)
    _check_name_lengths(p, what)
    if p.is_dir():
        raise WriteError(f"{p}: the {what} is a directory; choose a file name")
    if p.is_symlink() and not p.exists():
        raise WriteError(
            f"{p}: the {what} is a dangling symbolic link; remove the link or choose another name"
        )
    check_writable_dir(p.parent, f"directory of the {what}")
    return p


__all__ = [
    "ENVIRONMENT_ERRNOS",
    "WriteError",
    "check_writable_dir",
    "check_writable_file",
    "describe_os_error",
    "find_os_error",
    "is_environment_fault",
    "writing",
]
