"""ARC augmentation: one of the 8 dihedral transforms x a permutation of colours 1..9.

A transform is stored as 11 ints: ``[dihedral_id, m_0, ..., m_9]`` where colour c becomes
``m_c`` and ``m_0 == 0`` (black is fixed). Dihedral ids and their inverse table are the
reference's (6.3, see `trmkit.grids.dihedral`). The colour map is pointwise, so it commutes
with the dihedral move; `invert` undoes both (inverse dihedral, then the colour map's
inverse permutation ``argsort(m)``), as the reference evaluator does (7.3).

`draw` keeps a variant only if its content differs from the original and from every
variant kept so far, where content is the sorted multiset of (input, output) pair hashes
over all the task's examples (train and test), with at most 5 x num_aug tries: the
reference's rule, so a task using a single non-black colour yields at most 72 variants.
"""

from __future__ import annotations

import numpy as np

from trmkit.grids.dihedral import (
    DIHEDRAL_INVERSE,
    NUM_DIHEDRAL,
    apply_dihedral,
    apply_dihedral_batch,
    invert_dihedral_batch,
)
from trmkit.task import RawPuzzle

NUM_COLOURS = 10
TRANSFORM_SIZE = 1 + NUM_COLOURS
MAX_TRIES_FACTOR = 5
_HASH_CELLS = 900  # largest grid: every position inside a grid has its own hash weight


def _odd_weights(gen: np.random.Generator, n: int) -> np.ndarray:
    return gen.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


_GEN = np.random.Generator(np.random.PCG64(0x7A4C))  # fixed: keys must not depend on seeds
_W_IN = _odd_weights(_GEN, _HASH_CELLS)
_W_OUT = _odd_weights(_GEN, _HASH_CELLS)
_W_SHAPE = _odd_weights(_GEN, 4 * 31)
_W_RANK = _odd_weights(_GEN, 4096)


# the 8 dihedral moves as numpy views (ids as in trmkit.grids.dihedral; no copies, no
# per-call axis normalisation: the evaluator inverts hundreds of thousands of small grids)
_VIEWS = (
    lambda g: g,
    lambda g: g.T[::-1],  # rot90 counter-clockwise
    lambda g: g[::-1, ::-1],
    lambda g: g.T[:, ::-1],  # rot270
    lambda g: g[:, ::-1],
    lambda g: g[::-1],
    lambda g: g.T,
    lambda g: g.T[::-1, ::-1],  # flip-lr of rot90
)


def _split(transform: np.ndarray) -> tuple[int, np.ndarray]:
    t = np.asarray(transform).reshape(-1)
    if t.size != TRANSFORM_SIZE or not 0 <= t[0] < NUM_DIHEDRAL:
        raise ValueError(f"an ARC transform is [dihedral id 0..7, 10 colours], got {t.tolist()}")
    return int(t[0]), t[1:]


class _ContentHasher:
    """64-bit content keys of a task under many candidate transforms, without touching cells.

    A pair's hash is a weighted sum (mod 2**64) of its cell values with a random weight per
    position inside its grid, plus a term for the two grid shapes. A colour map only
    relabels cells, so the hash of pair k under (dihedral t, map m) is ``m @ A_t[:, k]``
    where ``A_t[c, k]`` sums the weights of the cells of colour c after dihedral t: one
    small matrix product per candidate instead of a pass over every cell. The task's key
    combines its sorted pair hashes, so the order of the pairs does not matter.
    """

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.colour_weights: list[np.ndarray] = []  # per dihedral id: uint64[10, pairs]
        self.shape_term: list[np.ndarray] = []  # per dihedral id: uint64[pairs]
        for tid in range(NUM_DIHEDRAL):
            table = np.zeros((NUM_COLOURS, len(pairs)), np.uint64)
            shapes = np.zeros((len(pairs), 4), np.int64)
            for k, (inp, out) in enumerate(pairs):
                for grid, weights, col in ((inp, _W_IN, 0), (out, _W_OUT, 2)):
                    moved = apply_dihedral(grid, tid)
                    # each colour's sum (mod 2**64) of the position weights of its cells
                    np.add.at(table[:, k], moved.ravel(), weights[: moved.size])
                    shapes[k, col : col + 2] = moved.shape
            self.colour_weights.append(table)
            offsets = shapes + np.arange(4) * 31
            self.shape_term.append(_W_SHAPE[offsets].sum(axis=1, dtype=np.uint64))

    def keys(self, tids: np.ndarray, cmaps: np.ndarray) -> np.ndarray:
        """uint64[m] content key of each candidate (tids[m], cmaps[m, 10])."""
        out = np.zeros(len(tids), np.uint64)
        cmaps = cmaps.astype(np.uint64)
        for tid in np.unique(tids):
            rows = np.flatnonzero(tids == tid)
            pair_hash = cmaps[rows] @ self.colour_weights[tid] + self.shape_term[tid]
            pair_hash.sort(axis=1)
            out[rows] = pair_hash @ _W_RANK[: pair_hash.shape[1]]
        return out


