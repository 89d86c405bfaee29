"""Reading text and JSON at trmkit's boundaries: UTF-8, bounded size, bounded JSON.

Every file a user or another program hands to trmkit (recipes, puzzle files, ARC JSON,
manifests, training state, ``dataset.json``) is read through these helpers, so that a bad
file is one `TrmkitError` line naming the file, never a traceback:

* text must be UTF-8 (a binary file says so, with the byte offset);
* only regular files are read (a FIFO would block forever, a device never end), and a file
  larger than ``max_bytes`` is refused before it is read into memory;
* JSON nesting deeper than ``max_depth`` is refused before the parser recurses
  (CPython's ``json`` raises RecursionError at about 1,000 levels), by a linear scan whose
  memory does not grow with the text (`json_depth`);
* JSON integers must fit in 64 bits (a later ``np.array(..., int64)`` would raise
  OverflowError), and numbers must be plain (``NaN``/``Infinity`` only when allowed).

Base layer: imports nothing from trmkit except `trmkit.errors`.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from trmkit.errors import TrmkitError

MAX_TEXT_BYTES = 256 << 20
"""default cap on a file read whole (256 MiB); callers pass a smaller one where it fits."""
MAX_JSON_DEPTH = 64
"""default cap on JSON nesting (an ARC task needs 4 levels, a manifest about 6)."""
INT_LIMIT = 1 << 63
"""JSON integers must satisfy -INT_LIMIT <= v < INT_LIMIT (int64)."""

MAX_GZIP_RATIO = 100
"""a ``.gz`` file may unpack to at most 1 MiB + this many times its own size: puzzle files
compress 2 to 13 times (shared/data), a decompression bomb about 1,000 times, so a small
hostile file cannot make trmkit read gigabytes (docs/errors.md)."""

DEPTH_SCAN_CHUNK = 1 << 20
"""characters `json_depth` looks at in one numpy pass (bounds its memory)."""
_QUOTE, _BACKSLASH = 0x22, 0x5C


_FILE_SUFFIX = re.compile(
    r"[A-Za-z0-9_-]\.(txt|text|json|jsonl|csv|tsv|toml|dat|in|sdk|sud|"
    r"maze)(\.gz)?$",
    re.IGNORECASE,
)


class _Refused(ValueError):
    """Raised from inside the JSON parser's hooks (a problem, and what to do unless the file
    is simply unusable); turned into the caller's error."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.fix = fix


