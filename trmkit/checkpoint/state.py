"""Pickle-free serialisation of nested training state: tensors to safetensors, the rest to JSON.

Optimiser state dicts, loader positions, RNG states and the ACT carry are trees of dicts,
lists, tuples, numbers, numpy arrays and tensors (the carry may be an attrs or dataclass
object). `flatten` turns such a tree into a JSON-able skeleton plus a flat ``{key: tensor}``
map that `safetensors` can store; `unflatten` rebuilds it. Objects (attrs / dataclasses) are
rebuilt against a *template* of the same type (e.g. a fresh ``model.initial_carry(batch)``),
so loading never imports or instantiates an arbitrary class named in a file.

Why not ``torch.save``: it pickles, and a checkpoint from the internet must be safe to open.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from trmkit import atomic, textio
from trmkit.checkpoint.weights_header import check_regular, read_header
from trmkit.errors import CheckpointError, first_line

_KIND = "__kind__"


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """JSON-able skeleton of ``obj``; every tensor / array goes into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {_KIND: "tensor", "key": key}
    if isinstance(obj, np.ndarray):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {_KIND: "ndarray", "key": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"cannot serialise dict key {k!r} of type {type(k).__name__}")
            items.append([k, flatten(v, tensors, prefix)])
        return {_KIND: "dict", "items": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {_KIND: kind, "items": [flatten(v, tensors, prefix) for v in obj]}
    if attrs.has(type(obj)) or (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
        described = attrs.fields(type(obj)) if attrs.has(type(obj)) else dataclasses.fields(obj)
        fields = {f.name: flatten(getattr(obj, f.name), tensors, prefix) for f in described}
        return {_KIND: "object", "type": type(obj).__qualname__, "fields": fields}
    raise TypeError(f"cannot serialise a {type(obj).__name__} in training state")


def unflatten(tree: Any, tensors: dict[str, torch.Tensor], template: Any = None) -> Any:
    """Inverse of `flatten`. ``template`` supplies the classes of serialised objects."""
    if not isinstance(tree, dict):
        return tree
    kind = tree.get(_KIND)
    if kind in ("tensor", "ndarray"):
        key = tree.get("key")
        if not isinstance(key, str) or key not in tensors:
            raise CheckpointError(f"tensor {key!r} is not in the safetensors file")
        return tensors[key] if kind == "tensor" else tensors[key].numpy()
    if kind == "dict":
        sub = template if isinstance(template, dict) else {}
        return {k: unflatten(v, tensors, sub.get(k)) for k, v in tree["items"]}
    if kind in ("list", "tuple"):
        subs = list(template) if isinstance(template, (list, tuple)) else []
        items = [
            unflatten(v, tensors, subs[i] if i < len(subs) else None)
            for i, v in enumerate(tree["items"])
        ]
        return items if kind == "list" else tuple(items)
    if kind == "object":
        if template is None or type(template).__qualname__ != tree["type"]:
            raise CheckpointError(
                f"training state holds a {tree['type']} object but the running code has "
                f"{type(template).__name__ if template is not None else 'nothing'} there; "
                "resume with the trmkit version that wrote the checkpoint"
            )
        values = {
            name: unflatten(v, tensors, getattr(template, name, None))
            for name, v in tree["fields"].items()
        }
        if attrs.has(type(template)):
            return attrs.evolve(template, **values)
        return dataclasses.replace(template, **values)
    raise CheckpointError(f"unknown entry {kind!r} in training state")


def save_safetensors(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """safetensors' writer creates files mode 0600; a bundle's weights get the mode every
    other file the user writes gets (0644 under the usual umask), then are fsynced."""
    save_file(tensors, str(path), metadata=metadata)
    mask = os.umask(0)  # the only way to read it; restored at once
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def save_tree(obj: Any, directory: Path, name: str) -> None:
    """Write ``name.json`` + ``name.safetensors`` (both fsynced) into ``directory``."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(obj, tensors)
    save_safetensors(tensors, directory / f"{name}.safetensors")
    atomic.write_text(directory / f"{name}.json", json.dumps(skeleton, indent=1))


def load_tree(directory: Path, name: str, template: Any = None) -> Any:
    """Read back a `save_tree`; a malformed skeleton (wrong types, unknown keys, a tensor
    key the safetensors file lacks) is a CheckpointError naming the JSON file."""
    file = directory / f"{name}.json"
    skeleton = read_json(file)
    tensors = read_safetensors(directory / f"{name}.safetensors")
    try:
        tree = unflatten(skeleton, tensors, template)
    except CheckpointError as exc:
        raise CheckpointError(f"{file}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise CheckpointError(
            f"{file}: malformed training state ({type(exc).__name__}: "
            f"{str(exc)[:80]}); the checkpoint is damaged"
        ) from None
    check_state(tree, name, file)
    return tree


def _is_int(value: Any, lo: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= lo


def check_state(tree: Any, name: str, file: Path) -> None:
    """The top-level fields the trainer reads from ``train_state`` / ``rank_<r>`` have the
    types it needs (a hand-edited or damaged file is one line, not a traceback later)."""

    def bad(field: str, expected: str) -> CheckpointError:
        shown = repr(tree.get(field) if isinstance(tree, dict) else tree)[:40]
        return CheckpointError(
            f"{file}: field {field} is {shown}, expected {expected}; the "
            "checkpoint is damaged or was edited"
        )

    if name == "train_state":
        if not isinstance(tree, dict):
            raise bad("(top level)", "an object")
        for field, lo in (("step", 0), ("total_steps", 0), ("world_size", 1)):
            if not _is_int(tree.get(field), lo):
                raise bad(field, f"an integer >= {lo}")
        optimizers = tree.get("optimizers")
        if not isinstance(optimizers, list) or not all(
            isinstance(o, dict)
            and isinstance(o.get("state"), dict)
            and isinstance(o.get("param_groups"), list)
            and all(isinstance(g, dict) for g in o["param_groups"])
            for o in optimizers
        ):
            raise bad("optimizers", "a list of optimiser state dicts (state, param_groups)")
        if not isinstance(tree.get("last_eval", {}), dict):
            raise bad("last_eval", "an object")
    elif name.startswith("rank_"):
        if not isinstance(tree, dict):
            raise bad("(top level)", "an object")
        if not _is_int(tree.get("step"), 0):
            raise bad("step", "an integer >= 0")
        loader = tree.get("loader")
        if not isinstance(loader, dict):
            raise bad("loader", "an object (the loader position)")
        for field in ("iteration", "epoch", "skip"):
            if not _is_int(loader.get(field), 0):
                raise bad("loader", f"an object whose {field} is an integer >= 0")
        carry = loader.get("carry")
        if not isinstance(carry, list) or not all(_is_int(v, 0) for v in carry):
            raise bad("loader", "an object whose carry is a list of row numbers")
        if "rng" not in tree or "carry" not in tree:
            raise bad("rng" if "rng" not in tree else "carry", "present")


def read_safetensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or corrupt file, or one whose header
    names a tensor twice (`trmkit.checkpoint.weights_header`), is a CheckpointError."""
    read_header(path)
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: corrupt or truncated safetensors file ({first_line(exc, 10_000)})"
        ) from exc


MAX_JSON_BYTES = 256 << 20
"""a manifest or state JSON file larger than this (256 MiB) is refused unread."""
MAX_STATE_DEPTH = 512
"""state skeletons nest 3 JSON levels per container level (optimiser state: about 20)."""


def read_json(path: Path, max_depth: int = MAX_STATE_DEPTH) -> Any:
    """A checkpoint JSON file (UTF-8, bounded size/depth/integers: `trmkit.textio`);
    every problem a CheckpointError naming the file."""
    check_regular(path)
    return textio.read_json(
        path,
        max_bytes=MAX_JSON_BYTES,
        max_depth=max_depth,
        allow_nan=True,
        error=CheckpointError,
        what="checkpoint JSON file",
    )
