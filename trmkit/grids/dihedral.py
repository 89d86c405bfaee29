"""The 8 dihedral transforms of a grid, numbered as the reference ARC builder does, and
`DihedralAugmenter`, a ready `trmkit.task.Augmenter` (and `BatchAugmenter`) over them.

ids: 0 identity, 1 rot90, 2 rot180, 3 rot270 (``np.rot90`` turns counter-clockwise),
4 flip left-right, 5 flip up-down, 6 transpose, 7 anti-transpose (flip-lr of rot90).
``DIHEDRAL_INVERSE[t]`` undoes ``t``: rotations by 90/270 swap, the rest are involutions.
"""

from __future__ import annotations

import numpy as np

from trmkit.task import RawPuzzle

DIHEDRAL_INVERSE: tuple[int, ...] = (0, 3, 2, 1, 4, 5, 6, 7)
NUM_DIHEDRAL = 8


def apply_dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    """``grid`` transformed by dihedral id ``tid`` (works for non-square grids too)."""
    return _apply(np.asarray(grid), int(tid), axes=(0, 1))


def invert_dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    """Exact inverse of `apply_dihedral` for the same ``tid``."""
    return apply_dihedral(grid, DIHEDRAL_INVERSE[int(tid)])


_TRANSFORMS = (  # (grid, row axis, column axis) -> the transformed view, by dihedral id
    lambda g, r, c: g,
    lambda g, r, c: np.rot90(g, k=1, axes=(r, c)),
    lambda g, r, c: np.rot90(g, k=2, axes=(r, c)),
    lambda g, r, c: np.rot90(g, k=3, axes=(r, c)),
    lambda g, r, c: np.flip(g, axis=c),
    lambda g, r, c: np.flip(g, axis=r),
    lambda g, r, c: np.swapaxes(g, r, c),
    lambda g, r, c: np.flip(np.rot90(g, k=1, axes=(r, c)), axis=c),
)


def _apply(grid: np.ndarray, tid: int, axes: tuple[int, int]) -> np.ndarray:
    if not 0 <= tid < NUM_DIHEDRAL:
        raise ValueError(f"dihedral id must be 0..7, got {tid}")
    return np.ascontiguousarray(_TRANSFORMS[tid](grid, *axes))


def apply_dihedral_batch(tids: np.ndarray, grids: np.ndarray) -> np.ndarray:
    """Row i of ``grids`` (int[N, H, W], square unless every id keeps the shape) transformed
    by ``tids[i]``; one vectorised call per distinct id instead of one per row."""
    tids = np.asarray(tids).reshape(-1)
    grids = np.asarray(grids)
    if grids.ndim != 3 or len(tids) != len(grids):
        raise ValueError(f"need tids[N] and grids[N, H, W], got {tids.shape} and {grids.shape}")
    out = np.empty_like(grids)
    for tid in np.unique(tids):
        rows = np.flatnonzero(tids == tid)
        out[rows] = _apply(grids[rows], int(tid), axes=(1, 2))
    return out


def invert_dihedral_batch(tids: np.ndarray, grids: np.ndarray) -> np.ndarray:
    """Exact inverse of `apply_dihedral_batch`."""
    inverse = np.asarray(DIHEDRAL_INVERSE)[np.asarray(tids).reshape(-1).astype(np.int64)]
    return apply_dihedral_batch(inverse, grids)


class DihedralAugmenter:
    """The 8 rotations and reflections of a grid as a `trmkit.task.Augmenter`: a transform
    is ``[dihedral id]`` (``transform_size`` 1, the identity ``[0]``).

    With ``num_aug >= 7`` `draw` returns all 7 non-identity ids in order (every puzzle gets
    its 8 dihedral copies); fewer are drawn at random without repetition. Use it when a
    rotated or reflected puzzle, with its solution transformed the same way, is again a
    valid puzzle and solution (mazes, Game of Life, most path and region tasks). Implements
    `trmkit.task.BatchAugmenter` (square grids) for the builder's fast path.
    """

    transform_size = 1

    def identity(self) -> np.ndarray:
        return np.zeros(1, dtype=np.int64)

    def draw(self, puzzle: RawPuzzle, num_aug: int, rng: np.random.Generator) -> list[np.ndarray]:
        if num_aug <= 0:
            return []
        ids = np.arange(1, NUM_DIHEDRAL)
        if num_aug < NUM_DIHEDRAL - 1:
            ids = rng.choice(ids, size=num_aug, replace=False)
        return [np.array([tid], dtype=np.int64) for tid in ids]

    def apply(self, transform: np.ndarray, grid: np.ndarray) -> np.ndarray:
        return apply_dihedral(grid, int(np.asarray(transform).reshape(-1)[0]))

    def invert(self, transform: np.ndarray, grid: np.ndarray) -> np.ndarray:
        return invert_dihedral(grid, int(np.asarray(transform).reshape(-1)[0]))

    def apply_batch(self, transforms: np.ndarray, grids: np.ndarray) -> np.ndarray:
        """``out[i] = apply(transforms[i], grids[i])`` for ``int[N, 1]`` and square grids."""
        return apply_dihedral_batch(np.asarray(transforms)[:, 0], grids)

    def invert_batch(self, transforms: np.ndarray, grids: np.ndarray) -> np.ndarray:
        return invert_dihedral_batch(np.asarray(transforms)[:, 0], grids)
