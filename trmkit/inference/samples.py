"""Samples made different by a task's own augmentations, and their way back.

Every sample is relative to its row: row b's input grid g becomes ``apply(t, g)`` for a
transform t drawn by the task's augmenter, and the prediction p of that sample comes back
as ``encode(invert(t, decode(p)))``, in the row's own frame, before anything compares or
votes. Draws are seeded per row (seed, row key), so a row gets the same samples whatever
batch or process it is evaluated in. Uses the batched fast paths
(`trmkit.task.BatchAugmenter`, `trmkit.task.BatchCodec`) when the task has them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from trmkit.task import Augmenter, BatchAugmenter, BatchCodec, Codec, Example, RawPuzzle

INVALID = -1
"""Token written over a whole row whose prediction cannot be decoded or mapped back."""


def attempt(fn: Callable[..., Any], *args: Any) -> np.ndarray | None:
    """``fn(*args)`` as an array, or None where the task's code refuses the input."""
    try:
        return np.asarray(fn(*args))
    except (ValueError, IndexError):
        return None


def decode_rows(codec: Codec, tokens: np.ndarray) -> list[np.ndarray | None]:
    """Grids of token rows (None where the codec cannot decode a row)."""
    return [attempt(codec.decode, np.asarray(row)) for row in tokens]


def _same_shape(grids: Sequence[np.ndarray | None]) -> tuple[int, ...] | None:
    """The common shape of ``grids`` when every one is present and they all share it."""
    first = grids[0] if grids else None
    if first is None or any(g is None or g.shape != first.shape for g in grids):
        return None
    return tuple(first.shape)


def _encode_rows(codec: Codec, grids: Sequence[np.ndarray | None], seq_len: int) -> np.ndarray:
    out = np.full((len(grids), seq_len), INVALID, dtype=np.int16)
    if _same_shape(grids) is not None and isinstance(codec, BatchCodec):
        # a grid the batched path rejects falls back to the per-row encoder below
        with contextlib.suppress(ValueError, IndexError):
            return np.asarray(codec.encode_batch(np.stack(grids)), dtype=np.int16)  # type: ignore[arg-type]
    for i, grid in enumerate(grids):
        if grid is None:
            continue
        with contextlib.suppress(ValueError, IndexError, OverflowError):
            out[i] = np.asarray(codec.encode(grid), dtype=np.int16)
    return out


def _map(
    augmenter: Augmenter, transforms: np.ndarray, grids: list[np.ndarray | None], inverse: bool
) -> list[np.ndarray | None]:
    shape = _same_shape(grids)
    square = shape is not None and len(shape) == 2 and shape[0] == shape[1]
    if square and isinstance(augmenter, BatchAugmenter):
        fn = augmenter.invert_batch if inverse else augmenter.apply_batch
        # a transform the batched path rejects falls back to the per-row calls below
        with contextlib.suppress(ValueError, IndexError):
            return list(np.asarray(fn(transforms, np.stack(grids))))  # type: ignore[arg-type]
    one = augmenter.invert if inverse else augmenter.apply
    return [
        None if grid is None else attempt(one, t, grid)
        for t, grid in zip(transforms, grids, strict=True)
    ]


REDRAWS = 8
"""attempts at a transform not drawn before for the same row."""


def draw_transforms(
    augmenter: Augmenter,
    input_grids: Sequence[np.ndarray | None],
    keys: np.ndarray,
    count: int,
    seed: int,
) -> np.ndarray:
    """int [count, B, transform_size]: ``count`` non-identity transforms per row, drawn one
    at a time with ``default_rng([seed, key])`` so that the draws are nested (the first
    S - 1 of any larger count are exactly what ``--samples S`` uses, which the sweep relies
    on); a repeat of an earlier draw is redrawn a few times, and when the augmenter offers
    fewer distinct ones than asked (a maze has 7), they repeat in order."""
    identity = np.asarray(augmenter.identity())
    out = np.repeat(identity[None, None], count, axis=0).repeat(len(keys), axis=1)
    for b, (grid, key) in enumerate(zip(input_grids, keys, strict=True)):
        if grid is None or count == 0:
            continue
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(key) & 0xFFFFFFFFFFFF])
        puzzle = RawPuzzle(f"row-{int(key)}", test=(Example(grid, grid),))
        drawn: list[np.ndarray] = []
        for _ in range(count):
            for _attempt in range(REDRAWS):
                got = [np.asarray(t) for t in augmenter.draw(puzzle, 1, rng)]
                if got and not any(np.array_equal(got[0], t) for t in drawn):
                    drawn.append(got[0])
                    break
        if drawn:
            out[:, b] = [drawn[j % len(drawn)] for j in range(count)]
    return out


def augmented_inputs(
    codec: Codec,
    augmenter: Augmenter,
    input_grids: list[np.ndarray | None],
    transforms: np.ndarray,
    fallback: np.ndarray,
) -> np.ndarray:
    """Token rows of ``apply(transforms[b], input_grids[b])`` (``fallback`` rows where a
    grid cannot be transformed or encoded)."""
    grids = _map(augmenter, transforms, input_grids, inverse=False)
    tokens = _encode_rows(codec, grids, fallback.shape[1])
    bad = (tokens == INVALID).any(axis=1)
    tokens[bad] = fallback[bad]
    return tokens.astype(fallback.dtype)


def to_row_frame(
    codec: Codec, augmenter: Augmenter, transforms: np.ndarray, predictions: np.ndarray
) -> np.ndarray:
    """Predicted token rows of augmented samples mapped back to their rows' frame
    (``INVALID`` rows where decoding or the inverse fails)."""
    grids = decode_rows(codec, predictions)
    return _encode_rows(
        codec, _map(augmenter, transforms, grids, inverse=True), predictions.shape[1]
    )


__all__ = [
    "INVALID",
    "attempt",
    "augmented_inputs",
    "decode_rows",
    "draw_transforms",
    "to_row_frame",
]
