"""The header of a safetensors file, read and checked without trusting the file.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
(``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}``), then the tensor data.
The safetensors loader silently keeps one of two entries with the same name, so a bundle's
weights are read here first (docs/errors.md, "Bundles: the manifest is the truth"): N is
bounded and checked against the file size, the JSON depth is bounded before parsing, a
duplicated key is refused, and every entry must be typed and point inside the data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import torch

from trmkit.errors import CheckpointError
from trmkit.textio import json_depth

MAX_HEADER_BYTES = 16 << 20
"""limit on the header (16 MiB): about 100 bytes per tensor, so room for ~150,000 tensors,
far more than any model trmkit builds has; the safetensors library's own limit (100 MB)
let a hostile header of a million fake entries cost half a minute and a GB to refuse."""
MAX_HEADER_DEPTH = 4
"""a header nests 3 levels (``{name: {"shape": [...]}}``)."""

DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
"""torch dtype -> the name a safetensors header gives it."""


def dtype_name(dtype: torch.dtype) -> str:
    """The safetensors name of ``dtype`` (its torch name for dtypes not listed here)."""
    return DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


@attrs.frozen
class TensorInfo:
    """One tensor as the header describes it."""

    dtype: str
    shape: tuple[int, ...]


class _Duplicate(ValueError):
    """A JSON object with the same key twice (raised from the parser's hook)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _fail(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: corrupt or truncated safetensors file ({problem}); the file is damaged or "
        "was edited"
    )


def check_regular(path: Path) -> None:
    """``path`` must be a regular file (or a link to one): a missing one is "missing", a
    directory, pipe or device one CheckpointError saying so (a pipe is never opened)."""
    if not path.is_file():
        if path.exists():
            raise CheckpointError(
                f"{path}: not a regular file (a directory, pipe or device); the checkpoint is "
                "damaged: put the file back"
            )
        raise CheckpointError(f"{path}: missing; the checkpoint is incomplete")


def read_header(path: Path) -> dict[str, TensorInfo]:
    """``{name: TensorInfo}`` of the safetensors file ``path``; a missing file, a header
    that is too long, longer than the file, not JSON, nested, with a duplicated key or with
    an untyped entry is one CheckpointError naming the file."""
    check_regular(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise _fail(path, f"{size} bytes, shorter than a header")
            length = int.from_bytes(prefix, "little")
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise _fail(
                    path,
                    f"header length {length} exceeds the file ({size} bytes) or the "
                    f"{MAX_HEADER_BYTES} allowed",
                )
            raw = fh.read(length)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return _entries(path, _parse(path, raw), size - 8 - length)


def _parse(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "header is not UTF-8 JSON") from None
    depth = json_depth(text)
    if depth > MAX_HEADER_DEPTH:
        raise _fail(path, f"header nested {depth} levels deep")
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except _Duplicate as exc:
        raise _fail(path, f"header names tensor {str(exc)[:80]!r} twice") from None
    except (ValueError, RecursionError) as exc:
        raise _fail(path, f"header is not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(header, dict):
        raise _fail(path, "header is not a JSON object")
    return header


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entries(path: Path, header: dict[str, Any], data_bytes: int) -> dict[str, TensorInfo]:
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shown = repr(name[:80])
        if not isinstance(entry, dict):
            raise _fail(path, f"entry {shown} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str):
            raise _fail(path, f"tensor {shown} has no dtype")
        if not isinstance(shape, list) or not all(_is_index(n) for n in shape):
            raise _fail(path, f"tensor {shown} has no shape (a list of sizes >= 0)")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_index(n) for n in offsets)
            or not offsets[0] <= offsets[1] <= data_bytes
        ):
            raise _fail(path, f"tensor {shown} has data offsets outside the file")
        out[name] = TensorInfo(dtype=dtype, shape=tuple(shape))
    return out


__all__ = [
    "DTYPE_NAMES",
    "MAX_HEADER_BYTES",
    "TensorInfo",
    "check_regular",
    "dtype_name",
    "read_header",
]
