"""Validity-preserving sudoku shuffles, recorded as int vectors (reference 6.1).

A transform is ``[transpose, row_perm (n), col_perm (n), digit_map (n + 1)]``
(``transform_size = 3n + 2``, 29 for 9x9). Applied as the reference builder does: the grid
is transposed if the flag is set, then cell (i, j) takes the value at
``(row_perm[i], col_perm[j])``, then every digit d becomes ``digit_map[d]`` (blank 0 stays
0). ``row_perm`` shuffles the bands and the rows inside each band; ``col_perm`` the
stacks and the columns inside each stack.

Boxes that are not square (6x6 sudoku, 2x3 boxes) are not mapped onto boxes by a
transpose, so the flag is always 0 for them; all other shuffles still apply.
`apply_batch` / `invert_batch` are the vectorised forms the builder uses for ~1M rows.
"""

from __future__ import annotations

import numpy as np

from trmkit.task import RawPuzzle
from trmkit_sudoku.solver import Geometry

MAX_REDRAWS = 64


def _repeats(batch: np.ndarray) -> np.ndarray:
    """bool[k]: rows equal to an earlier row."""
    _, first = np.unique(batch, axis=0, return_index=True)
    repeat = np.ones(len(batch), dtype=bool)
    repeat[first] = False
    return repeat


class SudokuAugmenter:
    def __init__(self, geo: Geometry) -> None:
        self.geo = geo
        self.n = geo.n
        self.transform_size = 3 * self.n + 2
        self.can_transpose = geo.box_rows == geo.box_cols

    # ------------------------------------------------------------------ layout
    def _split(self, t: np.ndarray) -> tuple[np.ndarray, ...]:
        n = self.n
        t = np.asarray(t)
        return t[..., 0], t[..., 1 : 1 + n], t[..., 1 + n : 1 + 2 * n], t[..., 1 + 2 * n :]

    def identity(self) -> np.ndarray:
        n = self.n
        ramp = np.arange(n)
        return np.concatenate([[0], ramp, ramp, np.arange(n + 1)]).astype(np.int64)

    # ------------------------------------------------------------------ drawing
    def _line_perms(self, k: int, size: int, rng: np.random.Generator) -> np.ndarray:
        """k permutations of n lines that keep groups of ``size`` consecutive lines together."""
        groups = self.n // size
        order = rng.permuted(np.tile(np.arange(groups), (k, 1)), axis=1)
        inner = rng.permuted(np.tile(np.arange(size), (k, groups, 1)), axis=2)
        return (order[:, :, None] * size + inner).reshape(k, self.n)

    def draw_batch(self, k: int, rng: np.random.Generator) -> np.ndarray:
        """int64[k, transform_size]: k random transforms (identity possible)."""
        n = self.n
        flips = rng.random(k) < 0.5 if self.can_transpose else np.zeros(k, dtype=bool)
        rows = self._line_perms(k, self.geo.box_rows, rng)
        cols = self._line_perms(k, self.geo.box_cols, rng)
        digits = rng.permuted(np.tile(np.arange(1, n + 1), (k, 1)), axis=1)
        digits = np.concatenate([np.zeros((k, 1), dtype=np.int64), digits], axis=1)
        return np.concatenate([flips[:, None].astype(np.int64), rows, cols, digits], axis=1)

    def draw(self, puzzle: RawPuzzle, num_aug: int, rng: np.random.Generator) -> list[np.ndarray]:
        """``num_aug`` random distinct non-identity shuffles.

        The identity and repeats are redrawn (rare: 9x9 has ~1.2e12 shuffles; 4x4 has
        3072, where 10 draws repeat one about 1.5% of the time), so a draw without either
        consumes the rng exactly as the reference's undeduplicated draw. A request close to
        the number of shuffles may return fewer after ``MAX_REDRAWS`` rounds.
        """
        if num_aug <= 0:
            return []
        batch = self.draw_batch(num_aug, rng)
        ident = self.identity()
        for _ in range(MAX_REDRAWS):
            bad = (batch == ident).all(axis=1) | _repeats(batch)
            if not bad.any():
                break
            batch[bad] = self.draw_batch(int(bad.sum()), rng)
        bad = (batch == ident).all(axis=1) | _repeats(batch)
        return list(batch[~bad])

    # ------------------------------------------------------------------ applying
    def apply(self, transform: np.ndarray, grid: np.ndarray) -> np.ndarray:
        return self.apply_batch(np.asarray(transform)[None], np.asarray(grid)[None])[0]

    def invert(self, transform: np.ndarray, grid: np.ndarray) -> np.ndarray:
        return self.invert_batch(np.asarray(transform)[None], np.asarray(grid)[None])[0]

    def apply_batch(self, transforms: np.ndarray, grids: np.ndarray) -> np.ndarray:
        """out[i] = apply(transforms[i], grids[i]) for int[N, K] and int[N, n, n]."""
        flip, rows, cols, digits = self._split(transforms)
        grids = np.asarray(grids)
        n, count = self.n, len(grids)
        # out[i, r, c] = grid[i].flat[source[i, r, c]]: one flat gather covers the optional
        # transpose (T(x)[a, b] = x[b, a]) and the row/column permutations together
        r, c = rows[:, :, None], cols[:, None, :]
        source = np.where(flip.astype(bool)[:, None, None], c * n + r, r * n + c)
        source += (np.arange(count) * (n * n))[:, None, None]
        moved = grids.reshape(-1)[source]
        return self._map_digits(digits, moved).astype(grids.dtype, copy=False)

    def invert_batch(self, transforms: np.ndarray, grids: np.ndarray) -> np.ndarray:
        """out[i] = invert(transforms[i], grids[i]); cells outside 0..n (e.g. a decoded
        PAD prediction, -1) stay as they are."""
        flip, rows, cols, digits = self._split(transforms)
        grids = np.asarray(grids)
        plain = self._map_digits(np.argsort(digits, axis=1), grids)
        unrow, uncol = np.argsort(rows, axis=1), np.argsort(cols, axis=1)
        moved = plain[np.arange(len(grids))[:, None, None], unrow[:, :, None], uncol[:, None, :]]
        out = np.where(flip.astype(bool)[:, None, None], moved.transpose(0, 2, 1), moved)
        return out.astype(grids.dtype, copy=False)

    def _map_digits(self, digits: np.ndarray, grids: np.ndarray) -> np.ndarray:
        """grids[i] with every value v in 0..n replaced by digits[i, v]; others kept."""
        count = len(grids)
        offsets = (np.arange(count) * (self.n + 1)).reshape((count,) + (1,) * (grids.ndim - 1))
        table = np.ascontiguousarray(digits).reshape(-1)
        if grids.size == 0 or (grids.min() >= 0 and grids.max() <= self.n):  # the usual case
            return table[grids + offsets]
        inside = (grids >= 0) & (grids <= self.n)
        mapped = table[np.where(inside, grids, 0) + offsets]
        return np.where(inside, mapped, grids)
