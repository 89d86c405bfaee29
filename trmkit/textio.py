"""Reading text and JSON at trmkit's boundaries: UTF-8, bounded size, bounded JSON.

Every file a user or another program hands to trmkit (recipes, puzzle files, ARC JSON,
manifests, training state, ``dataset.json``) is read through these helpers, so that a bad
file is one `TrmkitError` line naming the file, never a traceback:

* text must be UTF-8 (a binary file says so, with the byte offset);
* a file larger than ``max_bytes`` is refused before it is read into memory;
* JSON nesting deeper than ``max_depth`` is refused before the parser recurses
  (CPython's ``json`` raises RecursionError at about 1,000 levels);
* JSON integers must fit in 64 bits (a later ``np.array(..., int64)`` would raise
  OverflowError), and numbers must be plain (``NaN``/``Infinity`` only when allowed).

Base layer: imports nothing from trmkit except `trmkit.errors`.
"""

from __future__ import annotations

import gzip
import json
import os
import re
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

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


_FILE_SUFFIX = re.compile(
    r"[A-Za-z0-9_-]\.(txt|text|json|jsonl|csv|tsv|toml|dat|in|sdk|sud|"
    r"maze)(\.gz)?$",
    re.IGNORECASE,
)


class _Refused(ValueError):
    """Raised from inside the JSON parser's hooks; turned into the caller's error."""


def _fail(error: type[TrmkitError], where: Any, problem: str) -> TrmkitError:
    return error(f"{where}: {problem}")


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
            raise _fail(error, p, f"{what} not found")
        if p.is_dir():
            raise _fail(error, p, f"is a directory, expected a {what}")
        size = p.stat().st_size
        if size > max_bytes:
            raise _fail(error, p, f"{what} is {size} bytes, more than the {max_bytes} allowed")
        if p.name.endswith(".gz"):
            with gzip.open(p, "rb") as fh:
                data = fh.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise _fail(error, p, f"{what} unpacks to more than the {max_bytes} bytes allowed")
            return data
        return p.read_bytes()
    except TrmkitError:
        raise
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise _fail(error, p, f"cannot read the {what} ({reason})") from None


def decode_utf8(
    data: bytes, where: Any, *, error: type[TrmkitError] = TrmkitError, what: str = "file"
) -> str:
    """``data`` as UTF-8 text (a leading BOM is dropped); an error names ``where``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(
            error,
            where,
            f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at "
            f"offset {exc.start}); is it a binary file?",
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


def json_depth(data: bytes | str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text (strings skipped)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if not any(b in raw for b in (b"[", b"{")):
        return 0
    stripped = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    steps = np.frombuffer(stripped, dtype=np.uint8)
    if not len(steps):
        return 0
    depth = np.cumsum(np.where((steps == 0x5B) | (steps == 0x7B), 1, -1), dtype=np.int64)
    return int(depth.max(initial=0))


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
        raise _fail(
            error, where, f"{what} is nested {depth} levels deep, more than the {max_depth} allowed"
        )
    hooks: dict[str, Any] = {"parse_int": _parse_int, "parse_float": _parse_float}
    if not allow_nan:
        hooks["parse_constant"] = _no_constant
    try:
        return json.loads(text, **hooks)
    except json.JSONDecodeError as exc:
        raise _fail(
            error,
            where,
            f"not a readable {what}: not valid JSON ({exc.msg} at "
            f"line {exc.lineno} column {exc.colno})",
        ) from None
    except _Refused as exc:
        raise _fail(error, where, f"{what} holds an unusable number: {exc}") from None
    except (ValueError, RecursionError) as exc:  # e.g. int digit limit
        raise _fail(error, where, f"not usable {what} ({str(exc)[:100]})") from None


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
    "MAX_JSON_DEPTH",
    "MAX_TEXT_BYTES",
    "decode_utf8",
    "is_existing_file",
    "json_depth",
    "loads_json",
    "looks_like_path",
    "printable",
    "read_bytes",
    "read_json",
    "read_text",
]
