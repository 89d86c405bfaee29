"""ARC grids <-> 900 tokens on a 30x30 canvas (reference 6.3), vectorised with numpy.

Tokens: PAD 0, EOS 1, colour c -> c + 2 (vocabulary 12). A grid of h x w sits at an offset
(r0, c0) of a zero canvas; EOS fills the row just below it over its columns and the column
just right of it over its rows, where those cells are inside the canvas (the diagonal corner
cell stays PAD). Labels use the same tokens, so PAD (0 = ``ignore_label_id``) carries no loss
while EOS and colours are predicted.

The train split is translated (input and output of a pair share a random offset so that the
larger of the two fits; one random example per puzzle stays at (0, 0)); the test split is
always at (0, 0), which is what makes the top-left crop of `decode` work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trmkit.task import Augmenter, Example
from trmkit_arc.augment import ArcAugmenter

CANVAS = 30
PAD = 0
EOS = 1
COLOUR_OFFSET = 2
NUM_COLOURS = 10


def check_grid(grid: Any) -> np.ndarray:
    """``grid`` as an int array, or ValueError if it is not an ARC grid (1..30 a side, 0..9)."""
    arr = np.asarray(grid)
    if arr.ndim != 2:
        raise ValueError(f"an ARC grid must be 2-D, got shape {arr.shape}")
    h, w = arr.shape
    if not (1 <= h <= CANVAS and 1 <= w <= CANVAS):
        raise ValueError(f"an ARC grid must be 1..{CANVAS} a side, got {h}x{w}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"ARC cells must be integers, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= NUM_COLOURS:
        raise ValueError(f"ARC cells must be 0..{NUM_COLOURS - 1}, got {arr.min()}..{arr.max()}")
    return arr


def _as_grid(grid: Any) -> np.ndarray:
    arr = np.asarray(grid)
    if arr.ndim != 2:
        raise ValueError(f"an ARC grid must be 2-D, got shape {arr.shape}")
    return arr


def crop_shapes(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the grid each canvas holds, as the reference evaluator crops it.

    ``tokens`` is int[N, 900] (or [N, 30, 30]). Row r's usable width is the run of colour
    tokens from column 0, capped by the previous row's width; the kept rectangle is the
    (rows, width) of largest area (first one on ties). A canvas with no colour at (0, 0)
    crops to 0x0.
    """
    canvas = np.asarray(tokens).reshape(-1, CANVAS, CANVAS)
    colour = (canvas >= COLOUR_OFFSET) & (canvas < COLOUR_OFFSET + NUM_COLOURS)
    # run length of colour tokens from column 0 in every row
    run = np.where(colour.all(axis=2), CANVAS, np.argmin(colour, axis=2))
    width = np.minimum.accumulate(run, axis=1)
    area = width * np.arange(1, CANVAS + 1)
    best = np.argmax(area, axis=1)
    rows = np.where(area[np.arange(len(canvas)), best] > 0, best + 1, 0)
    cols = np.where(rows > 0, width[np.arange(len(canvas)), best], 0)
    return rows, cols


_STAGE = CANVAS + 1  # staging canvas: room for the EOS row/column of a 30-wide grid
_STAGE_CELLS = _STAGE * _STAGE


def _stage_grids(view: np.ndarray, tokens: np.ndarray) -> None:
    """Token grids [m, h, w] with their EOS row/column at (0, 0) of staging canvases
    ``view`` [m, 31, 31] (zero there); plain slicing, no per-row work."""
    _, h, w = tokens.shape
    view[:, :h, :w] = tokens
    view[:, h, :w] = EOS
    view[:, :h, w] = EOS


