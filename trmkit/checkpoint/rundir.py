"""A run directory has one writer: an exclusive lock held for the writer's lifetime, owner
tokens on temporaries, and the check that a fresh run starts in an empty directory
(docs/errors.md, "Run directories: one writer, the right data").

* `lock_run_dir` takes ``fcntl.flock`` on ``<run>/.trmkit-run.lock`` (``msvcrt.locking``
  where there is no fcntl). The operating system drops the lock when the process dies, even
  by SIGKILL, so a stale lock file never blocks a later run. The file also records the
  holder (pid, host, since when) for the one-line refusal a second writer gets. The lock is
  per process: a second `lock_run_dir` in the holding process shares it.
* `writer_token` (``<pid>@<host>``) names a writer's temporaries; `owner_is_dead` tells
  whether the writer of a temporary provably died (same host, no such process).
* `check_fresh_run_dir`: a new run refuses a directory holding anything but the lock file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import time
import weakref
from pathlib import Path
from typing import IO

import attrs

from trmkit.atomic import pid_alive
from trmkit.errors import RunDirError

LOCK_NAME = ".trmkit-run.lock"
"""the lock file inside a run directory; its content names the holder."""
_TOKEN = re.compile(r"^(\d+)@(.+)$")

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
try:  # pragma: no cover - Windows
    import msvcrt
except ImportError:
    msvcrt = None  # type: ignore[assignment]
_MSVCRT_OFFSET = 1 << 20
"""msvcrt locks a byte range; lock one far past the holder text so readers can read it."""


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"


def writer_token() -> str:
    """``<pid>@<host>``: names the temporaries this process writes."""
    return f"{os.getpid()}@{_host()}"


def owner_is_dead(token: str) -> bool:
    """True only when ``token``'s process provably no longer runs: same host, no such pid.
    A token of another host, or one that does not parse, is not provably dead."""
    match = _TOKEN.match(token)
    if match is None or match.group(2) != _host():
        return False
    return not pid_alive(int(match.group(1)))


# ------------------------------------------------------------------------------ the lock


@attrs.define
class _Held:
    """One open, locked lock file of this process and how many holders share it."""

    handle: IO[str]
    users: int = 0


_HELD: dict[str, _Held] = {}


def _key(run_dir: Path) -> str:
    return os.path.realpath(run_dir)


def _try_lock(handle: IO[str]) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    if msvcrt is not None:  # pragma: no cover - Windows
        try:
            handle.seek(_MSVCRT_OFFSET)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        finally:
            handle.seek(0)
        return True
    return True  # pragma: no cover - no locking primitive: one writer is not enforced


def holder_text(run_dir: Path) -> str:
    """ "pid 123 on host h since 2025-01-02 10:11:12" from the lock file, or a fallback."""
    try:
        raw = json.loads((Path(run_dir) / LOCK_NAME).read_text(encoding="utf-8"))
        return f"pid {int(raw['pid'])} on host {str(raw['host'])!r} since {str(raw['since'])!r}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not recorded itself yet"


def _record_holder(handle: IO[str]) -> None:
    text = json.dumps(
        {
            "pid": os.getpid(),
            "host": _host(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv[:2])[:200],
        }
    )
    handle.seek(0)
    handle.truncate()
    handle.write(text + "\n")
    handle.flush()
    with contextlib.suppress(OSError):
        os.fsync(handle.fileno())


class RunLock:
    """This process's share of the exclusive lock on ``run_dir``; `release` (or garbage
    collection, or the process ending) gives it up."""

    def __init__(self, run_dir: Path, key: str, created: list[Path]) -> None:
        self.run_dir = run_dir
        self.created = created
        """the directories this lock made: ``run_dir`` and the parents it lacked, deepest
        first (empty when ``run_dir`` existed)."""
        self._release = weakref.finalize(self, _drop, key)

    def release(self) -> None:
        self._release()  # runs once, whether called here or at garbage collection

    def discard(self) -> None:
        """Release after a failed start: a directory this lock created and that holds
        nothing else is removed again, so a refused command leaves no trace."""
        self.release()
        if not self.created or _key(self.run_dir) in _HELD:
            return
        with contextlib.suppress(OSError):
            if [p.name for p in self.run_dir.iterdir()] == [LOCK_NAME]:
                (self.run_dir / LOCK_NAME).unlink()
                for made in self.created:  # rmdir: only while empty
                    made.rmdir()


def _drop(key: str) -> None:
    held = _HELD.get(key)
    if held is None:
        return
    held.users -= 1
    if held.users <= 0:
        del _HELD[key]
        held.handle.close()  # closing the descriptor releases flock / msvcrt locks


def lock_run_dir(run_dir: Path) -> RunLock:
    """Create ``run_dir`` if needed and lock it for this process; `RunDirError` naming the
    holder when another process has it."""
    run_dir = Path(run_dir)
    created = [p for p in (run_dir, *run_dir.parents) if not (p.exists() or p.is_symlink())]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunDirError(
            f"{run_dir}: exists and is not a directory; choose another --out"
        ) from None
    key = _key(run_dir)
    held = _HELD.get(key)
    if held is None:
        handle = open(run_dir / LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115 - held open
        if not _try_lock(handle):
            handle.close()
            raise RunDirError(
                f"{run_dir}: in use by another trmkit process ({holder_text(run_dir)}); "
                "wait for it to finish, or choose another --out"
            )
        _record_holder(handle)
        held = _HELD[key] = _Held(handle)
    held.users += 1
    return RunLock(run_dir, key, created)


def held_by_another(run_dir: Path) -> bool:
    """Whether another process holds ``run_dir``'s lock now (a writer may be mid-rename:
    readers must not "repair" what they see). False where locks cannot be probed."""
    run_dir = Path(run_dir)
    if _key(run_dir) in _HELD or fcntl is None or not (run_dir / LOCK_NAME).is_file():
        return False
    try:  # closing the probe's descriptor drops the shared lock it took
        with open(run_dir / LOCK_NAME, encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # unreadable or unlockable here: cannot tell, so not held
        return False
    return False


# ------------------------------------------------------------------------ a fresh run


def check_fresh_run_dir(run_dir: Path, *, holds_checkpoints: str | None) -> None:
    """A new run (no --resume) starts only in a missing or empty directory (the lock file
    aside): never over another run's checkpoints or logs, nor the user's own files."""
    if holds_checkpoints is not None:
        raise RunDirError(
            f"{run_dir} already holds checkpoints ({holds_checkpoints}); pass --resume to "
            "continue that run or choose another --out"
        )
    if not run_dir.is_dir():
        return
    present = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_NAME)
    if present:
        shown = ", ".join(repr(name) for name in present[:3])
        more = f" and {len(present) - 3} more" if len(present) > 3 else ""
        raise RunDirError(
            f"{run_dir}: not empty (holds {shown}{more}) and is not a run to resume; "
            "choose a new --out (or --resume a run that has checkpoints)"
        )


__all__ = [
    "LOCK_NAME",
    "RunLock",
    "check_fresh_run_dir",
    "held_by_another",
    "holder_text",
    "lock_run_dir",
    "owner_is_dead",
    "pid_alive",
    "writer_token",
]
