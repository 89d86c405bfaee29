"""ARC grids <-> tokens on a C x C canvas, vectorised (docs/tasks-arc.md; the official layout
is C = 30, 900 tokens).

Tokens: PAD 0, EOS 1, colour c -> c + 2 (vocabulary 12). A grid of h x w sits at an offset
(r0, c0) of a zero canvas; EOS fills the row just below it over its columns and the column
just right of it over its rows, where those cells are inside the canvas (the diagonal corner
cell stays PAD). Labels use the same tokens, so PAD (0 = ``ignore_label_id``) carries no loss
while EOS and colours are predicted.

The train split is translated (input and output of a pair share a random offset so that the
larger of the two fits; one random example per puzzle stays at (0, 0)); the test split is
always at (0, 0), which is what makes the top-left crop of `decode` work.

The canvas side C is the build option ``canvas`` (docs/tasks-arc.md, "A smaller canvas"):
30 by default, the official layout; a smaller one for small-grid subsets (arc-quick: 11).
Encoding needs C (`ArcCodec(canvas)`); decoding and cropping read it from the row length
(C x C tokens), so a codec of any canvas decodes rows of any other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from trmkit.task import Augmenter, Example
from trmkit_arc.augment import ArcAugmenter

CANVAS = 30
"""the official canvas side (the default of the build option ``canvas``)."""
PAD = 0
EOS = 1
COLOUR_OFFSET = 2
NUM_COLOURS = 10


def check_grid(grid: Any, canvas: int = CANVAS) -> np.ndarray:
    """``grid`` as an int array, or ValueError if it is not an ARC grid (1..30 a side, 0..9)
    that fits the ``canvas`` x ``canvas`` canvas."""
    arr = np.asarray(grid)
    if arr.ndim != 2:
        raise ValueError(f"an ARC grid must be 2-D, got shape {arr.shape}")
    h, w = arr.shape
    if not (1 <= h <= CANVAS and 1 <= w <= CANVAS):
        raise ValueError(f"an ARC grid must be 1..{CANVAS} a side, got {h}x{w}")
    if max(h, w) > canvas:
        raise ValueError(
            f"grid {h}x{w} is larger than the {canvas}x{canvas} canvas (build option "
            f"canvas={canvas}); build with a larger canvas"
        )
    if arr.dtype.kind not in "iu":
        raise ValueError(f"ARC cells must be integers, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= NUM_COLOURS:
        raise ValueError(f"ARC cells must be 0..{NUM_COLOURS - 1}, got {arr.min()}..{arr.max()}")
    return arr


def canvas_side(seq_len: int) -> int:
    """The canvas side C of rows of ``seq_len`` = C x C tokens (ValueError otherwise)."""
    side = math.isqrt(int(seq_len))
    if side * side != seq_len or not 1 <= side <= CANVAS:
        raise ValueError(f"ARC rows are C x C tokens with C 1..{CANVAS}, got {seq_len} tokens")
    return side


def as_canvases(tokens: np.ndarray) -> np.ndarray:
    """Rows int[N, C*C] (or one row, or [N, C, C]) as canvases [N, C, C]."""
    tokens = np.asarray(tokens)
    if tokens.ndim == 3 and tokens.shape[1] == tokens.shape[2]:
        return tokens
    side = canvas_side(tokens.shape[-1])
    return tokens.reshape(-1, side, side)


def crop_shapes(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the grid each canvas holds, as the reference evaluator crops it.

    ``tokens`` is int[N, C*C] (or [N, C, C]). Row r's usable width is the run of colour
    tokens from column 0, capped by the previous row's width; the kept rectangle is the
    (rows, width) of largest area (first one on ties). A canvas with no colour at (0, 0)
    crops to 0x0.
    """
    canvas = as_canvases(tokens)
    side = canvas.shape[-1]
    colour = (canvas >= COLOUR_OFFSET) & (canvas < COLOUR_OFFSET + NUM_COLOURS)
    # run length of colour tokens from column 0 in every row
    run = np.where(colour.all(axis=2), side, np.argmin(colour, axis=2))
    width = np.minimum.accumulate(run, axis=1)
    area = width * np.arange(1, side + 1)
    best = np.argmax(area, axis=1)
    rows = np.where(area[np.arange(len(canvas)), best] > 0, best + 1, 0)
    cols = np.where(rows > 0, width[np.arange(len(canvas)), best], 0)
    return rows, cols


def _stage_grids(view: np.ndarray, tokens: np.ndarray) -> None:
    """Token grids [m, h, w] with their EOS row/column at (0, 0) of staging canvases
    ``view`` [m, C + 1, C + 1] (zero there: room for the EOS row/column of a C-wide grid);
    plain slicing, no per-row work."""
    _, h, w = tokens.shape
    view[:, :h, :w] = tokens
    view[:, h, :w] = EOS
    view[:, :h, w] = EOS


