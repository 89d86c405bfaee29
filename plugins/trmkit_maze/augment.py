"""Maze augmentation: the 8 dihedral transforms (reference 6.2/6.3 ids), one int each.

A transform is ``[dihedral id]`` (``transform_size`` 1). With ``num_aug >= 7`` `draw`
returns all 7 non-identity transforms in id order, so a group holds the 8 dihedral copies
of a maze as the paper describes (the reference README command builds without them; the
builder's ``--num-aug 0`` reproduces that). Smaller ``num_aug`` draws distinct ids at random.
Rotations and reflections map open cells to open cells and preserve 4-adjacency, so a
shortest S->G path stays a shortest path.
"""

from __future__ import annotations

from trmkit.grids.dihedral import DihedralAugmenter

__all__ = ["DihedralAugmenter"]
