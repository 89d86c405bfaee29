"""The memory this process may really use (base layer: imports nothing from trmkit).

The host's ``MemAvailable`` is not the whole story in a container: a cgroup limit kills the
process (OOM) long before the host runs short, without a word. `available_memory` is
therefore the smallest of (docs/errors.md, "Resources: bounded before any promise"):

* the host's available memory (psutil, else ``/proc/meminfo`` MemAvailable);
* cgroup v2: ``memory.max - memory.current`` of this process's cgroup and of each of its
  ancestors (a parent's limit binds its children too);
* cgroup v1: ``memory.limit_in_bytes - memory.usage_in_bytes`` of the memory controller's
  cgroup and its ancestors (a limit near 2**63 means "no limit").

Every file is read defensively: a missing, unreadable or malformed file is "unknown", never
an error. The readers take their roots as arguments so that tests hand them fake trees.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import attrs

UNLIMITED = 1 << 60
"""a cgroup limit at or above this (v1 writes 2**63 - 4096 for "none") is no limit."""


@attrs.frozen
class MemorySources:
    """Where the readers look (the real system by default; fake trees in tests)."""

    meminfo: Path = Path("/proc/meminfo")
    proc_cgroup: Path = Path("/proc/self/cgroup")
    cgroup_root: Path = Path("/sys/fs/cgroup")
    use_psutil: bool = True


def _read_int(path: Path) -> int | None:
    """A file holding one non-negative integer (``max`` and anything else: None)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except (OSError, ValueError):
        return None
    if not text.isdigit() or len(text) > 24:
        return None
    return int(text)


def host_available(sources: MemorySources = MemorySources()) -> int | None:
    """Bytes the host has available (psutil when installed and allowed, else MemAvailable)."""
    if sources.use_psutil:
        # psutil is optional; without it, or when it fails, /proc/meminfo answers
        with contextlib.suppress(ImportError, OSError, RuntimeError, ValueError):
            import psutil

            return int(psutil.virtual_memory().available)
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in sources.meminfo.read_text(errors="replace").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def cgroup_paths(proc_cgroup: Path) -> dict[str, str]:
    """``{"v2": path, "v1": path}`` of this process's cgroups (the memory controller's for
    v1) from ``/proc/self/cgroup`` lines ``ID:CONTROLLERS:PATH``; missing keys: unknown."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):  # unreadable: nothing known
        for line in proc_cgroup.read_text(errors="replace").splitlines():
            parts = line.split(":", 2)
            if len(parts) != 3 or not parts[2].startswith("/"):
                continue
            hierarchy, controllers, path = parts
            if hierarchy == "0" and controllers == "":
                found["v2"] = path
            elif "memory" in controllers.split(","):
                found["v1"] = path
    return found


def _dirs_up(base: Path, path: str) -> Iterator[Path]:
    """``base/path`` and each ancestor up to ``base`` itself (only those that exist)."""
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    for n in range(len(parts), -1, -1):
        d = base.joinpath(*parts[:n])
        if d.is_dir():
            yield d


def _headroom(limit: int | None, used: int | None) -> int | None:
    if limit is None or limit >= UNLIMITED:
        return None
    return max(0, limit - (used or 0))


def cgroup_available(sources: MemorySources = MemorySources()) -> int | None:
    """The tightest ``limit - usage`` over this process's cgroup and its ancestors (v2, then
    v1 under ``memory/``); None when no limit is set or nothing could be read."""
    paths = cgroup_paths(sources.proc_cgroup)
    root = sources.cgroup_root
    layouts = (  # (cgroup version, roots of its tree, limit file, usage file)
        ("v2", (root, root / "unified"), "memory.max", "memory.current"),
        ("v1", (root / "memory",), "memory.limit_in_bytes", "memory.usage_in_bytes"),
    )
    room = [
        r
        for version, bases, limit, usage in layouts
        if version in paths
        for base in bases
        for d in _dirs_up(base, paths[version])
        if (r := _headroom(_read_int(d / limit), _read_int(d / usage))) is not None
    ]
    return min(room, default=None)


def available_memory(sources: MemorySources = MemorySources()) -> int | None:
    """min(host available, cgroup headroom): what a new allocation may really use (None:
    unknown, no memory check)."""
    known = [v for v in (host_available(sources), cgroup_available(sources)) if v is not None]
    return min(known) if known else None


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


__all__ = [
    "MemorySources",
    "available_memory",
    "cgroup_available",
    "cgroup_paths",
    "gib",
    "host_available",
]