def _shift_out(buf: np.ndarray, src: np.ndarray, shift: np.ndarray, side: int) -> np.ndarray:
    """Rows ``src`` of staging buffer ``buf`` [N, 2 * S*S] (S = side + 1; canvas in the
    right half, left half zero) moved ``shift`` cells down the flat S-wide canvas, as
    uint8[len, side*side].

    A shift of r0 * S + c0 moves the staged grid to (r0, c0); reading from ``shift`` cells
    earlier takes zeros from the left half. The strided view below exposes, for every row
    and start cell, the side x side canvas seen from there, so one gather both translates
    and crops: EOS cells pushed into the last staging row or column fall off, as in the
    reference."""
    stage = side + 1
    n_rows, width = buf.shape
    view = np.lib.stride_tricks.as_strided(
        buf,
        shape=(n_rows, stage * stage + 1, side, side),
        strides=(buf.strides[0], 1, stage, 1),
        writeable=False,
    )
    return view[src, stage * stage - shift].reshape(len(src), side * side)


class ArcCodec:
    """The reference ARC codec on a ``canvas`` x ``canvas`` canvas; see the module docstring."""

    vocab_size: int = COLOUR_OFFSET + NUM_COLOURS
    pad_id: int = PAD
    ignore_label_id: int = PAD
    eos_id: int = EOS
    # encode_puzzle translates train grids, so the builder must not replace it by encode_batch
    batch_encodes_puzzles: bool = False

    def __init__(self, canvas: int = CANVAS) -> None:
        if not 1 <= canvas <= CANVAS:
            raise ValueError(f"the ARC canvas side must be 1..{CANVAS}, got {canvas}")
        self.canvas = canvas

    @property
    def seq_len(self) -> int:
        return self.canvas * self.canvas

    def encode(self, grid: np.ndarray) -> np.ndarray:
        """One grid at (0, 0) -> uint8[C*C]."""
        return self.encode_batch(check_grid(grid, self.canvas)[None])[0]

    def encode_batch(self, grids: np.ndarray) -> np.ndarray:
        """int[N, h, w] (one shape) at (0, 0) -> uint8[N, C*C]."""
        grids = np.asarray(grids)
        if grids.ndim != 3:
            raise ValueError(f"encode_batch needs int[N, h, w], got shape {grids.shape}")
        side = self.canvas
        out = np.zeros((len(grids), side + 1, side + 1), np.uint8)
        if len(grids):
            check_grid(grids[0], side)
            if grids.min() < 0 or grids.max() >= NUM_COLOURS:
                raise ValueError(f"ARC cells must be 0..{NUM_COLOURS - 1}")
            _stage_grids(out, grids.astype(np.uint8) + COLOUR_OFFSET)
        return np.ascontiguousarray(out[:, :side, :side]).reshape(len(grids), -1)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """C*C tokens -> the grid (colours 0..9), cropped as the reference evaluator does.

        The crop starts at the first colour token in row-major order: (0, 0) for every test
        row (where this is exactly the reference crop) and the grid's corner for translated
        train rows, so ``decode`` also inverts those. The evaluator itself uses the strict
        (0, 0) crop (`crop_shapes`); a canvas without colour decodes to a 0x0 grid.
        """
        tokens = np.asarray(tokens)
        (canvas,) = as_canvases(tokens.reshape(1, -1) if tokens.ndim < 3 else tokens)
        side = canvas.shape[0]
        colour = (canvas >= COLOUR_OFFSET) & (canvas < COLOUR_OFFSET + NUM_COLOURS)
        r0, c0 = divmod(int(np.argmax(colour.reshape(-1))), side)
        shifted = np.zeros_like(canvas)
        shifted[: side - r0, : side - c0] = canvas[r0:, c0:]
        return self.decode_batch(shifted[None])[0]

    @staticmethod
    def decode_batch(tokens: np.ndarray) -> list[np.ndarray]:
        """int[N, C*C] -> N grids cropped strictly at (0, 0), as the reference evaluator."""
        canvas = as_canvases(tokens)
        hs, ws = crop_shapes(canvas)
        return [
            canvas[i, :h, :w].astype(np.int64) - COLOUR_OFFSET
            for i, (h, w) in enumerate(zip(hs.tolist(), ws.tolist(), strict=True))
        ]

    def encode_puzzle(
        self, examples: Sequence[Example], *, split: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        side = self.canvas
        ins = [check_grid(e.input, side) for e in examples]
        outs = [check_grid(e.output, side) for e in examples]
        shapes = np.array([(a.shape, b.shape) for a, b in zip(ins, outs, strict=True)], np.int64)
        # the larger grid of each pair, as int[1, n] (one variant)
        heights, widths = shapes.reshape(1, len(ins), 2, 2).max(axis=2).transpose(2, 0, 1)
        r0, c0 = self._offsets(heights, widths, split, rng)
        # staged with room for the EOS row/column of a grid at the edge, then cropped to C x C
        staged = np.zeros((2, len(ins), side + 1, side + 1), np.uint8)
        for which, grids in enumerate((ins, outs)):
            for k, grid in enumerate(grids):
                view = staged[which, k, None, r0[0, k] :, c0[0, k] :]
                _stage_grids(view, grid[None].astype(np.uint8) + COLOUR_OFFSET)
        inputs, labels = np.ascontiguousarray(staged[:, :, :side, :side]).reshape(2, len(ins), -1)
        return inputs, labels

    def encode_variants(
        self,
        examples: Sequence[Example],
        transforms: np.ndarray,
        augmenter: Augmenter,
        *,
        split: str,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """All variants of one puzzle at once -> (inputs, labels), each uint8[V, n, C*C].

        Row v equals ``encode_puzzle`` of the examples transformed by ``transforms[v]``
        (identical for split "test", same distribution for "train"). With the ARC augmenter
        this costs O(n x 8) numpy calls instead of O(V x n) Python-level ones.
        """
        transforms = np.asarray(transforms).reshape(len(transforms), -1)
        if not isinstance(augmenter, ArcAugmenter):  # any other: the plain per-variant loop
            apply = augmenter.apply
            variants = (
                [Example(apply(t, e.input), apply(t, e.output)) for e in examples]
                for t in transforms
            )
            encoded = [self.encode_puzzle(v, split=split, rng=rng) for v in variants]
            return np.stack([x for x, _ in encoded]), np.stack([y for _, y in encoded])
        # Variants are processed sorted by dihedral id, so that each example grid needs one
        # gather and one slice write per id; a final gather per row restores the caller's
        # order and applies the translation.
        v, n = len(transforms), len(examples)
        side, stage = self.canvas, self.canvas + 1
        order = np.argsort(transforms[:, 0], kind="stable")
        # the colour maps shifted by the colour offset: variant_grids then yields tokens
        sorted_t = transforms[order].astype(np.uint8)
        sorted_t[:, 1:] += COLOUR_OFFSET
        hs = np.zeros((v, n), np.int64)  # larger grid of each pair, in sorted order
        ws = np.zeros((v, n), np.int64)
        bufs = [np.zeros((n, v, 2 * stage * stage), np.uint8) for _ in range(2)]
        for k, example in enumerate(examples):
            for buf, grid in zip(bufs, (example.input, example.output), strict=True):
                for rows, grids in augmenter.variant_grids(sorted_t, check_grid(grid, side)):
                    lo, hi = int(rows[0]), int(rows[-1]) + 1  # contiguous: sorted by id
                    view = buf[k, lo:hi, stage * stage :].reshape(hi - lo, stage, stage)
                    _stage_grids(view, grids)
                    np.maximum(hs[lo:hi, k], grids.shape[1], out=hs[lo:hi, k])
                    np.maximum(ws[lo:hi, k], grids.shape[2], out=ws[lo:hi, k])
        r0, c0 = self._offsets(hs, ws, split, rng)
        position = np.empty(v, np.int64)
        position[order] = np.arange(v)
        # output row (variant i, example k) <- staged row (k, position[i])
        src = (np.arange(n)[None, :] * v + position[:, None]).reshape(-1)
        shift = (r0 * stage + c0)[position].reshape(-1)
        inputs, labels = (
            _shift_out(buf.reshape(n * v, -1), src, shift, side).reshape(v, n, -1) for buf in bufs
        )
        return inputs, labels

    def _offsets(
        self, heights: np.ndarray, widths: np.ndarray, split: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offsets int[V, n] for pairs whose larger grid is heights x widths (int[V, n])."""
        if split == "test" or heights.size == 0:
            return np.zeros(heights.shape, np.int64), np.zeros(heights.shape, np.int64)
        if split != "train":
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        r0 = rng.integers(0, self.canvas - heights + 1)
        c0 = rng.integers(0, self.canvas - widths + 1)
        keep = rng.integers(0, heights.shape[1], size=heights.shape[0])
        rows = np.arange(heights.shape[0])
        r0[rows, keep] = 0
        c0[rows, keep] = 0
        return r0, c0
