"""The official TRM/HRM on-disk dataset layout (``dataset.json`` + ``.npy`` arrays), both ways.

    <dir>/{train,test}/dataset.json
    <dir>/{train,test}/all__{inputs,labels,puzzle_identifiers,puzzle_indices,group_indices}.npy
    <dir>/identifiers.json        (id -> name; index 0 is "<blank>")

`export_official` also writes ``trmkit_transforms.npy`` and ``trmkit_group_names.json`` per
split (the official loader ignores unknown files), so store -> export -> import is exact.
`import_official` validates every file against the task's codec and, when those extras are
absent (a dataset built by the official code), records identity transforms.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, get_args

import numpy as np

from trmkit import atomic
from trmkit.data.build import commit_store
from trmkit.data.store import SPLITS, StoreWriter, check_out_path, expected_count, open_store
from trmkit.errors import StoreError
from trmkit.oserrors import check_writable_dir, writing
from trmkit.task import OfficialTotals, Task, inverts_exactly

SET = "all"
FIELDS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
META_FIELDS = (
    "pad_id",
    "ignore_label_id",
    "blank_identifier_id",
    "vocab_size",
    "seq_len",
    "num_puzzle_identifiers",
    "total_groups",
    "mean_puzzle_examples",
    "total_puzzles",
)
BLOCK_ROWS_BYTES = 64 << 20


def export_official(
    store_dir: str | Path,
    out_dir: str | Path,
    *,
    force: bool = False,
    total_puzzles: OfficialTotals = "puzzles",
) -> Path:
    """Write the store at ``store_dir`` in the official layout under ``out_dir``.

    ``total_puzzles`` says what ``dataset.json``'s field of that name holds, as the official
    builder of the task writes it (``Task.defaults.official_total_puzzles``): the puzzle
    count (ARC) or the group count (Sudoku, Maze). The arrays are the same either way.
    """
    if total_puzzles not in get_args(OfficialTotals):
        raise ValueError(f"total_puzzles must be 'puzzles' or 'groups', not {total_puzzles!r}")
    store = open_store(store_dir)
    out = Path(out_dir)
    if out.exists():
        if not force:
            raise StoreError(f"{out} already exists; pass --force to replace it")
        if not out.is_dir() or (any(out.iterdir()) and not (out / "identifiers.json").exists()):
            raise StoreError(
                f"{out} exists and is not an exported dataset; refusing to replace it even "
                f"with --force (remove it yourself or choose another --out)"
            )
    check_writable_dir(out.parent, "directory of the export")  # before any array is read
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with writing(out, "exported dataset"):
            tmp.mkdir(parents=True)
            for name in store.splits:
                split = store.split(name)
                folder = tmp / name
                folder.mkdir()
                meta = split.meta
                info = {key: getattr(meta, key) for key in META_FIELDS}
                if total_puzzles == "groups":
                    info["total_puzzles"] = meta.total_groups
                info["sets"] = [SET]
                (folder / "dataset.json").write_text(json.dumps(info, indent=2))
                n, seq_len = meta.total_examples, meta.seq_len
                step = max(1, BLOCK_ROWS_BYTES // seq_len)
                targets = [
                    np.lib.format.open_memmap(
                        folder / f"{SET}__{key}.npy", mode="w+", dtype=np.uint8, shape=(n, seq_len)
                    )
                    for key in ("inputs", "labels")
                ]
                for start in range(0, n, step):
                    rows = split.row_range(start, min(n, start + step))  # checked reads
                    for target, block in zip(targets, rows, strict=True):
                        target[start : start + len(block)] = block
                for target in targets:
                    target.flush()
                del targets
                for key in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
                    np.save(folder / f"{SET}__{key}.npy", getattr(split, key).astype(np.int32))
                np.save(folder / "trmkit_transforms.npy", split.transforms.astype(np.int32))
                (folder / "trmkit_group_names.json").write_text(json.dumps(split.group_names))
            (tmp / "identifiers.json").write_text(json.dumps(store.identifiers()))
            atomic.replace_dir(tmp, out)  # fsynced; a kill between renames is recovered
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# --------------------------------------------------------------------------- import


def _load_json(path: Path) -> Any:
    from trmkit.textio import read_json

    if not path.is_file():
        raise StoreError(f"{path}: missing (not an official dataset directory?)")
    try:
        return read_json(path, max_bytes=MAX_JSON_BYTES, error=StoreError, what="JSON file")
    except StoreError as exc:  # read_json's line names the path too
        problem = str(exc).removeprefix(f"{path}: ")
        raise StoreError(f"{path}: unreadable JSON: {problem}") from None


MAX_JSON_BYTES = 1 << 30
"""a dataset.json / identifiers.json larger than 1 GiB is refused unread."""
TRANSFORM_PROBES = 4096
"""at most this many distinct imported transforms are checked by a round trip."""


def _load_npy(path: Path) -> np.ndarray:
    """The integer array at ``path`` (memory-mapped); every array of the layout is one."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise StoreError(f"{path}: missing; every split needs {SET}__<field>.npy files") from None
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: not a readable .npy array ({exc})") from None
    if not np.issubdtype(array.dtype, np.integer):
        raise StoreError(f"{path}: dtype {array.dtype} is not an integer type")
    return array


