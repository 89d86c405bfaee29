"""The puzzle-id table of a bundle: embedding row -> (puzzle group name, transform).

Tasks with per-variant puzzle ids (ARC) train one embedding row per augmented variant of
each puzzle; `trmkit solve` needs those rows to answer a puzzle the model was trained on,
with every trained variant voting (the official code ties ARC test predictions to the same
per-variant rows). Files: ``puzzle_ids.safetensors`` (int32 ``group`` [num_ids], -1 for
unused ids, and ``transform`` [num_ids, transform_size]) and ``puzzle_ids.json``
(``group_names``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from trmkit.checkpoint.state import read_json, read_safetensors, save_safetensors
from trmkit.errors import CheckpointError
from trmkit.task import RawPuzzle, Task, inverts_exactly

TABLE_FILE = "puzzle_ids.safetensors"
NAMES_FILE = "puzzle_ids.json"
_INTEGER = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


@attrs.frozen
class PuzzleIdArrays:
    """A puzzle-id table as plain arrays: ``group`` int32 [num_ids] (index into ``names``,
    -1 for unused ids) and ``transform`` int32 [num_ids, transform_size]. What `trmkit
    adapt` writes (`PuzzleIdTable.arrays` + new rows); `write_bundle` accepts it as its
    ``store``."""

    names: list[str]
    group: np.ndarray
    transform: np.ndarray

    def write(self, directory: Path) -> None:
        save_safetensors(
            {
                "group": torch.from_numpy(np.ascontiguousarray(self.group, dtype=np.int32)),
                "transform": torch.from_numpy(np.ascontiguousarray(self.transform, np.int32)),
            },
            directory / TABLE_FILE,
        )
        (directory / NAMES_FILE).write_text(json.dumps({"group_names": list(self.names)}))

    def groups(self) -> dict[str, list[tuple[int, np.ndarray]]]:
        """Puzzle name -> its (id, transform) rows; ids of no group (-1) are left out."""
        groups: dict[str, list[tuple[int, np.ndarray]]] = {}
        for pid in np.nonzero(self.group >= 0)[0]:
            groups.setdefault(self.names[self.group[pid]], []).append(
                (int(pid), self.transform[pid])
            )
        return groups


def write_puzzle_ids(directory: Path, store: Any) -> None:
    """id -> (group name, transform) for every puzzle id of ``store`` (all splits), or the
    arrays of a `PuzzleIdArrays`."""
    if isinstance(store, PuzzleIdArrays):
        store.write(directory)
        return
    splits = [store.split(name) for name in store.splits]
    if not splits:
        return
    meta = splits[0].meta
    group = np.full(meta.num_puzzle_identifiers, -1, np.int32)
    transform = np.zeros((meta.num_puzzle_identifiers, meta.transform_size), np.int32)
    names: dict[str, int] = {}  # group name -> its index, in order of first appearance
    for split in splits:
        ids, groups = np.asarray(split.puzzle_identifiers), np.asarray(split.puzzle_group)
        local = np.array([names.setdefault(n, len(names)) for n in split.group_names], np.int32)
        group[ids] = local[groups] if len(groups) else group[ids]
        transform[ids] = np.asarray(split.transforms)
    PuzzleIdArrays(list(names), group, transform).write(directory)


class PuzzleIdTable:
    """The table of a bundle directory: (puzzle name) -> its trained (id, transform) rows.
    Empty when the bundle has none (tasks with one shared puzzle id)."""

    def __init__(self, bundle_path: Path, num_ids: int | None = None) -> None:
        self.groups: dict[str, list[tuple[int, np.ndarray]]] = {}
        self.file: Path | None = bundle_path / TABLE_FILE
        file = self.file
        if not file.exists():
            return
        arrays = read_safetensors(file)
        names_file = bundle_path / NAMES_FILE
        names = read_json(names_file)
        names = names.get("group_names") if isinstance(names, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CheckpointError(
                f"{names_file}: field group_names must be a list of strings; "
                "the checkpoint is damaged"
            )
        group, transforms = arrays.get("group"), arrays.get("transform")
        if group is None or transforms is None:
            raise CheckpointError(
                f"{file}: needs tensors 'group' and 'transform'; the checkpoint is damaged"
            )
        if (
            group.ndim != 1
            or transforms.ndim != 2
            or len(transforms) != len(group)
            or group.dtype not in _INTEGER
            or transforms.dtype not in _INTEGER
            or (num_ids is not None and len(group) != num_ids)
        ):
            want = f"[{num_ids}]" if num_ids is not None else "[num_ids]"
            raise CheckpointError(
                f"{file}: puzzle-id table of shape group {tuple(group.shape)}, transform "
                f"{tuple(transforms.shape)}; expected integer group {want} and transform "
                f"{want[:-1]}, transform_size]; the checkpoint is damaged"
            )
        group_ids = group.numpy()
        if len(group_ids) and (group_ids.min() < -1 or group_ids.max() >= len(names)):
            raise CheckpointError(
                f"{file}: group ids must lie in [-1, {len(names) - 1}] (one "
                f"per name in {NAMES_FILE}); the checkpoint is damaged"
            )
        self.groups = PuzzleIdArrays(names, group_ids, transforms.numpy()).groups()

    def variants(self, name: str) -> list[tuple[int, np.ndarray]]:
        return self.groups.get(name, [])

    def checked_variants(self, task: Task, puzzle: RawPuzzle) -> list[tuple[int, np.ndarray]]:
        """`variants` of ``puzzle``, each a transform ``task`` applies to every test input and
        exactly inverts (as `trmkit.data.official` checks an imported table): a damaged row
        is one CheckpointError naming the table, not a plugin error or a garbage answer."""
        rows = self.variants(puzzle.name)
        for pid, t in rows:
            for example in puzzle.test:
                if not inverts_exactly(task.augmenter, t, np.asarray(example.input)):
                    raise CheckpointError(
                        f"{self.file or 'puzzle-id table'}: row {pid} ({t.tolist()[:12]}) is "
                        f"not a transform task {task.name!r} can apply and invert; the "
                        "checkpoint is damaged"
                    )
        return rows

    def arrays(self, num_ids: int, transform_size: int) -> PuzzleIdArrays:
        """The table as arrays of ``num_ids`` rows (ids of no group: -1)."""
        group = np.full(num_ids, -1, np.int32)
        transform = np.zeros((num_ids, transform_size), np.int32)
        for g, rows in enumerate(self.groups.values()):
            for pid, t in rows:
                group[pid] = g
                transform[pid] = np.asarray(t).reshape(-1)[:transform_size]
        return PuzzleIdArrays(list(self.groups), group, transform)

    @classmethod
    def from_arrays(cls, arrays: PuzzleIdArrays) -> PuzzleIdTable:
        """The table of in-memory arrays (`trmkit solve --adapt`: nothing read from disk)."""
        table = cls.__new__(cls)
        table.groups, table.file = arrays.groups(), None
        return table


__all__ = ["NAMES_FILE", "TABLE_FILE", "PuzzleIdArrays", "PuzzleIdTable", "write_puzzle_ids"]
