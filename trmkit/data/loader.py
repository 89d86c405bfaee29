"""Batches from a store split: group sampling for training, file order for evaluation.

Training (as the official `puzzle_dataset.py`): an iteration is ``epochs_per_iter``
epochs; each epoch is a random permutation of the groups; each group contributes one
uniformly chosen puzzle with all its examples in random order, or, when that would overflow
the batch, a random subset that exactly fills it (the rest of that puzzle is dropped);
batches may span epochs inside an iteration and the final partial batch of an iteration is
dropped. Every rank computes the same global batch and keeps its contiguous slice
``[rank*local, (rank+1)*local)``.

Deviations from the reference, on purpose:
- all randomness comes from one generator per (seed, iteration, epoch) — the reference
  draws the within-puzzle subset from the unseeded global numpy RNG — so a run is
  reproducible and a loader restored from `state_dict` yields exactly the same batches;
- the index arithmetic of an epoch is vectorised (one permutation, one ``integers`` call,
  one sort for the in-puzzle shuffles) and rows are gathered with one fancy index per batch
  (from RAM when the split fits, else one sorted Zarr selection).

Batches are dicts of CPU tensors: ``inputs`` and ``labels`` int32 [local_B, seq_len]
(stored ``ignore_label_id`` -> ``trmkit.batch.IGNORE_LABEL_ID``), ``puzzle_identifiers``
int32 [local_B]; evaluation batches add ``puzzle_index`` int32 and ``example_index`` int64
(-1 on padding rows). The batch contract is `trmkit.batch`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from trmkit.batch import IGNORE_LABEL_ID
from trmkit.data.store import SplitReader
from trmkit.errors import ConfigError, StoreError

STATE_VERSION = 1


def ram_limit_bytes() -> int:
    """Splits up to this many uncompressed bytes are loaded into RAM: TRMKIT_RAM_LIMIT_GB,
    else half the physical memory."""
    value = os.environ.get("TRMKIT_RAM_LIMIT_GB")
    if value:
        try:
            return int(float(value) * 2**30)
        except ValueError:
            raise ConfigError(f"TRMKIT_RAM_LIMIT_GB={value!r}: expected a number") from None
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 2
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def _prepare(split: SplitReader, in_memory: bool | None) -> None:
    if in_memory is None:
        in_memory = split.nbytes <= ram_limit_bytes()
    if in_memory:
        split.load()


def step_budget(meta: Any, global_batch_size: int, epochs: float = 1.0) -> float:
    """Optimiser steps in ``epochs`` epochs as the official code counts them:
    epochs * total_groups * mean_puzzle_examples / global_batch_size (the trainer's budget is
    its int())."""
    return epochs * meta.total_groups * meta.mean_puzzle_examples / global_batch_size


def _check_sharding(global_batch_size: int, rank: int, world_size: int) -> int:
    if global_batch_size < 1:
        raise ConfigError(f"global batch size {global_batch_size}: must be positive")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} of world size {world_size}: need 0 <= rank < world size")
    if global_batch_size % world_size:
        raise ConfigError(
            f"global batch size {global_batch_size} is not divisible by the {world_size} "
            f"processes; choose a multiple of {world_size}"
        )
    return global_batch_size // world_size


class TrainLoader:
    """Group-sampled training batches of one split (see the module docstring).

    Iterating yields the batches of the current iteration from the current position, then
    moves to the next iteration; `state_dict`/`load_state_dict` capture that position."""

    def __init__(
        self,
        split: SplitReader,
        global_batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        epochs_per_iter: int = 1,
        in_memory: bool | None = None,
    ) -> None:
        self.split = split
        self.global_batch_size = int(global_batch_size)
        self.local_batch_size = _check_sharding(self.global_batch_size, rank, world_size)
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        if epochs_per_iter < 1:
            raise ConfigError(f"epochs_per_iter {epochs_per_iter}: must be >= 1")
        self.epochs_per_iter = int(epochs_per_iter)
        self._gi = split.group_indices.astype(np.int64)
        self._pi = split.puzzle_indices.astype(np.int64)
        self._sizes = np.diff(self._pi)
        groups = len(self._gi) - 1
        if groups < 1:
            raise StoreError(f"{split}: the split has no groups to train on")
        largest = np.maximum.reduceat(self._sizes, self._gi[:-1]) if len(self._sizes) else [0]
        if int(np.sum(largest)) * self.epochs_per_iter < self.global_batch_size:
            raise ConfigError(
                f"{split} holds too few examples for one batch of {self.global_batch_size} per "
                f"iteration; lower the global batch size or raise epochs_per_iter"
            )
        self._single = bool(len(self._sizes) and (self._sizes == 1).all())
        _prepare(split, in_memory)
        self.iteration = 0
        self._epoch = 0
        self._carry = np.zeros(0, dtype=np.int64)
        self._skip = 0

    @property
    def steps_per_epoch(self) -> float:
        """Nominal batches per epoch (`step_budget` of one epoch)."""
        return step_budget(self.split.meta, self.global_batch_size)

    # ---------------------------------------------------------------- schedule

    def _epoch_stream(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(rows of the chosen puzzles in stream order, end offset of each chosen puzzle)."""
        order = rng.permutation(len(self._gi) - 1)
        chosen = rng.integers(self._gi[order], self._gi[order + 1])
        sizes = self._sizes[chosen]
        starts = self._pi[chosen]
        ends = np.cumsum(sizes)
        if self._single:
            return starts, ends
        owner = np.repeat(np.arange(len(chosen)), sizes)
        within = np.arange(int(ends[-1])) - np.repeat(ends - sizes, sizes)
        # shuffle inside each puzzle: sort by (owner, random key) in one argsort
        shuffled = within[np.argsort(owner + rng.random(len(owner)), kind="stable")]
        return starts[owner] + shuffled, ends

    def _epoch_batches(
        self, iteration: int, epoch: int, carry: np.ndarray
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Global batches completed in this epoch and the partial batch carried onwards."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, iteration, epoch]))
        stream, ends = self._epoch_stream(rng)
        batches: list[np.ndarray] = []
        start = 0
        size = self.global_batch_size
        while True:
            need = size - len(carry)
            last = int(np.searchsorted(ends, start + need, side="left"))
            if last >= len(ends):
                return batches, np.concatenate([carry, stream[start:]])
            batches.append(np.concatenate([carry, stream[start : start + need]]))
            carry = stream[:0]
            start = int(ends[last])  # the rest of an overflowing puzzle is dropped

    def _positions(self) -> Iterator[tuple[tuple[int, int, np.ndarray, int], np.ndarray]]:
        """(position, rows) of every remaining batch of the current iteration."""
        iteration, epoch, carry, skip = self.iteration, self._epoch, self._carry, self._skip
        while epoch < self.epochs_per_iter:
            batches, next_carry = self._epoch_batches(iteration, epoch, carry)
            for index in range(skip, len(batches)):
                yield (iteration, epoch, carry, index), batches[index]
            epoch, carry, skip = epoch + 1, next_carry, 0

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        positions = self._positions()
        upcoming = next(positions, None)
        if upcoming is None:  # an iteration whose draws cannot fill one batch
            self._next_iteration()
        while upcoming is not None:
            _, rows = upcoming
            upcoming = next(positions, None)
            # the state always names the next batch to yield (or the next iteration), so a
            # state_dict taken after any batch restores exactly
            if upcoming is None:
                self._next_iteration()
            else:
                _, self._epoch, self._carry, self._skip = upcoming[0]
            yield self._batch(rows)

    def _next_iteration(self) -> None:
        self.iteration += 1
        self._epoch, self._carry, self._skip = 0, np.zeros(0, np.int64), 0

    def _batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        local = rows[self.rank * self.local_batch_size : (self.rank + 1) * self.local_batch_size]
        puzzles = np.searchsorted(self._pi, local, side="right") - 1
        inputs, labels = self.split.rows(local)
        labels32 = labels.astype(np.int32)
        labels32[labels == self.split.meta.ignore_label_id] = IGNORE_LABEL_ID
        ids = self.split.puzzle_identifiers[puzzles].astype(np.int32)
        return {
            "inputs": torch.from_numpy(inputs.astype(np.int32)),
            "labels": torch.from_numpy(labels32),
            "puzzle_identifiers": torch.from_numpy(ids),
        }

    # ---------------------------------------------------------------- resume

    def state_dict(self) -> dict[str, Any]:
        """A JSON-able position: iteration, epoch, the rows carried into that epoch and the
        number of its batches already yielded."""
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "global_batch_size": self.global_batch_size,
            "epochs_per_iter": self.epochs_per_iter,
            "iteration": self.iteration,
            "epoch": self._epoch,
            "carry": [int(v) for v in self._carry],
            "skip": self._skip,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ConfigError(f"loader state version {state.get('version')!r} is not supported")
        for key in ("seed", "global_batch_size", "epochs_per_iter"):
            if state[key] != getattr(self, key):
                raise ConfigError(
                    f"loader state was saved with {key}={state[key]}, this loader has "
                    f"{getattr(self, key)}; resume with the same settings"
                )
        self.iteration = int(state["iteration"])
        self._epoch = int(state["epoch"])
        self._carry = np.asarray(state["carry"], dtype=np.int64)
        self._skip = int(state["skip"])


class EvalLoader:
    """All examples in file order, ``global_batch_size`` per step, each rank its slice; the
    last batch is padded (inputs pad_id, labels IGNORE_LABEL_ID, blank puzzle id, indices -1)."""

    def __init__(
        self,
        split: SplitReader,
        global_batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        in_memory: bool | None = None,
    ) -> None:
        self.split = split
        self.global_batch_size = int(global_batch_size)
        self.local_batch_size = _check_sharding(self.global_batch_size, rank, world_size)
        self.rank = rank
        self.world_size = world_size
        self._pi = split.puzzle_indices.astype(np.int64)
        self.total_examples = int(self._pi[-1])
        _prepare(split, in_memory)

    def __len__(self) -> int:
        return -(-self.total_examples // self.global_batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        meta = self.split.meta
        local = self.local_batch_size
        for step in range(len(self)):
            first = step * self.global_batch_size + self.rank * local
            start, stop = min(first, self.total_examples), min(first + local, self.total_examples)
            inputs, labels = self.split.row_range(start, stop)
            real = stop - start
            rows = np.full(local, -1, dtype=np.int64)
            rows[:real] = np.arange(start, stop)
            puzzles = np.full(local, -1, dtype=np.int64)
            puzzles[:real] = np.searchsorted(self._pi, rows[:real], side="right") - 1
            batch_inputs = np.full((local, meta.seq_len), meta.pad_id, dtype=np.int32)
            batch_inputs[:real] = inputs
            batch_labels = np.full((local, meta.seq_len), IGNORE_LABEL_ID, dtype=np.int32)
            batch_labels[:real] = labels
            batch_labels[:real][labels == meta.ignore_label_id] = IGNORE_LABEL_ID
            ids = np.full(local, meta.blank_identifier_id, dtype=np.int32)
            ids[:real] = self.split.puzzle_identifiers[puzzles[:real]]
            yield {
                "inputs": torch.from_numpy(batch_inputs),
                "labels": torch.from_numpy(batch_labels),
                "puzzle_identifiers": torch.from_numpy(ids),
                "puzzle_index": torch.from_numpy(puzzles.astype(np.int32)),
                "example_index": torch.from_numpy(rows),
            }