def _check_index(path: Path, index: np.ndarray, end: int, what: str) -> np.ndarray:
    index = np.asarray(index).astype(np.int64)
    if index.ndim != 1 or len(index) < 1 or index[0] != 0 or index[-1] != end:
        raise StoreError(f"{path}: {what} must be 1-D, start at 0 and end at {end}")
    if (np.diff(index) < 0).any():
        raise StoreError(f"{path}: {what} must be non-decreasing")
    return index


class _OfficialSplit:
    """The validated arrays of one split of an official dataset directory."""

    def __init__(self, folder: Path, task: Task) -> None:
        self.folder = folder
        where = folder / "dataset.json"
        info = _load_json(where)
        if not isinstance(info, dict):
            raise StoreError(f"{where}: expected a JSON object, found {type(info).__name__}")
        for key in META_FIELDS:
            kind = expected_count(key, info[key]) if key in info else None
            if kind:
                raise StoreError(f"{where}: field {key!r} is {info[key]!r}, expected {kind}")
        if "sets" in info and not (
            isinstance(info["sets"], list) and all(isinstance(x, str) for x in info["sets"])
        ):
            raise StoreError(f"{where}: field 'sets' must be a list of names, e.g. [\"all\"]")
        missing = [key for key in ("seq_len", "vocab_size", "sets") if key not in info]
        if missing:
            raise StoreError(f"{where}: lacks {', '.join(missing)}")
        if list(info["sets"]) != [SET]:
            raise StoreError(f"{where}: sets {info['sets']} (only the single set 'all' is read)")
        codec = task.codec
        for key, wanted in (
            ("seq_len", codec.seq_len),
            ("vocab_size", codec.vocab_size),
            ("pad_id", codec.pad_id),
            ("ignore_label_id", codec.ignore_label_id),
        ):
            if key in info and info[key] != wanted:
                raise StoreError(
                    f"{where}: {key} {info[key]} does not match task {task.name!r} ({wanted}); "
                    f"import it with the task that built it"
                )
        self.info = info
        arrays = {key: _load_npy(folder / f"{SET}__{key}.npy") for key in FIELDS}
        self.inputs, self.labels = arrays["inputs"], arrays["labels"]
        for key, array in (("inputs", self.inputs), ("labels", self.labels)):
            if array.ndim != 2 or array.shape[1] != codec.seq_len:
                raise StoreError(
                    f"{folder / f'{SET}__{key}.npy'}: shape {array.shape}, expected "
                    f"[examples, {codec.seq_len}]"
                )
        if self.inputs.shape != self.labels.shape:
            raise StoreError(
                f"{folder}: inputs {self.inputs.shape} and labels "
                f"{self.labels.shape} differ in shape"
            )
        n = len(self.inputs)
        self.puzzle_indices = _check_index(
            folder / f"{SET}__puzzle_indices.npy", arrays["puzzle_indices"], n, "puzzle_indices"
        )
        puzzles = len(self.puzzle_indices) - 1
        self.group_indices = _check_index(
            folder / f"{SET}__group_indices.npy", arrays["group_indices"], puzzles, "group_indices"
        )
        ids = np.asarray(arrays["puzzle_identifiers"]).astype(np.int64)
        self.num_ids = int(info.get("num_puzzle_identifiers", ids.max(initial=0) + 1))
        if ids.shape != (puzzles,) or (len(ids) and (ids.min() < 0 or ids.max() >= self.num_ids)):
            raise StoreError(
                f"{folder / f'{SET}__puzzle_identifiers.npy'}: need {puzzles} ids in "
                f"0..{self.num_ids - 1}"
            )
        self.puzzle_identifiers = ids
        if info.get("total_groups", len(self.group_indices) - 1) != len(self.group_indices) - 1:
            raise StoreError(f"{where}: total_groups disagrees with {SET}__group_indices.npy")


