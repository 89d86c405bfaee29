"""The dataset store: one Zarr v3 group per split under a root group, written atomically.

Layout of ``DIR`` (a Zarr v3 hierarchy)::

    DIR/zarr.json                 root group: provenance attributes + "complete": true
    DIR/identifier_names{,_offsets}   puzzle-identifier names (index = id, 0 = "<blank>")
    DIR/<split>/zarr.json         split group: SplitMeta attributes
    DIR/<split>/inputs, labels    uint8 [examples, seq_len], chunked ~1 MiB along rows, zstd
    DIR/<split>/puzzle_identifiers  int32 [puzzles]
    DIR/<split>/puzzle_indices    int32 [puzzles + 1], starts at 0
    DIR/<split>/group_indices     int32 [groups + 1], starts at 0
    DIR/<split>/transforms        int32 [puzzles, transform_size] (the augmentation of each
                                  puzzle, so evaluation can invert it)
    DIR/<split>/group_names{,_offsets}  one name per group (UTF-8 bytes + int64 offsets)

Strings are stored as a byte array plus offsets rather than in attributes because the
Sudoku test split has 422,786 groups: attributes are parsed on every open.

Atomicity: everything is written under a sibling ``DIR.tmp-<pid>``; the root attribute
``complete`` is written last and the directory renamed into place only then, so a build
killed at any point leaves nothing that `open_store` accepts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import zarr
from zarr.codecs import ZstdCodec
from zarr.core.array_spec import ArrayConfigParams

from trmkit import __version__, atomic
from trmkit.errors import StoreError
from trmkit.oserrors import (
    WriteError,
    check_writable_dir,
    describe_os_error,
    find_os_error,
    writing,
)

FORMAT_VERSION = 1
"""Bump when the layout changes; stores of another version are refused."""

FORMAT_KEY = "trmkit_format"
SPLITS = ("train", "test")
CHUNK_BYTES = 1 << 20
SHARD_CHUNKS = 32
"""Chunks per shard along the example axis: ~32 MiB files instead of thousands of 1 MiB."""
ZSTD_LEVEL = 3

# Every chunk is written, even one equal to the fill value, so that a chunk or shard file
# missing on disk is damage (reported) rather than zeros (zarr reads absent chunks as the
# fill value). Stores record it in the root attribute EVERY_CHUNK_KEY.
_ARRAY_CONFIG: ArrayConfigParams = {"order": "C", "write_empty_chunks": True}  # C: the default
EVERY_CHUNK_KEY = "every_chunk_written"
BUILD_ID_KEY = "build_id"
"""A random id per build, on the root and on every split (`open_store` compares them)."""
CONTENT_KEY = "content_sha256"
"""root attribute: sha256 of every split's rows and index arrays, in split order; a
checkpoint's manifest records it, so eval and --resume know the store they trained on
(docs/errors.md, "Run directories: one writer, the right data")."""


@attrs.frozen
class SplitMeta:
    """The attributes of one split (the reference's dataset.json plus trmkit extras)."""

    seq_len: int
    vocab_size: int
    pad_id: int
    ignore_label_id: int
    blank_identifier_id: int
    num_puzzle_identifiers: int
    total_groups: int
    total_puzzles: int
    total_examples: int
    mean_puzzle_examples: float
    transform_size: int

    @classmethod
    def from_attrs(cls, values: Mapping[str, Any], where: str) -> SplitMeta:
        names = [field.name for field in attrs.fields(cls)]
        missing = [name for name in names if name not in values]
        if missing:
            raise StoreError(f"{where}: split attributes lack {', '.join(missing)}; rebuild it")
        for name in names:
            kind = expected_count(name, values[name])
            if kind:
                raise StoreError(
                    f"{where}: split attribute {name} is {values[name]!r}, expected "
                    f"{kind}; the store is damaged, rebuild it"
                )
        return cls(**{name: values[name] for name in names})


def expected_count(name: str, value: Any) -> str | None:
    """None when ``value`` suits the `SplitMeta` field ``name`` (an int >= 0; for the one
    float field, mean_puzzle_examples, a finite number >= 0), else what it should be."""
    real = name == "mean_puzzle_examples"
    ok = isinstance(value, (int, float) if real else int) and not isinstance(value, bool)
    if ok and 0 <= value < float("inf"):
        return None
    return "a finite number >= 0" if real else "an integer >= 0"


# --------------------------------------------------------------------------- strings


def _write_array(group: zarr.Group, key: str, data: np.ndarray) -> None:
    """``data`` as ``group[key]``, chunked ~`CHUNK_BYTES` along its first axis."""
    row_bytes = data.itemsize * int(np.prod(data.shape[1:], dtype=np.int64))
    chunks = (max(1, CHUNK_BYTES // row_bytes), *data.shape[1:])
    compressor = ZstdCodec(level=ZSTD_LEVEL)
    group.create_array(key, data=data, chunks=chunks, compressors=compressor, config=_ARRAY_CONFIG)


def _write_strings(group: zarr.Group, name: str, strings: Sequence[str]) -> None:
    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    _write_array(group, name, np.frombuffer(b"".join(encoded), dtype=np.uint8))
    _write_array(group, f"{name}_offsets", offsets)


def member_array(group: zarr.Group, name: str) -> zarr.Array:
    """``group[name]`` as an array (a group member of the wrong kind is a damaged store)."""
    member = group[name]
    if not isinstance(member, zarr.Array):
        raise StoreError(f"{group.store_path}/{name} is a group, expected an array")
    return member


def _read_strings(group: zarr.Group, name: str) -> list[str]:
    data = np.asarray(member_array(group, name)[:], dtype=np.uint8).tobytes()
    offsets = np.asarray(member_array(group, f"{name}_offsets")[:])
    return [data[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


# --------------------------------------------------------------------------- writing


class SplitWriter:
    """Appends whole groups to one split; rows are buffered and written shard-aligned, so
    memory stays at about one shard per array however large the split grows."""

    def __init__(self, group: zarr.Group, *, seq_len: int, transform_size: int) -> None:
        self.group = group
        self.seq_len = seq_len
        self.transform_size = transform_size
        self.chunk_rows = max(1, CHUNK_BYTES // seq_len)
        self.shard_rows = self.chunk_rows * SHARD_CHUNKS
        self._arrays = {
            key: group.create_array(
                key,
                shape=(0, seq_len),
                dtype="uint8",
                chunks=(self.chunk_rows, seq_len),
                shards=(self.shard_rows, seq_len),
                compressors=ZstdCodec(level=ZSTD_LEVEL),
                dimension_names=("example", "token"),
                config=_ARRAY_CONFIG,
            )
            for key in ("inputs", "labels")
        }
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        self.rows_written = 0
        # each starts with an empty piece, so `finish` concatenates an empty split too
        self._puzzle_sizes = [np.zeros(0, np.int64)]
        self._puzzle_ids = [np.zeros(0, np.int64)]
        self._transforms = [np.zeros((0, transform_size), np.int32)]
        self._group_sizes = [np.zeros(0, np.int64)]
        self.group_names: list[str] = []
        self.digest = hashlib.sha256()
        """of the rows as written, then the index arrays (`CONTENT_KEY`)."""

    def append(
        self,
        inputs: np.ndarray,
        labels: np.ndarray,
        *,
        puzzle_sizes: np.ndarray,
        puzzle_ids: np.ndarray,
        transforms: np.ndarray,
        group_sizes: np.ndarray,
        group_names: Sequence[str],
    ) -> None:
        """Add whole groups: rows of all their puzzles, puzzles of all the groups, in order."""
        puzzle_sizes = np.asarray(puzzle_sizes, dtype=np.int64)
        group_sizes = np.asarray(group_sizes, dtype=np.int64)
        transforms = np.asarray(transforms).reshape(len(puzzle_sizes), self.transform_size)
        if inputs.shape != labels.shape or inputs.shape[1:] != (self.seq_len,):
            raise ValueError(f"rows of shape {inputs.shape}/{labels.shape}, need [n, seq_len]")
        if int(puzzle_sizes.sum()) != len(inputs) or int(group_sizes.sum()) != len(puzzle_sizes):
            raise ValueError("puzzle/group sizes do not add up to the rows/puzzles given")
        if len(group_names) != len(group_sizes):
            raise ValueError("one name per group is required")
        self._puzzle_sizes.append(puzzle_sizes)
        self._puzzle_ids.append(np.asarray(puzzle_ids, dtype=np.int64).reshape(-1))
        self._transforms.append(transforms.astype(np.int32, copy=False))
        self._group_sizes.append(group_sizes)
        self.group_names.extend(group_names)
        if len(inputs):
            self._pending.append((inputs.astype(np.uint8, copy=False), labels.astype(np.uint8)))
            self._pending_rows += len(inputs)
        if self._pending_rows >= self.shard_rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._pending:
            return
        inputs, labels = (np.concatenate(part) for part in zip(*self._pending, strict=True))
        take = len(inputs) if final else (len(inputs) // self.shard_rows) * self.shard_rows
        start, stop = self.rows_written, self.rows_written + take
        for key, data in (("inputs", inputs), ("labels", labels)):
            self.digest.update(np.ascontiguousarray(data[:take]).tobytes())
            array = self._arrays[key]
            array.resize((stop, self.seq_len))
            array[start:stop] = data[:take]
        self.rows_written = stop
        rest = len(inputs) - take
        self._pending = [(inputs[take:].copy(), labels[take:].copy())] if rest else []
        self._pending_rows = rest

    def finish(self, common: Mapping[str, Any]) -> SplitMeta:
        """Write the remaining rows, the index arrays, the names and the split attributes.

        ``common`` holds vocab_size, pad_id, ignore_label_id, blank_identifier_id and
        num_puzzle_identifiers (the same for every split)."""
        self._flush(final=True)
        sizes = np.concatenate(self._puzzle_sizes)
        groups = np.concatenate(self._group_sizes)
        puzzle_indices = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
        group_indices = np.concatenate([[0], np.cumsum(groups)]).astype(np.int32)
        for key, data in (
            ("puzzle_identifiers", np.concatenate(self._puzzle_ids).astype(np.int32)),
            ("puzzle_indices", puzzle_indices),
            ("group_indices", group_indices),
            ("transforms", np.concatenate(self._transforms)),
        ):
            self.digest.update(np.ascontiguousarray(data).tobytes())
            _write_array(self.group, key, data)
        _write_strings(self.group, "group_names", self.group_names)
        self.digest.update("\n".join(self.group_names).encode("utf-8"))
        meta = SplitMeta(
            **{key: int(value) for key, value in common.items()},
            seq_len=self.seq_len,
            total_groups=len(groups),
            total_puzzles=len(sizes),
            total_examples=int(puzzle_indices[-1]),
            mean_puzzle_examples=float(sizes.mean()) if len(sizes) else 0.0,
            transform_size=self.transform_size,
        )
        self.group.attrs.update(attrs.asdict(meta))
        return meta


def _missing_chunk_files(directory: Path, array: zarr.Array) -> int:
    """How many of the chunk (or shard) files ``array`` must have are absent under
    ``directory``: every expected key is looked up (zarr would read a missing one as the
    fill value, i.e. zeros), not merely counted, so a stray file cannot hide a gap."""
    outer = array.shards or array.chunks
    grid = [-(-int(n) // int(c)) for n, c in zip(array.shape, outer, strict=True)]
    count = math.prod(grid)  # Python ints: damaged shapes cannot wrap; 0 for an empty array
    if count > 1_000_000:  # a huge grid (damaged attributes): count the files instead
        root = directory / "c"
        present = sum(1 for f in root.rglob("*") if f.is_file()) if root.is_dir() else 0
        return max(0, count - present)
    return sum(
        1
        for coords in itertools.product(*(range(g) for g in grid))
        if not (directory / array.metadata.encode_chunk_key(coords)).is_file()
    )


def check_out_path(out: Path, force: bool) -> None:
    """Refuse an existing ``out`` unless ``force``; never replace something that is not a
    trmkit store (or an empty directory), whatever ``force`` says."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if not force:
        raise StoreError(f"{out} already exists; pass --force to replace it")
    if out.is_dir() and (not any(out.iterdir()) or _looks_like_store(out)):
        return
    raise StoreError(
        f"{out} exists and is not a trmkit dataset store; refusing to replace it even with "
        f"--force (remove it yourself or choose another --out)"
    )


def _looks_like_store(path: Path) -> bool:
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and FORMAT_KEY in meta.get("attributes", {})


def remove_stale_temporaries(out: Path) -> None:
    """Restore a replaced store a kill left as its backup (`trmkit.atomic.recover_dir`) and
    delete the ``out.tmp-<pid>`` siblings of killed builds."""
    out = Path(out)
    if not out.parent.is_dir():
        return
    atomic.recover_dir(out)
    prefix = out.name + ".tmp-"
    for sibling in out.parent.iterdir():
        pid = sibling.name.removeprefix(prefix)
        if sibling.name.startswith(prefix) and pid.isdigit() and not atomic.pid_alive(int(pid)):
            shutil.rmtree(sibling, ignore_errors=True)


class StoreWriter:
    """Writes a complete store under a temporary sibling and renames it into place.

    Use as a context manager: leaving the block by an exception deletes the temporary
    directory; `commit` marks the store complete and moves it to ``out``."""

    def __init__(self, out: Path, *, force: bool = False) -> None:
        self.out = Path(out)
        self.force = force
        check_out_path(self.out, force)
        # a read-only or full place, or a file in the way, is refused before any puzzle
        # is generated (docs/errors.md, "Write boundaries")
        check_writable_dir(self.out.parent, "directory of the dataset store")
        remove_stale_temporaries(self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.with_name(f"{self.out.name}.tmp-{os.getpid()}")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        try:
            with writing(self.out, "dataset store"):
                self.root = zarr.open_group(str(self.tmp), mode="w", zarr_format=3)
                self.root.attrs.update(
                    {FORMAT_KEY: FORMAT_VERSION, "complete": False, EVERY_CHUNK_KEY: True}
                )
        except BaseException:
            self.abort()
            raise
        self.splits: dict[str, SplitWriter] = {}
        # one id per build, stamped on the root and on every split, so a split copied in
        # from another build is refused on open (docs/data.md, "The store")
        self.build_id = uuid.uuid4().hex

    def split(self, name: str, *, seq_len: int, transform_size: int) -> SplitWriter:
        if name not in self.splits:
            group = self.root.create_group(name)
            self.splits[name] = SplitWriter(group, seq_len=seq_len, transform_size=transform_size)
        return self.splits[name]

    def commit(
        self, root_attrs: Mapping[str, Any], common: Mapping[str, Any], identifiers: Sequence[str]
    ) -> dict[str, SplitMeta]:
        """Finish every split, write attributes (``complete`` last) and rename into place."""
        metas = {name: writer.finish(common) for name, writer in self.splits.items()}
        for writer in self.splits.values():
            writer.group.attrs.update({BUILD_ID_KEY: self.build_id})
        _write_strings(self.root, "identifier_names", identifiers)
        digest = hashlib.sha256()
        for name in sorted(self.splits):
            digest.update(f"{name}:{self.splits[name].digest.hexdigest()};".encode())
        digest.update("\n".join(identifiers).encode("utf-8"))
        self.root.attrs.update(
            {
                **root_attrs,
                CONTENT_KEY: digest.hexdigest(),
                FORMAT_KEY: FORMAT_VERSION,
                BUILD_ID_KEY: self.build_id,
                "trmkit_version": __version__,
                "splits": [name for name in SPLITS if name in metas]
                + sorted(set(metas) - set(SPLITS)),
            }
        )
        self.root.attrs.update({"complete": True})
        # rename over ``out`` (`trmkit.atomic.replace_dir`: a kill between the two renames
        # leaves the old store as ``.old-<name>``, which the next `open_store` or build
        # renames back); someone may have created ``out`` meanwhile
        check_out_path(self.out, self.force)
        atomic.replace_dir(self.tmp, self.out)
        return metas

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
            found = find_os_error(exc)
            if found is not None and not isinstance(exc, WriteError):
                # zarr's writes report no file name: name the store being written
                line = describe_os_error(found, self.out, name_path=True)
                raise WriteError(f"writing the dataset store: {line}") from exc


# --------------------------------------------------------------------------- reading


def _rebuild_hint(path: Path, task: str | None) -> str:
    name = task or "NAME"
    return f"rebuild it with: trmkit build --task {name} --out {path} --force"


def _damaged(store: Store, what: str, problem: str) -> StoreError:
    return StoreError(
        f"{store.path}/{what}: {problem}; the store is damaged, "
        f"{_rebuild_hint(store.path, store.task_name)}"
    )


def _guarded(store: Store, what: str, problem: str, read: Callable[[], Any]) -> Any:
    """``read()``, whose failure (zarr raises many kinds for deleted members, truncated
    metadata, corrupt chunks) is one StoreError naming ``what`` and ``problem``."""
    try:
        return read()
    except StoreError:
        raise
    except Exception as exc:
        detail = f"{type(exc).__name__}: {str(exc)[:120]}"
        raise _damaged(store, what, f"{problem} ({detail})") from None


class SplitReader:
    """One split of a store: metadata, index arrays (loaded on first use) and the row arrays,
    either in RAM (`load`) or read one sorted selection per call (`rows`)."""

    def __init__(self, store: Store, name: str, group: zarr.Group) -> None:
        self.store = store
        self.name = name
        self.group = group
        self.meta = SplitMeta.from_attrs(group.attrs.asdict(), f"{store.path}/{name}")
        self._ram: tuple[np.ndarray, np.ndarray] | None = None
        self._arrays = self._verify_layout()
        self.inputs = self._arrays["inputs"]
        self.labels = self._arrays["labels"]

    def __repr__(self) -> str:
        return f"SplitReader({str(self.store.path)!r}, {self.name!r})"

    def _damaged(self, what: str, problem: str) -> StoreError:
        return _damaged(self.store, f"{self.name}/{what}", problem)

    def _read(self, what: str, read: Callable[[], Any], problem: str = "unreadable data") -> Any:
        return _guarded(self.store, f"{self.name}/{what}", problem, read)

    def _verify_layout(self) -> dict[str, zarr.Array]:
        """The arrays, which must have the shapes the attributes promise, and, in stores that
        write every chunk, every chunk file; a missing one would otherwise read as zeros."""
        m = self.meta
        expected = {
            "inputs": (m.total_examples, m.seq_len),
            "labels": (m.total_examples, m.seq_len),
            "puzzle_identifiers": (m.total_puzzles,),
            "puzzle_indices": (m.total_puzzles + 1,),
            "group_indices": (m.total_groups + 1,),
            "transforms": (m.total_puzzles, m.transform_size),
        }
        arrays = {}
        for key, shape in expected.items():
            opened = partial(member_array, self.group, key)
            array = self._read(key, opened, "cannot open the array")
            if tuple(array.shape) != shape:
                raise self._damaged(
                    key,
                    f"shape {tuple(array.shape)} contradicts the split "
                    f"attributes, which promise {shape}",
                )
            if not np.issubdtype(array.dtype, np.integer):
                raise self._damaged(key, f"dtype {array.dtype} is not an integer type")
            arrays[key] = array
        if self.store.attrs.get(EVERY_CHUNK_KEY) is True:  # older stores may skip some
            for key, array in arrays.items():
                missing = _missing_chunk_files(self.store.path / self.name / key, array)
                if missing:
                    raise self._damaged(
                        key, f"{missing} chunk file(s) missing on disk (deleted or never copied)"
                    )
        return arrays

    def _array(self, key: str) -> np.ndarray:
        return self._read(key, lambda: np.asarray(self._arrays[key][:]))

    def _index(self, key: str, end: int) -> np.ndarray:
        index = self._array(key)
        if len(index) == 0 or index[0] != 0 or index[-1] != end or (np.diff(index) < 0).any():
            raise self._damaged(key, f"must start at 0, never decrease and end at {end}")
        return index

    @cached_property
    def puzzle_identifiers(self) -> np.ndarray:
        return self._array("puzzle_identifiers")

    @cached_property
    def puzzle_indices(self) -> np.ndarray:
        return self._index("puzzle_indices", self.meta.total_examples)

    @cached_property
    def group_indices(self) -> np.ndarray:
        return self._index("group_indices", self.meta.total_puzzles)

    @cached_property
    def transforms(self) -> np.ndarray:
        return self._array("transforms")

    @cached_property
    def group_names(self) -> list[str]:
        names = self._read("group_names", lambda: _read_strings(self.group, "group_names"))
        if len(names) != self.meta.total_groups:
            raise self._damaged(
                "group_names", f"{len(names)} names for {self.meta.total_groups} groups"
            )
        return names

    @cached_property
    def puzzle_group(self) -> np.ndarray:
        """int32[puzzles]: the group of each puzzle (derived from group_indices)."""
        counts = np.diff(self.group_indices)
        return np.repeat(np.arange(len(counts), dtype=np.int32), counts)

    @property
    def nbytes(self) -> int:
        """Uncompressed bytes of inputs + labels."""
        return 2 * self.meta.total_examples * self.meta.seq_len

    @property
    def in_memory(self) -> bool:
        return self._ram is not None

    def _both(self, select: Any) -> tuple[np.ndarray, np.ndarray]:
        """``select(array)`` read from inputs, then from labels."""
        inputs = self._read("inputs", lambda: np.asarray(select(self.inputs)))
        return inputs, self._read("labels", lambda: np.asarray(select(self.labels)))

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """inputs and labels as numpy arrays in RAM (read once, then cached)."""
        if self._ram is None:
            self._ram = self._both(lambda array: array[:])
        return self._ram

    def rows(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """inputs[index], labels[index] in the given order: a RAM gather when loaded, else one
        sorted orthogonal selection per array (duplicates read once)."""
        index = np.asarray(index, dtype=np.int64)
        if self._ram is not None:
            return self._ram[0][index], self._ram[1][index]
        if len(index) == 0:
            empty = np.zeros((0, self.meta.seq_len), np.uint8)
            return empty, empty.copy()
        unique, inverse = np.unique(index, return_inverse=True)
        selection = (unique, slice(None))
        inputs, labels = self._both(lambda array: array.get_orthogonal_selection(selection))
        return inputs[inverse], labels[inverse]

    def row_range(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Contiguous rows [start, stop)."""
        if self._ram is not None:
            return self._ram[0][start:stop], self._ram[1][start:stop]
        return self._both(lambda array: array[start:stop])


class Store:
    """An opened, complete store: root attributes and its splits (`open_store` checks them)."""

    def __init__(self, path: Path, root: zarr.Group, splits: tuple[str, ...]) -> None:
        self.path = path
        self.root = root
        self.attrs: dict[str, Any] = root.attrs.asdict()
        self.splits = splits
        self._readers: dict[str, SplitReader] = {}

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, task={self.task_name!r}, splits={self.splits})"

    @property
    def task_name(self) -> str:
        return str(self.attrs.get("task", ""))

    def split(self, name: str) -> SplitReader:
        if name not in self.splits:
            raise StoreError(
                f"{self.path} has no {name!r} split (it has: {', '.join(self.splits) or 'none'})"
            )
        if name not in self._readers:
            group = _guarded(self, name, "cannot open the split", lambda: self.root[name])
            if not isinstance(group, zarr.Group):
                raise StoreError(f"{self.path}/{name} is not a split group; rebuild the store")
            self._readers[name] = SplitReader(self, name, group)
        return self._readers[name]

    def __getitem__(self, name: str) -> SplitReader:
        return self.split(name)

    def identifiers(self) -> list[str]:
        """Name of every puzzle identifier (index = id; 0 is "<blank>")."""
        return _guarded(
            self,
            "identifier_names",
            "unreadable data",
            lambda: _read_strings(self.root, "identifier_names"),
        )

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


# What every split of one build shares with the root: all but the split's own totals.
SHARED_FIELDS = tuple(
    f.name for f in attrs.fields(SplitMeta) if not f.name.startswith(("total_", "mean_"))
)


def open_store(path: str | os.PathLike[str], task: Any = None) -> Store:
    """Open a complete store; refuse a missing, incomplete, foreign-format or other-task one,
    and a damaged split (attributes untyped or contradicting the arrays, a chunk file missing)
    or one copied in from another build, here rather than inside training.

    ``task`` may be a task name or a `trmkit.task.Task` (whose version is checked too)."""
    path = Path(path)
    task_name = getattr(task, "name", task)
    hint = _rebuild_hint(path, task_name)
    if not path.exists():
        # a replacement killed between its two renames; the path is checked again, as another
        # process (Accelerate rank) may have restored the backup first
        atomic.try_recover_dir(path)
    if not path.exists():
        raise StoreError(
            f"{path}: no such dataset store; build one with trmkit build --task "
            f"{task_name or 'NAME'} --out {path}"
        )
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path}: not a trmkit dataset store (no zarr.json); {hint}")
    try:
        root = zarr.open_group(str(path), mode="r", zarr_format=3)
        attributes = root.attrs.asdict()
    except Exception as exc:  # zarr raises several types for a corrupt hierarchy
        raise StoreError(f"{path}: cannot open as a Zarr v3 group ({exc}); {hint}") from None
    if FORMAT_KEY not in attributes:
        raise StoreError(f"{path}: a Zarr group but not a trmkit dataset store; {hint}")
    version = attributes[FORMAT_KEY]
    if version != FORMAT_VERSION:
        raise StoreError(
            f"{path}: store format version {version}, this trmkit ({__version__}) reads "
            f"version {FORMAT_VERSION}; {hint}"
        )
    if attributes.get("complete") is not True:
        raise StoreError(f"{path}: incomplete store (its build did not finish); {hint}")
    splits = attributes.get("splits")
    if not isinstance(splits, list) or not all(isinstance(x, str) and x for x in splits):
        raise StoreError(
            f"{path}: root attribute splits is {str(splits)[:40]!r}, expected a "
            f"list of split names; the store is damaged, {hint}"
        )
    for key in ("task", "task_version"):
        if key in attributes and not isinstance(attributes[key], str):
            raise StoreError(
                f"{path}: root attribute {key} is {attributes[key]!r}, expected a "
                f"string; the store is damaged, {hint}"
            )
    stored_task = attributes.get("task")
    if task_name is not None and stored_task != task_name:
        raise StoreError(
            f"{path} holds task {stored_task!r}, not {task_name!r}; build a {task_name} store "
            f"with: trmkit build --task {task_name} --out DIR"
        )
    version_wanted = getattr(task, "version", None)
    if version_wanted is not None and attributes.get("task_version") != version_wanted:
        raise StoreError(
            f"{path} was built with task {stored_task!r} version "
            f"{attributes.get('task_version')!r}, the installed plugin is version "
            f"{version_wanted!r}; {hint}"
        )
    store = Store(path, root, tuple(splits))
    hint = _rebuild_hint(path, store.task_name or None)
    build_id = attributes.get(BUILD_ID_KEY)  # recorded since; older stores: the shared fields
    for name in store.splits:
        split = store.split(name)
        theirs = split.group.attrs.get(BUILD_ID_KEY)
        if build_id is not None and theirs != build_id:
            raise StoreError(
                f"{path}/{name}: the split comes from another build (build id "
                f"{str(theirs)[:12]!r}, the store's is {str(build_id)[:12]!r}); the store "
                f"was assembled from two builds, {hint}"
            )
        for field in SHARED_FIELDS:
            if field in attributes and getattr(split.meta, field) != attributes[field]:
                raise StoreError(
                    f"{path}/{name}: {field} is {getattr(split.meta, field)!r} but the "
                    f"store's is {attributes[field]!r}; the splits come from different "
                    f"builds, {hint}"
                )
    return store
