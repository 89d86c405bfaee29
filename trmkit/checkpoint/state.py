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

from trmkit.errors import CheckpointError

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
    if attrs.has(type(obj)):
        fields = {f.name: flatten(getattr(obj, f.name), tensors, prefix)
                  for f in attrs.fields(type(obj))}
        return {_KIND: "object", "type": type(obj).__qualname__, "fields": fields}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: flatten(getattr(obj, f.name), tensors, prefix)
                  for f in dataclasses.fields(obj)}
        return {_KIND: "object", "type": type(obj).__qualname__, "fields": fields}
    raise TypeError(f"cannot serialise a {type(obj).__name__} in training state")


def unflatten(tree: Any, tensors: dict[str, torch.Tensor], template: Any = None) -> Any:
    """Inverse of `flatten`. ``template`` supplies the classes of serialised objects."""
    if not isinstance(tree, dict):
        return tree
    kind = tree.get(_KIND)
    if kind == "tensor":
        return tensors[tree["key"]]
    if kind == "ndarray":
        return tensors[tree["key"]].numpy()
    if kind == "dict":
        sub = template if isinstance(template, dict) else {}
        return {k: unflatten(v, tensors, sub.get(k)) for k, v in tree["items"]}
    if kind in ("list", "tuple"):
        subs = list(template) if isinstance(template, (list, tuple)) else []
        items = [unflatten(v, tensors, subs[i] if i < len(subs) else None)
                 for i, v in enumerate(tree["items"])]
        return items if kind == "list" else tuple(items)
    if kind == "object":
        if template is None or type(template).__qualname__ != tree["type"]:
            raise CheckpointError(
                f"training state holds a {tree['type']} object but the running code has "
                f"{type(template).__name__ if template is not None else 'nothing'} there; "
                "resume with the trmkit version that wrote the checkpoint"
            )
        values = {name: unflatten(v, tensors, getattr(template, name, None))
                  for name, v in tree["fields"].items()}
        if attrs.has(type(template)):
            return attrs.evolve(template, **values)
        return dataclasses.replace(template, **values)
    raise CheckpointError(f"unknown entry {kind!r} in training state")


def save_tree(obj: Any, directory: Path, name: str) -> None:
    """Write ``name.json`` + ``name.safetensors`` (both fsynced) into ``directory``."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(obj, tensors)
    save_file(tensors, str(directory / f"{name}.safetensors"))
    write_json(directory / f"{name}.json", skeleton)
    fsync_file(directory / f"{name}.safetensors")


def load_tree(directory: Path, name: str, template: Any = None) -> Any:
    skeleton = read_json(directory / f"{name}.json")
    tensors = read_safetensors(directory / f"{name}.safetensors")
    return unflatten(skeleton, tensors, template)


def read_safetensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or corrupt file is a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; the checkpoint is incomplete")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({first})") from exc


def write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, allow_nan=True)
        fh.flush()
        os.fsync(fh.fileno())


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; the checkpoint is incomplete")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})"
                              ) from exc


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