def is_special_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` exists but is neither a regular file nor a directory (a FIFO, socket
    or device; symlinks followed): reading it may block forever or never end, so directory
    listings of sources refuse such an entry instead of opening it."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def special_file_error(
    path: str | os.PathLike[str], error: type[TrmkitError] = TrmkitError, what: str = "file"
) -> TrmkitError:
    """The one-line error for a `is_special_file` entry where a ``what`` was expected."""
    return error(
        f"{Path(path)}: is a pipe, socket or device, not a regular file; give the {what} as a "
        "regular file"
    )


def read_bytes(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_TEXT_BYTES,
    error: type[TrmkitError] = TrmkitError,
    what: str = "file",
) -> bytes:
    """The bytes of ``path`` (gunzipped when it ends in ``.gz``), at most ``max_bytes``."""
    p = Path(path)
    try:
        if not p.exists():
            raise error(f"{p}: {what} not found")
        if p.is_dir():
            raise error(f"{p}: is a directory, expected a {what}")
        if not p.is_file():  # a FIFO would block the read forever, a device never end
            raise special_file_error(p, error, what)
        size = p.stat().st_size
        if size > max_bytes:
            raise error(f"{p}: {what} is {size} bytes, more than the {max_bytes} allowed")
        if p.name.endswith(".gz"):
            limit = min(max_bytes, gzip_unpack_limit(size))
            with gzip.open(p, "rb") as fh:
                data = fh.read(limit + 1)
            if len(data) > limit:
                raise (
                    gzip_bomb_error(p, size, error, what)
                    if limit < max_bytes
                    else error(f"{p}: {what} unpacks to more than the {max_bytes} bytes allowed")
                )
            return data
        return p.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise error(f"{p}: cannot read the {what} ({reason})") from None


def gzip_unpack_limit(packed_size: int) -> int:
    """The most bytes a ``.gz`` file of ``packed_size`` bytes may unpack to (`MAX_GZIP_RATIO`)."""
    return (1 << 20) + MAX_GZIP_RATIO * packed_size


def gzip_bomb_error(
    path: Path, packed_size: int, error: type[TrmkitError] = TrmkitError, what: str = "file"
) -> TrmkitError:
    """The one-line error for a ``.gz`` file that unpacks past `gzip_unpack_limit`."""
    return error(
        f"{path}: {what} unpacks to more than {MAX_GZIP_RATIO} times its {packed_size} bytes "
        "(a decompression bomb?); if it is genuine, unpack it and give the plain file"
    )


def decode_utf8(
    data: bytes, where: Any, *, error: type[TrmkitError] = TrmkitError, what: str = "file"
) -> str:
    """``data`` as UTF-8 text (a leading BOM is dropped); an error names ``where``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{where}: {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at "
            f"offset {exc.start}); is it a binary file?"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def read_text(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_TEXT_BYTES,
    error: type[TrmkitError] = TrmkitError,
    what: str = "file",
) -> str:
    """The UTF-8 text of ``path``: missing, unreadable, too large or binary is ``error``."""
    data = read_bytes(path, max_bytes=max_bytes, error=error, what=what)
    return decode_utf8(data, Path(path), error=error, what=what)


def _escaped_positions(arr: np.ndarray, carried: bool) -> tuple[np.ndarray, bool]:
    """Indices in ``arr`` of characters escaped by a backslash (a run of backslashes of odd
    effective length escapes the next character), and whether the character after ``arr``
    is escaped. ``carried``: the previous chunk escapes ``arr[0]``."""
    slashes = np.flatnonzero(arr == _BACKSLASH)
    n = len(arr)
    if not len(slashes):
        return (np.array([0]) if carried else np.empty(0, np.int64)), False
    breaks = np.flatnonzero(np.diff(slashes) != 1)
    starts = slashes[np.concatenate(([0], breaks + 1))]
    ends = slashes[np.concatenate((breaks, [len(slashes) - 1]))] + 1  # one past each run
    lengths = ends - starts
    if carried and starts[0] == 0:
        lengths[0] -= 1  # the first backslash is itself escaped: a literal
    odd = (lengths & 1) == 1
    targets = ends[odd]
    escaped = targets[targets < n]
    carry_out = bool(len(targets) and targets[-1] == n)
    if carried and slashes[0] != 0:
        escaped = np.concatenate(([0], escaped))
    return escaped, carry_out


def json_depth(data: bytes | str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text (strings skipped), in one linear scan
    over chunks of `DEPTH_SCAN_CHUNK` characters: memory stays a few MiB whatever the size of
    the text or of one string in it (docs/errors.md, "Resources: bounded before any
    promise")."""
    # carried from chunk to chunk: nesting now, deepest so far, whether the scan is inside a
    # string, whether the chunk's first character is escaped by a backslash
    depth = deepest = 0
    in_string = escaped = False
    view = memoryview(data) if isinstance(data, bytes) else data
    for start in range(0, len(data), DEPTH_SCAN_CHUNK):
        piece = view[start : start + DEPTH_SCAN_CHUNK]
        chunk = piece.encode("utf-8", "surrogatepass") if isinstance(piece, str) else piece
        arr = np.frombuffer(chunk, dtype=np.uint8)  # numpy passes, no per-byte Python objects
        quotes = arr == _QUOTE
        escaped_at, escaped = _escaped_positions(arr, escaped)
        quotes[escaped_at] = False  # an escaped quote neither opens nor closes a string
        brackets = np.flatnonzero((arr == 0x5B) | (arr == 0x7B) | (arr == 0x5D) | (arr == 0x7D))
        toggles = np.cumsum(quotes, dtype=np.int64)
        kept = brackets[((toggles[brackets] + in_string) & 1) == 0]  # those outside strings
        if len(kept):
            opens = (arr[kept] == 0x5B) | (arr[kept] == 0x7B)
            path = depth + np.cumsum(np.where(opens, 1, -1), dtype=np.int64)
            deepest = max(deepest, int(path.max()))
            depth = int(path[-1])
        in_string = bool((int(toggles[-1]) + in_string) & 1)
    return deepest


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > 19:
        raise _Refused(f"integer {text[:12]}... ({digits} digits) does not fit in 64 bits")
    value = int(text)
    if not -INT_LIMIT <= value < INT_LIMIT:
        raise _Refused(f"integer {value} does not fit in 64 bits")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refused(f"number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are distinct (``json`` keeps the last of two silently: an ARC
    file naming a task twice would lose one) and encodable (a ``\\ud800`` escape decodes
    to a lone surrogate, which no UTF-8 file or store can hold)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        key = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise _Refused(f"names the key {printable(repr(key))} twice in one object", "keep one")
    for key in obj:
        if not key.isascii():
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise _Refused(
                    f"holds the key {printable(ascii(key))} with a lone UTF-16 surrogate",
                    "write the character itself or a valid surrogate pair",
                ) from None
    return obj


def loads_json(
    text: str | bytes,
    where: Any,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    allow_nan: bool = False,
    error: type[TrmkitError] = TrmkitError,
    what: str = "JSON",
) -> Any:
    """Parse JSON text with bounded depth and 64-bit integers; an error names ``where``."""
    if isinstance(text, bytes):
        text = decode_utf8(text, where, error=error, what=what)
    depth = json_depth(text)
    if depth > max_depth:
        raise error(
            f"{where}: {what} is nested {depth} levels deep, more than the {max_depth} allowed"
        )
    hooks: dict[str, Any] = {
        "parse_int": _parse_int,
        "parse_float": _parse_float,
        "object_pairs_hook": _object,
    }
    if not allow_nan:
        hooks["parse_constant"] = _no_constant
    try:
        return json.loads(text, **hooks)
    except json.JSONDecodeError as exc:
        raise error(
            f"{where}: not a readable {what}: not valid JSON ({exc.msg} at "
            f"line {exc.lineno} column {exc.colno})"
        ) from None
    except _Refused as exc:
        if exc.fix:
            raise error(f"{where}: {what} {exc}; {exc.fix}") from None
        raise error(f"{where}: {what} holds an unusable number: {exc}") from None
    except (ValueError, RecursionError) as exc:  # e.g. int digit limit
        raise error(f"{where}: not usable {what} ({str(exc)[:100]})") from None


def read_json(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_TEXT_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    allow_nan: bool = False,
    error: type[TrmkitError] = TrmkitError,
    what: str = "JSON file",
) -> Any:
    """`read_text` + `loads_json` of ``path`` (``.json.gz`` is unpacked)."""
    text = read_text(path, max_bytes=max_bytes, error=error, what=what)
    return loads_json(
        text, Path(path), max_depth=max_depth, allow_nan=allow_nan, error=error, what=what
    )


def is_existing_file(text: str) -> bool:
    """Whether ``text`` names an existing file, without raising for text that cannot be a
    path (too long for the OS, NUL bytes, ...): then it is inline content."""
    if not text or "\n" in text or "\x00" in text:
        return False
    try:
        return Path(text).expanduser().is_file()
    except (OSError, ValueError):
        return False


def looks_like_path(text: str) -> bool:
    """Heuristic for an argument that is meant as a file name (one line, ends in a file
    extension or holds a path separator, and is short): used to say "file not found"
    instead of parsing a mistyped path as puzzle text."""
    text = text.strip()
    if not text or "\n" in text or len(text) > 1024 or text[0] in "[{":
        return False
    if "/" in text or "\\" in text or text.startswith("~"):
        return True
    return _FILE_SUFFIX.search(text) is not None


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: object) -> str:
    """``text`` safe to echo on one terminal line: C0/C1 control characters, DEL and the
    Unicode line/paragraph separators become backslash escapes (``\\n``, ``\\x1b``,
    ``\\u2028``), and so do lone surrogates (undecodable bytes of a file name, which a
    UTF-8 terminal cannot print); everything else, non-ASCII letters included, is kept
    (docs/errors.md, "Boundaries: plugins, sources, names")."""
    return _UNPRINTABLE.sub(_escape, str(text))


__all__ = [
    "INT_LIMIT",
    "MAX_GZIP_RATIO",
    "MAX_JSON_DEPTH",
    "MAX_TEXT_BYTES",
    "decode_utf8",
    "gzip_bomb_error",
    "gzip_unpack_limit",
    "is_existing_file",
    "is_special_file",
    "json_depth",
    "loads_json",
    "looks_like_path",
    "printable",
    "read_bytes",
    "read_json",
    "read_text",
    "special_file_error",
]