def _first_new(keys: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Ascending indices of the first occurrence of each key of ``keys`` not in ``seen``."""
    _, first = np.unique(keys, return_index=True)
    first.sort()
    return first[~np.isin(keys[first], seen)]


class ArcAugmenter:
    """Dihedral x colour-permutation augmenter; see the module docstring."""

    transform_size: int = TRANSFORM_SIZE

    def identity(self) -> np.ndarray:
        return np.concatenate([[0], np.arange(NUM_COLOURS)]).astype(np.int64)

    def apply(self, transform: np.ndarray, grid: np.ndarray) -> np.ndarray:
        tid, cmap = _split(transform)
        return cmap[_VIEWS[tid](np.asarray(grid))]

    def invert(self, transform: np.ndarray, grid: np.ndarray) -> np.ndarray:
        tid, cmap = _split(transform)
        return np.argsort(cmap)[_VIEWS[DIHEDRAL_INVERSE[tid]](np.asarray(grid))]

    def apply_batch(self, transforms: np.ndarray, grids: np.ndarray) -> np.ndarray:
        """out[i] == apply(transforms[i], grids[i]); grids int[N, H, W], square unless every
        dihedral id keeps the shape (0, 2, 4, 5)."""
        grids = np.asarray(grids)
        transforms = np.asarray(transforms).reshape(len(grids), TRANSFORM_SIZE)
        mapped = transforms[:, 1:][np.arange(len(grids))[:, None, None], grids]
        return apply_dihedral_batch(transforms[:, 0], mapped).astype(grids.dtype, copy=False)

    def invert_batch(self, transforms: np.ndarray, grids: np.ndarray) -> np.ndarray:
        """out[i] == invert(transforms[i], grids[i])."""
        grids = np.asarray(grids)
        transforms = np.asarray(transforms).reshape(len(grids), TRANSFORM_SIZE)
        moved = invert_dihedral_batch(transforms[:, 0], grids)
        inverse = np.argsort(transforms[:, 1:], axis=1)
        return inverse[np.arange(len(grids))[:, None, None], moved].astype(grids.dtype, copy=False)

    def variant_grids(
        self, transforms: np.ndarray, grid: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """One grid under many transforms, grouped by dihedral id (shapes differ per id).

        Returns [(rows int[m], grids[m, h', w'])] covering every row of ``transforms``, with
        ``grids[j] == apply(transforms[rows[j]], grid)`` in the dtype of ``transforms``.
        Used by the codec's fast path (`ArcCodec.encode_variants`).
        """
        transforms = np.asarray(transforms).reshape(-1, TRANSFORM_SIZE)
        grid = np.asarray(grid)
        groups = []
        for tid in np.unique(transforms[:, 0]):
            rows = np.flatnonzero(transforms[:, 0] == tid)
            moved = apply_dihedral(grid, int(tid))
            groups.append((rows, transforms[rows, 1:][:, moved]))
        return groups

    def variant_name(self, puzzle_name: str, transform: np.ndarray) -> str:
        """The reference's variant name "<task>|||t<id>|||<colour map digits>"."""
        tid, cmap = _split(transform)
        if tid == 0 and np.array_equal(cmap, np.arange(NUM_COLOURS)):
            return puzzle_name
        return f"{puzzle_name}|||t{tid}|||{''.join(str(int(c)) for c in cmap)}"

    def draw(self, puzzle: RawPuzzle, num_aug: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Up to ``num_aug`` distinct non-identity variants (see module docstring).

        Candidates are drawn in chunks and filtered with array operations; the outcome is
        that of trying them one by one: the first ``num_aug`` candidates, in draw order,
        whose content is new, among the first 5 x num_aug tries.
        """
        pairs = [(np.asarray(e.input), np.asarray(e.output)) for e in (*puzzle.train, *puzzle.test)]
        if num_aug <= 0 or not pairs:
            return []
        hasher = _ContentHasher(pairs)
        used = np.unique(np.concatenate([g.ravel() for pair in pairs for g in pair]))
        identity = self.identity()[None]
        seen_cheap = self._cheap_keys(identity, used)
        seen_content = hasher.keys(identity[:, 0], identity[:, 1:])
        kept: list[np.ndarray] = []
        tries, max_tries = 0, MAX_TRIES_FACTOR * num_aug
        while len(kept) < num_aug and tries < max_tries:
            m = min(max_tries - tries, max(32, (num_aug - len(kept)) * 5 // 4 + 8))
            cand = np.empty((m, TRANSFORM_SIZE), np.int64)
            cand[:, 0] = rng.integers(0, NUM_DIHEDRAL, size=m)
            cand[:, 1] = 0
            cand[:, 2:] = rng.permuted(np.tile(np.arange(1, NUM_COLOURS), (m, 1)), axis=1)
            # same dihedral id and same map of the colours used => same content, so only
            # the first candidate of each such class is hashed
            cheap = self._cheap_keys(cand, used)
            fresh = _first_new(cheap, seen_cheap)
            content = np.zeros(m, np.uint64)
            content[fresh] = hasher.keys(cand[fresh, 0], cand[fresh, 1:])
            new = fresh[_first_new(content[fresh], seen_content)]
            take = new[: num_aug - len(kept)]
            kept.extend(cand[take])
            tried = m if len(kept) < num_aug else int(take[-1]) + 1
            tries += tried
            seen_cheap = np.concatenate([seen_cheap, cheap[:tried]])
            seen_content = np.concatenate([seen_content, content[take]])
        return kept

    @staticmethod
    def _cheap_keys(transforms: np.ndarray, used: np.ndarray) -> np.ndarray:
        """(dihedral id, map of the colours used) packed as base-10 digits in an int64."""
        digits = np.concatenate([transforms[:, :1], transforms[:, 1:][:, used]], axis=1)
        return digits @ (10 ** np.arange(digits.shape[1], dtype=np.int64))


__all__ = ["DIHEDRAL_INVERSE", "TRANSFORM_SIZE", "ArcAugmenter"]
