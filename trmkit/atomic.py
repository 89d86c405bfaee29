"""Atomic writes and replacements: a kill at any moment leaves the old or the new artefact.

* `write_text` / `write_bytes`: write a sibling temporary file, fsync it, ``os.replace`` it
  over the target, fsync the directory. A reader sees the old file or the new one.
* `replace_dir`: put a finished directory ``src`` at ``dst``. POSIX cannot swap two
  directories in one call, so an existing ``dst`` is first renamed to a backup sibling,
  then ``src`` renamed to ``dst``, then the backup deleted. A kill between the two renames
  leaves no ``dst`` but a complete backup; `recover_dir` (called by every reader before it
  opens ``dst``) renames the backup back. A leftover backup next to a present ``dst`` is
  the old copy whose deletion was interrupted and is removed.

Base layer: imports nothing from trmkit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

BACKUP_MARK = ".old-"
TMP_MARK = ".tmp-"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (the owner of a temporary is alive)."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside ``path`` durable (best effort: not every OS/filesystem can)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (temporary sibling + fsync + rename)."""
    target = Path(path)
    tmp = target.with_name(f"{TMP_MARK}{target.name}-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (None, os.fspath(tmp)):
            # a full disk shows at write/flush/fsync, where Python names no file: name the
            # artefact (not its temporary) so the CLI's line says what could not be written
            exc.filename = os.fspath(target)
        raise
    fsync_dir(target.parent)
    return target


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Replace ``path`` with UTF-8 ``text`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def backup_path(dst: str | os.PathLike[str]) -> Path:
    """Where `replace_dir` keeps the old ``dst`` while it swaps (one fixed name per target,
    so a later process can find and recover it)."""
    d = Path(dst)
    return d.with_name(f"{BACKUP_MARK}{d.name}")


def recover_dir(dst: str | os.PathLike[str]) -> bool:
    """Finish or undo a `replace_dir` that was killed: restore the backup when ``dst`` is
    missing, drop it when ``dst`` is there. Returns True if the backup was restored."""
    d = Path(dst)
    old = backup_path(d)
    if not old.exists():
        return False
    if d.exists():
        shutil.rmtree(old, ignore_errors=True)
        return False
    os.replace(old, d)
    fsync_dir(d.parent)
    return True


def try_recover_dir(dst: str | os.PathLike[str]) -> bool:
    """`recover_dir` for readers: a directory they may not write to is left as it is."""
    with contextlib.suppress(OSError):
        return recover_dir(dst)
    return False


def replace_dir(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Move the complete directory ``src`` to ``dst``, replacing what is there; at every
    moment either ``dst`` or its backup (`recover_dir`) is a complete directory."""
    s, d = Path(src), Path(dst)
    recover_dir(d)
    old = backup_path(d)
    if d.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(d, old)
        fsync_dir(d.parent)
    os.replace(s, d)
    fsync_dir(d.parent)
    shutil.rmtree(old, ignore_errors=True)
    return d


__all__ = [
    "BACKUP_MARK",
    "TMP_MARK",
    "backup_path",
    "fsync_dir",
    "recover_dir",
    "replace_dir",
    "try_recover_dir",
    "write_bytes",
    "write_text",
]