def _shift_out(buf: np.ndarray, src: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Rows ``src`` of staging buffer ``buf`` [N, 2 * 961] (canvas in the right half, left
    half zero) moved ``shift`` cells down the flat 31-wide canvas, as uint8[len, 900].

    A shift of r0 * 31 + c0 moves the staged grid to (r0, c0); reading from ``shift`` cells
    earlier takes zeros from the left half. The strided view below exposes, for every row
    and start cell, the 30x30 canvas seen from there, so one gather both translates and
    crops: EOS cells pushed into the 31st row or column fall off, as in the reference."""
    n_rows, width = buf.shape
    view = np.lib.stride_tricks.as_strided(
        buf,
        shape=(n_rows, _STAGE_CELLS + 1, CANVAS, CANVAS),
        strides=(buf.strides[0], 1, _STAGE, 1),
        writeable=False,
    )
    return view[src, _STAGE_CELLS - shift].reshape(len(src), CANVAS * CANVAS)


def _write(canvas: np.ndarray, grid: np.ndarray, r: int, c: int) -> None:
    """One grid with its EOS row/column into a zero 30x30 canvas at (r, c)."""
    h, w = grid.shape
    if grid.dtype.kind not in "iu" or grid.min() < 0 or grid.max() >= NUM_COLOURS:
        check_grid(grid)
    canvas[r : r + h, c : c + w] = grid
    canvas[r : r + h, c : c + w] += COLOUR_OFFSET
    if r + h < CANVAS:
        canvas[r + h, c : c + w] = EOS
    if c + w < CANVAS:
        canvas[r : r + h, c + w] = EOS


class ArcCodec:
    """The reference ARC codec; see the module docstring."""

    seq_len: int = CANVAS * CANVAS
    vocab_size: int = COLOUR_OFFSET + NUM_COLOURS
    pad_id: int = PAD
    ignore_label_id: int = PAD
    eos_id: int = EOS
    # encode_puzzle translates train grids, so the builder must not replace it by encode_batch
    batch_encodes_puzzles: bool = False

    def encode(self, grid: np.ndarray) -> np.ndarray:
        """One grid at (0, 0) -> uint8[900]."""
        return self.encode_batch(check_grid(grid)[None])[0]

    def encode_batch(self, grids: np.ndarray) -> np.ndarray:
        """int[N, h, w] (one shape) at (0, 0) -> uint8[N, 900]."""
        grids = np.asarray(grids)
        if grids.ndim != 3:
            raise ValueError(f"encode_batch needs int[N, h, w], got shape {grids.shape}")
        out = np.zeros((len(grids), _STAGE, _STAGE), np.uint8)
        if len(grids):
            check_grid(grids[0])
            if grids.min() < 0 or grids.max() >= NUM_COLOURS:
                raise ValueError(f"ARC cells must be 0..{NUM_COLOURS - 1}")
            _stage_grids(out, grids.astype(np.uint8) + COLOUR_OFFSET)
        return np.ascontiguousarray(out[:, :CANVAS, :CANVAS]).reshape(len(grids), -1)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """900 tokens -> the grid (colours 0..9), cropped as the reference evaluator does.

        The crop starts at the first colour token in row-major order: (0, 0) for every test
        row (where this is exactly the reference crop) and the grid's corner for translated
        train rows, so ``decode`` also inverts those. The evaluator itself uses the strict
        (0, 0) crop (`crop_shapes`); a canvas without colour decodes to a 0x0 grid.
        """
        canvas = np.asarray(tokens).reshape(CANVAS, CANVAS)
        colour = (canvas >= COLOUR_OFFSET) & (canvas < COLOUR_OFFSET + NUM_COLOURS)
        if not colour.any():
            return np.zeros((0, 0), np.int64)
        r0, c0 = divmod(int(np.argmax(colour.reshape(-1))), CANVAS)
        shifted = np.zeros_like(canvas)
        shifted[: CANVAS - r0, : CANVAS - c0] = canvas[r0:, c0:]
        (h,), (w,) = crop_shapes(shifted[None])
        return shifted[:h, :w].astype(np.int64) - COLOUR_OFFSET

    def decode_batch(self, tokens: np.ndarray) -> list[np.ndarray]:
        """int[N, 900] -> N grids cropped strictly at (0, 0), as the reference evaluator."""
        canvas = np.asarray(tokens).reshape(-1, CANVAS, CANVAS)
        hs, ws = crop_shapes(canvas)
        return [
            canvas[i, :h, :w].astype(np.int64) - COLOUR_OFFSET
            for i, (h, w) in enumerate(zip(hs.tolist(), ws.tolist(), strict=True))
        ]

    def encode_puzzle(
        self, examples: Sequence[Example], *, split: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        inputs, labels = self._encode_variants(
            [[_as_grid(e.input) for e in examples]],
            [[_as_grid(e.output) for e in examples]],
            split=split,
            rng=rng,
        )
        return inputs[0], labels[0]

    def encode_variants(
        self,
        examples: Sequence[Example],
        transforms: np.ndarray,
        augmenter: Augmenter,
        *,
        split: str,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """All variants of one puzzle at once -> (inputs, labels), each uint8[V, n, 900].

        Row v equals ``encode_puzzle`` of the examples transformed by ``transforms[v]``
        (identical for split "test", same distribution for "train"). With the ARC augmenter
        this costs O(n x 8) numpy calls instead of O(V x n) Python-level ones.
        """
        transforms = np.asarray(transforms).reshape(len(transforms), -1)
        if not isinstance(augmenter, ArcAugmenter):  # any other: the plain per-variant loop
            ins = [[_as_grid(augmenter.apply(t, e.input)) for e in examples] for t in transforms]
            outs = [[_as_grid(augmenter.apply(t, e.output)) for e in examples] for t in transforms]
            return self._encode_variants(ins, outs, split=split, rng=rng)
        variants = augmenter.variant_grids
        return self._encode_grouped(examples, transforms, variants, split=split, rng=rng)

    # ------------------------------------------------------------------ internals

    def _offsets(
        self, heights: np.ndarray, widths: np.ndarray, split: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offsets int[V, n] for pairs whose larger grid is heights x widths (int[V, n])."""
        if split == "test" or heights.size == 0:
            zero = np.zeros(heights.shape, np.int64)
            return zero, zero.copy()
        if split != "train":
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        r0 = rng.integers(0, CANVAS - heights + 1)
        c0 = rng.integers(0, CANVAS - widths + 1)
        keep = rng.integers(0, heights.shape[1], size=heights.shape[0])
        rows = np.arange(heights.shape[0])
        r0[rows, keep] = 0
        c0[rows, keep] = 0
        return r0, c0

    def _encode_variants(self, ins, outs, *, split: str, rng: np.random.Generator):
        """Grids as nested lists [V][n] -> uint8[V, n, 900] pair, one slice write per grid."""
        v = len(ins)
        n = len(ins[0]) if v else 0
        shapes = np.array(
            [
                [(*a.shape, *b.shape) for a, b in zip(ri, ro, strict=True)]
                for ri, ro in zip(ins, outs, strict=True)
            ],
            np.int64,
        ).reshape(v, n, 4)
        if shapes.size and (shapes.min() < 1 or shapes.max() > CANVAS):
            bad = next(
                g for row in (*ins, *outs) for g in row if min(g.shape) < 1 or max(g.shape) > CANVAS
            )
            check_grid(bad)
        r0, c0 = self._offsets(
            np.maximum(shapes[..., 0], shapes[..., 2]),
            np.maximum(shapes[..., 1], shapes[..., 3]),
            split,
            rng,
        )
        canvases = np.zeros((2, v, n, CANVAS, CANVAS), np.uint8)
        for which, grids in enumerate((ins, outs)):
            for i in range(v):
                for k in range(n):
                    _write(canvases[which, i, k], grids[i][k], int(r0[i, k]), int(c0[i, k]))
        return canvases[0].reshape(v, n, -1), canvases[1].reshape(v, n, -1)

    def _encode_grouped(self, examples, transforms, variant_grids, *, split, rng):
        """Fast path. Variants are processed sorted by dihedral id, so that each example
        grid needs one gather and one slice write per id; a final gather per row restores
        the caller's order and applies the translation."""
        v, n = len(transforms), len(examples)
        order = np.argsort(transforms[:, 0], kind="stable")
        # the colour maps shifted by the colour offset: variant_grids then yields tokens
        sorted_t = transforms[order].astype(np.uint8)
        sorted_t[:, 1:] += COLOUR_OFFSET
        hs = np.zeros((v, n), np.int64)  # larger grid of each pair, in sorted order
        ws = np.zeros((v, n), np.int64)
        bufs = [np.zeros((n, v, 2 * _STAGE_CELLS), np.uint8) for _ in range(2)]
        for k, example in enumerate(examples):
            for buf, grid in zip(bufs, (example.input, example.output), strict=True):
                for rows, grids in variant_grids(sorted_t, check_grid(grid)):
                    lo, hi = int(rows[0]), int(rows[-1]) + 1  # contiguous: sorted by id
                    view = buf[k, lo:hi, _STAGE_CELLS:].reshape(hi - lo, _STAGE, _STAGE)
                    _stage_grids(view, grids)
                    np.maximum(hs[lo:hi, k], grids.shape[1], out=hs[lo:hi, k])
                    np.maximum(ws[lo:hi, k], grids.shape[2], out=ws[lo:hi, k])
        r0, c0 = self._offsets(hs, ws, split, rng)
        position = np.empty(v, np.int64)
        position[order] = np.arange(v)
        # output row (variant i, example k) <- staged row (k, position[i])
        src = (np.arange(n)[None, :] * v + position[:, None]).reshape(-1)
        shift = (r0 * _STAGE + c0)[position].reshape(-1)
        inputs, labels = (
            _shift_out(buf.reshape(n * v, -1), src, shift).reshape(v, n, -1) for buf in bufs
        )
        return inputs, labels
