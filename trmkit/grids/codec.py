"""The "cell value + 1" codec used by Sudoku and Maze: PAD 0, value v -> token v + 1.

A grid of fixed shape (rows, cols) with cell values 0..num_values-1 becomes ``rows*cols``
tokens in row-major order; the vocabulary is ``num_values + 1`` (PAD included). Labels use
the same map, so ``ignore_label_id`` 0 ignores nothing on a full grid (as the official
Sudoku and Maze builders).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import numpy as np

from trmkit.task import Example


@attrs.frozen
class OffsetCodec:
    rows: int
    cols: int
    num_values: int
    pad_id: int = 0
    ignore_label_id: int = 0
    batch_encodes_puzzles: ClassVar[bool] = True
    """`trmkit.task.BatchCodec`: encode_puzzle is encode_batch of inputs and outputs."""

    @property
    def seq_len(self) -> int:
        return self.rows * self.cols

    @property
    def vocab_size(self) -> int:
        return self.num_values + 1

    def encode(self, grid: np.ndarray) -> np.ndarray:
        return self.encode_batch(np.asarray(grid)[None])[0]

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens -> grid; a PAD or out-of-vocabulary token decodes to -1 (never valid)."""
        return self.decode_batch(np.asarray(tokens).reshape(1, self.seq_len))[0]

    def encode_batch(self, grids: np.ndarray) -> np.ndarray:
        """int[N, rows, cols] -> uint8[N, seq_len] (the builder's fast path)."""
        grids = np.asarray(grids)
        if grids.shape[-2:] != (self.rows, self.cols):
            raise ValueError(
                f"grid shape {grids.shape[-2:]} does not match the codec's {self.rows}x{self.cols}"
            )
        if grids.size and (grids.min() < 0 or grids.max() >= self.num_values):
            raise ValueError(f"cell values must be 0..{self.num_values - 1}")
        return (grids.reshape(len(grids), -1) + 1).astype(np.uint8)

    def decode_batch(self, tokens: np.ndarray) -> np.ndarray:
        """int[N, seq_len] -> int[N, rows, cols]; invalid tokens become -1."""
        tokens = np.asarray(tokens).astype(np.int64).reshape(-1, self.rows, self.cols)
        grids = tokens - 1
        grids[(tokens < 1) | (tokens > self.num_values)] = -1
        return grids

    def encode_puzzle(
        self, examples: Sequence[Example], *, split: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        if not examples:
            empty = np.zeros((0, self.seq_len), np.uint8)
            return empty, empty.copy()
        inputs = self.encode_batch(np.stack([np.asarray(e.input) for e in examples]))
        labels = self.encode_batch(np.stack([np.asarray(e.output) for e in examples]))
        return inputs, labels
