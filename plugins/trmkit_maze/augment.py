"""Maze augmentation: the 8 dihedral transforms (reference 6.2/6.3 ids), one int each.

A transform is ``[dihedral id]`` (``transform_size`` 1). With ``num_aug >= 7`` `draw`
returns all 7 non-identity transforms in id order, so a group holds the 8 dihedral copies
of a maze as the paper describes (the reference README command builds without them; the
builder's ``--num-aug 0`` reproduces that). Smaller ``num_aug`` draws distinct ids at random.
Rotations and reflections map open cells to open cells and preserve 4-adjacency, so a
shortest S->G path stays a shortest path.
"""

from __future__ import annotations

import numpy as np

from trmkit.task import RawPuzzle
from trmkit_grids.dihedral import (
    apply_dihedral,
    apply_dihedral_batch,
    invert_dihedral,
    invert_dihedral_batch,
)


class DihedralAugmenter:
    transform_size = 1

    def identity(self) -> np.ndarray:
        return np.zeros(1, dtype=np.int64)

    def draw(self, puzzle: RawPuzzle, num_aug: int, rng: np.random.Generator) -> list[np.ndarray]:
        if num_aug <= 0:
            return []
        ids = np.arange(1, 8)
        if num_aug < 7:
            ids = rng.choice(ids, size=num_aug, replace=False)
        return [np.array([tid], dtype=np.int64) for tid in ids]

    def apply(self, transform: np.ndarray, grid: np.ndarray) -> np.ndarray:
        return apply_dihedral(grid, int(np.asarray(transform).reshape(-1)[0]))

    def invert(self, transform: np.ndarray, grid: np.ndarray) -> np.ndarray:
        return invert_dihedral(grid, int(np.asarray(transform).reshape(-1)[0]))

    def apply_batch(self, transforms: np.ndarray, grids: np.ndarray) -> np.ndarray:
        """out[i] = apply(transforms[i], grids[i]) for int[N, 1] and square int[N, H, H]."""
        return apply_dihedral_batch(np.asarray(transforms)[:, 0], grids)

    def invert_batch(self, transforms: np.ndarray, grids: np.ndarray) -> np.ndarray:
        return invert_dihedral_batch(np.asarray(transforms)[:, 0], grids)