def _transforms(split: _OfficialSplit, task: Task) -> np.ndarray:
    """The split's ``trmkit_transforms.npy`` (identities when absent, as the official code
    writes none). Each distinct imported transform (up to `TRANSFORM_PROBES`) must be one the
    task's augmenter can apply and exactly invert on a grid of its puzzle: an out-of-range
    table would otherwise train and evaluate on garbage."""
    aug, codec, k = task.augmenter, task.codec, task.augmenter.transform_size
    path = split.folder / "trmkit_transforms.npy"
    if not path.exists():
        identity = np.asarray(aug.identity(), dtype=np.int32).reshape(1, k)
        return np.repeat(identity, len(split.puzzle_identifiers), axis=0)
    transforms = np.asarray(_load_npy(path))
    if transforms.shape != (len(split.puzzle_identifiers), k):
        raise StoreError(
            f"{path}: shape {transforms.shape}, expected [{len(split.puzzle_identifiers)}, {k}]"
        )
    if len(transforms) and (
        transforms.min() < np.iinfo(np.int32).min or transforms.max() > np.iinfo(np.int32).max
    ):
        raise StoreError(f"{path}: values beyond 32 bits; not a transform table")
    transforms = transforms.astype(np.int32)
    _, first = np.unique(transforms, axis=0, return_index=True)
    for p in np.sort(first)[:TRANSFORM_PROBES]:
        row = int(split.puzzle_indices[p])
        if row >= len(split.inputs):
            continue
        try:
            grid = np.asarray(codec.decode(np.asarray(split.inputs[row]).astype(np.int64)))
        except Exception:  # noqa: BLE001 - an undecodable row is checked by the copy
            continue
        t = transforms[p]
        if not inverts_exactly(aug, t, grid):
            raise StoreError(
                f"{path}: row {int(p)} ({t.tolist()[:8]}) is not a transform "
                f"task {task.name!r} can apply and invert; the table is damaged"
            )
    return transforms


def _group_names(split: _OfficialSplit, identifiers: list[str] | None) -> list[str]:
    path = split.folder / "trmkit_group_names.json"
    groups = len(split.group_indices) - 1
    if path.exists():
        names = _load_json(path)
        if not isinstance(names, list) or len(names) != groups:
            raise StoreError(f"{path}: expected a list of {groups} names")
        return [str(name) for name in names]
    # without the file: a group is named after the identifier of its first puzzle
    ids = split.puzzle_identifiers
    firsts = [int(ids[p]) if p < len(ids) else 0 for p in split.group_indices[:-1]]
    return [
        identifiers[pid].split("|||")[0] if identifiers is not None and pid > 0 else f"group{g}"
        for g, pid in enumerate(firsts)
    ]


