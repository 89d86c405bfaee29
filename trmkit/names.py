"""File names made from ids and names that trmkit does not control (puzzle ids, task and
recipe names): `safe_file_name` turns any string into a name every file system accepts.

Rules (docs/errors.md, "Boundaries: plugins, sources, names"):

* a name made only of ``[A-Za-z0-9._-]``, not starting with ``.``, at most ``max_chars``
  long and not ending like a hashed name (below) is used as it is;
* any other name (a ``/``, a space, non-ASCII, control characters, a leading dot, empty,
  too long) keeps its allowed characters (others become ``_``), is cut to fit, and gets
  ``-`` plus 12 hex digits of the SHA-256 of the whole name appended.

So two distinct ids never share a file name (names used as they are never end in a hash
suffix, hashed names always do), and nothing is refused. Base layer: imports nothing
from trmkit.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME_CHARS = 120
"""default bound on a made file name (callers add a prefix/suffix; the OS allows 255 bytes)."""
HASH_CHARS = 12

_ALLOWED = re.compile(r"[A-Za-z0-9._-]+")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9._-]")
_HASHED = re.compile(rf"-[0-9a-f]{{{HASH_CHARS}}}$")


def safe_file_name(name: str, *, max_chars: int = MAX_NAME_CHARS) -> str:
    """A file name (ASCII, at most ``max_chars`` characters, no separator, not hidden)
    for ``name``: unchanged when already safe, else cleaned and suffixed with a hash of
    ``name`` so that distinct names stay distinct."""
    if max_chars < HASH_CHARS + 2:
        raise ValueError(f"max_chars {max_chars} leaves no room for the hash suffix")
    if (
        _ALLOWED.fullmatch(name)
        and not name.startswith(".")
        and len(name) <= max_chars
        and not _HASHED.search(name)
    ):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    stem = _NOT_ALLOWED.sub("_", name).lstrip(".")[: max_chars - HASH_CHARS - 1]
    return f"{stem}-{digest}" if stem else f"_-{digest}"


__all__ = ["MAX_NAME_CHARS", "safe_file_name"]
