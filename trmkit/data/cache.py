"""The dataset cache: a recipe's ``[data]`` section built once into a content-addressed store.

``$TRMKIT_CACHE/datasets/<task>-<hash>`` (default ``~/.cache/trmkit/datasets``); the hash
covers everything that determines the built data (task name and version; the source: a
name of the task's ``sources`` as given, a local file or directory by the *bytes* of its
files; num_aug, subsample, seed, strict, options), so another setting or an edited source
file is another dataset and an unchanged recipe reuses its store. The local source is
hashed on every run (about a second per GB): an mtime can stay while content changes
(a copy with ``cp -p``, a file edited inside a directory leaves the directory's mtime).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trmkit.config import DataSection
from trmkit.task import Task, written_as_path

if TYPE_CHECKING:
    from accelerate import Accelerator


def cache_root() -> Path:
    """``$TRMKIT_CACHE/datasets`` or ``~/.cache/trmkit/datasets``."""
    base = os.environ.get("TRMKIT_CACHE")
    root = Path(base).expanduser() if base else Path("~/.cache/trmkit").expanduser()
    return root / "datasets"


CHUNK = 1 << 20


def source_digest(path: Path) -> str:
    """sha256 over the files of a local source: a file's bytes, or for a directory every
    regular file below it (hidden names such as ``.git`` skipped) as its relative path and
    bytes, in sorted order. Independent of where the source lies and of its timestamps."""
    digest = hashlib.sha256()
    if path.is_file():
        files = [(path.name, path)]
    else:
        files = sorted(
            (f.relative_to(path).as_posix(), f)
            for f in path.rglob("*")
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts)
        )
    for rel, file in files:
        name = rel.encode()
        digest.update(len(name).to_bytes(8, "little") + name)
        digest.update(file.stat().st_size.to_bytes(8, "little"))
        with open(file, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def dataset_key(task: Task, data: DataSection) -> str:
    """Content hash of everything that determines a built dataset: every ``[data]`` field,
    the task's name and version, a local source by its files' content."""
    source_id: Any = data.source
    if data.source and (written_as_path(data.source) or data.source not in task.sources):
        p = Path(data.source).expanduser()
        if p.exists():  # a local file/dir: its identity is its content
            source_id = {"sha256": source_digest(p), "kind": "file" if p.is_file() else "dir"}
    payload = {
        **attrs.asdict(data),
        "task": task.name,
        "version": task.version,
        "source": source_id,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode())
    return f"{task.name}-{digest.hexdigest()[:16]}"


def cached_dataset_path(task: Task, data: DataSection) -> Path:
    return cache_root() / dataset_key(task, data)


def is_built(path: Path) -> bool:
    return (path / "zarr.json").is_file()


def build_cached(task: Task, data: DataSection, path: Path, progress: bool = True) -> Path:
    """Build the recipe's dataset into ``path`` (replacing a half-built one); the ``[data]``
    fields besides ``task`` are `build_dataset`'s options of the same names."""
    from trmkit.data.build import build_dataset

    options = attrs.asdict(data, filter=lambda field, _: field.name != "task")
    build_dataset(task, path, **options, force=True, progress=progress)
    return path


def prepare_dataset(
    task: Task, data: DataSection, accelerator: Accelerator, progress: bool = True
) -> Path:
    """The recipe's dataset from the cache, built on first use by the main process while
    the others wait (they all read the same path afterwards)."""
    path = cached_dataset_path(task, data)
    with accelerator.main_process_first():
        if accelerator.is_main_process and not is_built(path):
            accelerator.print(f"building dataset {path.name} (cached for later runs)")
            build_cached(task, data, path, progress=progress)
    return path


__all__ = [
    "build_cached",
    "cache_root",
    "cached_dataset_path",
    "dataset_key",
    "is_built",
    "prepare_dataset",
    "source_digest",
]