def import_official(
    src_dir: str | Path, out_dir: str | Path, task: Task, *, force: bool = False
) -> Path:
    """Read an official dataset directory into a trmkit store at ``out_dir``."""
    src, out = Path(src_dir), Path(out_dir)
    atomic.try_recover_dir(src)  # an export killed between its two renames
    if not src.is_dir():
        raise StoreError(f"{src}: no such directory (expected <dir>/train/dataset.json ...)")
    present = [name for name in SPLITS if (src / name / "dataset.json").is_file()]
    if not present:
        raise StoreError(
            f"{src}: no train/dataset.json or test/dataset.json; not an official dataset directory"
        )
    check_out_path(out, force)
    splits = {name: _OfficialSplit(src / name, task) for name in present}
    num_ids = {s.num_ids for s in splits.values()}
    if len(num_ids) != 1:
        raise StoreError(f"{src}: the splits disagree on num_puzzle_identifiers ({num_ids})")
    identifiers = None
    if (src / "identifiers.json").is_file():
        identifiers = _load_json(src / "identifiers.json")
        if not isinstance(identifiers, list) or len(identifiers) < max(num_ids):
            raise StoreError(
                f"{src / 'identifiers.json'}: expected a list of at least {max(num_ids)} names"
            )
        identifiers = [str(name) for name in identifiers]
    hashes = {
        f"{name}/dataset.json": hashlib.sha256(
            (src / name / "dataset.json").read_bytes()
        ).hexdigest()
        for name in present
    }
    with StoreWriter(out, force=force) as writer:
        for name, split in splits.items():
            _copy_split(writer, name, split, task, identifiers)
        count = num_ids.pop()
        commit_store(
            writer,
            task,
            identifiers[:count]
            if identifiers
            else ["<blank>"] + [f"id{i}" for i in range(1, count)],
            count,
            int(next(iter(splits.values())).info.get("blank_identifier_id", 0)),
            source="official",
            source_path=str(src.resolve()),
            source_files=hashes,
            source_description="imported from the official TRM/HRM layout",
            seed=None,
            num_aug=None,
            subsample=None,
            strict=False,
            options={},
        )
    return out


def _copy_split(
    writer: StoreWriter, name: str, split: _OfficialSplit, task: Task, identifiers: Any
) -> None:
    codec = task.codec
    target = writer.split(name, seq_len=codec.seq_len, transform_size=task.augmenter.transform_size)
    transforms = _transforms(split, task)
    names = _group_names(split, identifiers)
    gi, pi = split.group_indices, split.puzzle_indices
    step = max(1, BLOCK_ROWS_BYTES // codec.seq_len)
    g = 0
    groups = len(gi) - 1
    while g < groups:
        # as many whole groups as fit in one block of rows (at least one)
        row0 = pi[gi[g]]
        g_end = int(np.searchsorted(pi[gi], row0 + step, side="right")) - 1
        g_end = min(max(g_end, g + 1), groups)
        p0, p1 = int(gi[g]), int(gi[g_end])
        r0, r1 = int(pi[p0]), int(pi[p1])
        block = []
        for key, array in (("inputs", split.inputs), ("labels", split.labels)):
            rows = np.asarray(array[r0:r1])
            if rows.size and (rows.min() < 0 or rows.max() >= codec.vocab_size):
                raise StoreError(
                    f"{split.folder / f'{SET}__{key}.npy'}: token {int(rows.max())} outside the "
                    f"vocabulary 0..{codec.vocab_size - 1} of task {task.name!r} (rows {r0}..{r1})"
                )
            block.append(rows.astype(np.uint8))
        target.append(
            *block,
            puzzle_sizes=np.diff(pi[p0 : p1 + 1]),
            puzzle_ids=split.puzzle_identifiers[p0:p1],
            transforms=transforms[p0:p1],
            group_sizes=np.diff(gi[g : g_end + 1]),
            group_names=names[g:g_end],
        )
        g = g_end
