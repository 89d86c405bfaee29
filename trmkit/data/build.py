"""`trmkit build`: source -> augmenter -> codec -> store, generic over tasks.

Algorithm (one pass over the raw puzzles, streaming into the store):

1. Resolve the source, check ``options`` against ``Source.options``, load the raw puzzles.
2. ``subsample``: keep a seeded random subset (order kept) of the puzzles with training
   examples (the reference's ``subsample_size``; puzzles with only test examples stay).
3. ``strict``: puzzles with test examples lose their training examples, so no
   demonstration of a held-out puzzle is trained on (the reference trains on them).
4. Every raw puzzle is one group in each split it has examples in. Its variants are the
   identity plus ``augmenter.draw(puzzle, num_aug, rng)`` (only for puzzles with training
   examples unless ``defaults.augment_test``); each variant's train examples become one
   puzzle of the train split, its test examples one puzzle of the test split, encoded with
   ``codec.encode_puzzle``. Puzzle identifiers: "shared" -> all 0 (one identifier);
   "per_variant" -> 0 is blank and each (puzzle, variant) of a puzzle with training
   examples gets the next id, the same in both splits; a puzzle without any (test-only, or
   held out by ``strict``) keeps the blank id 0, since no row could be trained for it.
   Ids are numbered in raw-puzzle order (the reference numbers all train groups first,
   then test-only groups; only the numbering differs).
5. Codec output is validated (dtype, shape, token range) and a misbehaving plugin is named.
6. On the grids of the first puzzles the identity and a few of the drawn transforms are
   tried (`_Builder.guard`): a transform that `invert` does not undo, or an identity that
   changes a grid, refuses the build in one line naming plugin, task and transform (such a
   dataset would make every inverted prediction silently wrong); nothing is written.

Randomness: `np.random.SeedSequence(seed)` spawns independent generators for subsampling,
augmentation draws and codec placement, so the same inputs and seed give byte-identical
arrays (the official Sudoku/Maze builders draw from unseeded RNGs).

Optional fast paths, the typed protocols of `trmkit.task` (checked at registration; see
docs/plugins.md, "Optional protocols"):
- `BatchAugmenter` (``apply_batch(transforms[N, k], grids[N, H, W]) -> [N, H, W]``) is used for
  square grids: one call per example grid for all variants of a puzzle.
- `BatchCodec` (``encode_batch(grids[N, H, W]) -> uint8[N, seq_len]``) replaces
  ``encode_puzzle`` for both splits unless the codec sets ``batch_encodes_puzzles = False``
  (a codec whose encode_puzzle depends on split or rng, e.g. ARC translation). As a safety
  net the first puzzles of each split are encoded both ways and the fast path is dropped if
  they differ.
- `VariantEncoder` (``encode_variants``) encodes all variants of a puzzle in one call.
- `VariantNamer` (``variant_name(puzzle_name, transform) -> str``) names variants in the
  store's identifier list (default: the name for the identity, else ``name|||v0-v1-...``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from trmkit.data.store import SplitMeta, StoreWriter, check_out_path
from trmkit.errors import ConfigError, PluginError, SourceError, TrmkitError, UnknownNameError
from trmkit.network import require_hub
from trmkit.task import (
    MAX_NUM_AUG,
    TASK_OPTIONS_KEY,
    BatchAugmenter,
    BatchCodec,
    Example,
    RawData,
    RawPuzzle,
    Source,
    SourceRequest,
    Task,
    VariantEncoder,
    VariantNamer,
    source_options,
)
from trmkit.textio import printable

GUARD_PUZZLES = 8
"""puzzles whose grids `_Builder.guard` tries (a build that fails it writes nothing)."""
GUARD_TRANSFORMS = 4
"""drawn transforms tried per puzzle (besides the identity)."""
BLOCK_TOKENS = 8 << 20
"""Rows are encoded and handed to the writer in blocks of about this many tokens."""
FASTPATH_CHECK_PUZZLES = 4


@attrs.frozen
class SplitSummary:
    groups: int
    puzzles: int
    examples: int
    nbytes: int
    """uncompressed bytes of inputs + labels"""


@attrs.frozen
class BuildSummary:
    task: str
    out: Path
    splits: Mapping[str, SplitSummary]
    num_puzzle_identifiers: int
    disk_bytes: int
    seconds: float
    num_aug: int
    seed: int
    source: str = ""
    """the source's own account of what it read (subsets, guards, notes)."""

    def lines(self) -> list[str]:
        # echoed names and paths without control characters (docs/errors.md)
        rows = [f"built {self.task} dataset in {printable(self.out)} ({self.seconds:.1f} s)"]
        if self.source:
            rows.append(f"  source: {printable(self.source)}")
        for name, split in self.splits.items():
            rows.append(
                f"  {name:<5}  groups {split.groups:>9,}  puzzles {split.puzzles:>10,}  "
                f"examples {split.examples:>11,}  {split.nbytes / 2**20:>9.1f} MiB uncompressed"
            )
        rows.append(
            f"  puzzle identifiers {self.num_puzzle_identifiers:,}  num_aug {self.num_aug}  "
            f"seed {self.seed}  on disk {self.disk_bytes / 2**20:.1f} MiB"
        )
        return rows


# --------------------------------------------------------------------------- helpers


def load_raw(task: Task, source: str | None, seed: int, options: Mapping[str, str]) -> RawData:
    """Resolve ``source``, check ``options`` and load the raw puzzles."""
    src, path = task.source_for(source)
    where = f"source {src.name!r} of task {task.name!r}"
    return _load_source(task, src, path, seed, source_options(options, where))


def _load_source(
    task: Task, src: Source, path: Path | None, seed: int, options: Mapping[str, str]
) -> RawData:
    """``src``'s raw puzzles; ``options`` are `source_options` already, checked here against
    the ones ``src`` accepts."""
    unknown = sorted(set(options) - set(src.options))
    if unknown:
        accepted = ", ".join(f"{key} ({text})" for key, text in src.options.items()) or "none"
        raise UnknownNameError(
            f"source {src.name!r} of task {task.name!r} has no option "
            f"{', '.join(repr(k) for k in unknown)}; accepted options: {accepted}"
        )
    if src.kind == "download":  # fail in one line at once when offline, not after retries
        require_hub(
            f"source {src.name!r} of task {task.name!r}",
            "build it where online, or pass a local copy: trmkit build --source DIR "
            "(trmkit train: --set data.source=DIR)",
        )
    try:
        raw = src.load(SourceRequest(path, seed, dict(options)))
    except TrmkitError:
        raise
    except OSError as exc:
        where = exc.filename or path or src.name
        reason = exc.strerror or exc
        raise SourceError(f"{where}: cannot read source {src.name!r}: {reason}") from None
    if not isinstance(raw, RawData):
        raise PluginError(
            f"task {task.name!r}: source {src.name!r} returned {type(raw).__name__}, not RawData"
        )
    return raw


def select_puzzles(
    puzzles: Sequence[RawPuzzle], subsample: int | None, strict: bool, rng: np.random.Generator
) -> list[RawPuzzle]:
    """Apply ``subsample`` (seeded, order kept, only puzzles with train examples) and
    ``strict`` (drop train examples of puzzles that have test examples)."""
    puzzles = list(puzzles)
    if subsample is not None:
        if subsample < 1:
            raise ConfigError(f"--subsample {subsample}: must be a positive number")
        trainable = [i for i, p in enumerate(puzzles) if p.train]
        if subsample < len(trainable):
            keep = set(np.asarray(trainable)[rng.choice(len(trainable), subsample, replace=False)])
            puzzles = [p for i, p in enumerate(puzzles) if i in keep or not p.train]
    if strict:
        puzzles = [attrs.evolve(p, train=()) if p.test and p.train else p for p in puzzles]
    return puzzles


def _variant_name(augmenter: Any, name: str, transform: np.ndarray, is_identity: bool) -> str:
    if isinstance(augmenter, VariantNamer):
        return str(augmenter.variant_name(name, transform))
    if is_identity:
        return name
    return name + "|||" + "-".join(str(int(v)) for v in transform)


class _Pending:
    """Transformed grids of whole groups of one split, waiting to be encoded."""

    def __init__(self) -> None:
        self.inputs: list[Any] = []  # segments: ndarray[n, h, w] or list of 2-D grids
        self.outputs: list[Any] = []
        self.rows = 0
        self.puzzle_sizes: list[int] = []
        self.puzzle_ids: list[np.ndarray] = []
        self.transforms: list[np.ndarray] = []
        self.group_sizes: list[int] = []
        self.group_names: list[str] = []
        self.encoded: list[tuple[np.ndarray, np.ndarray]] = []  # codec.encode_variants rows


class _Builder:
    def __init__(self, task: Task, writer: StoreWriter, seed: int, num_aug: int) -> None:
        from trmkit.plugins import owner_of

        self.task = task
        plugin = owner_of(task)
        self.who = f"plugin {plugin!r}, task {task.name!r}" if plugin else f"task {task.name!r}"
        self.codec = task.codec
        self.augmenter = task.augmenter
        self.writer = writer
        self.num_aug = num_aug
        aug_seq, codec_seq = np.random.SeedSequence([seed, 1]).spawn(2)
        self.aug_rng = np.random.default_rng(aug_seq)
        self.codec_rng = np.random.default_rng(codec_seq)
        self.k = int(self.augmenter.transform_size)
        self.identity = self._check_transform(self.augmenter.identity(), "identity()")
        self.shared_ids = task.defaults.puzzle_ids == "shared"
        self.identifiers = ["<blank>"]
        """the store's identifier names; the next per-variant id is its length"""
        self.guarded = 0
        self.block_rows = max(1, BLOCK_TOKENS // self.codec.seq_len)
        self.pending = {"train": _Pending(), "test": _Pending()}
        augmenter, codec = self.augmenter, self.codec
        self.apply_batch = augmenter.apply_batch if isinstance(augmenter, BatchAugmenter) else None
        fast = isinstance(codec, BatchCodec) and codec.batch_encodes_puzzles
        self.encode_variants = codec.encode_variants if isinstance(codec, VariantEncoder) else None
        self.fast_encode = {"train": fast, "test": fast}
        self.fast_checked = {"train": False, "test": False}

    # ---------------------------------------------------------------- validation

    def _check_transform(self, transform: Any, what: str) -> np.ndarray:
        array = np.asarray(transform)
        if array.shape != (self.k,) or not np.issubdtype(array.dtype, np.integer):
            raise PluginError(
                f"{self.who}: augmenter.{what} gave {array.dtype}{list(array.shape)}, "
                f"expected an int vector of transform_size {self.k}"
            )
        return array.astype(np.int64)

    def _check_drawn(self, drawn: Any, name: str) -> np.ndarray:
        """All drawn transforms as int64[T, k], checked in one go (one per row when the
        batch is malformed, to name the problem)."""
        try:
            array = np.asarray(drawn)
        except ValueError:  # ragged
            array = np.zeros(0)
        if array.ndim == 2 and array.shape[1] == self.k and np.issubdtype(array.dtype, np.integer):
            return array.astype(np.int64, copy=False)
        return np.stack([self._check_transform(t, f"draw() for {name!r}") for t in drawn])

    def _check_rows(self, rows: Any, n: int, what: str) -> np.ndarray:
        array = np.asarray(rows)
        seq_len, vocab = self.codec.seq_len, self.codec.vocab_size
        if array.shape != (n, seq_len) or not np.issubdtype(array.dtype, np.integer):
            raise PluginError(
                f"{self.who}: codec {what} gave {array.dtype}{list(array.shape)}, "
                f"expected uint8[{n}, {seq_len}]"
            )
        if array.size and (array.min() < 0 or array.max() >= vocab):
            raise PluginError(
                f"{self.who}: codec {what} produced token {int(array.max())} "
                f"outside the vocabulary 0..{vocab - 1}"
            )
        return array.astype(np.uint8, copy=False)

    # ---------------------------------------------------------------- per puzzle

    def add(self, puzzle: RawPuzzle) -> None:
        if not isinstance(puzzle, RawPuzzle):
            raise PluginError(f"{self.who}: source yielded {type(puzzle).__name__}, not RawPuzzle")
        transforms = self.identity[None, :]
        if self.num_aug > 0 and (bool(puzzle.train) or self.task.defaults.augment_test):
            drawn = self.augmenter.draw(puzzle, self.num_aug, self.aug_rng)
            if not isinstance(drawn, (list, tuple, np.ndarray)):
                raise PluginError(
                    f"{self.who}: augmenter.draw() for {puzzle.name!r} returned "
                    f"{type(drawn).__name__}, not a list of transforms (docs/plugins.md, "
                    f"section 3)"
                )
            if len(drawn):
                transforms = np.concatenate([transforms, self._check_drawn(drawn, puzzle.name)])
        if self.guarded < GUARD_PUZZLES:
            self.guarded += 1
            self.guard(puzzle, transforms[1 : 1 + GUARD_TRANSFORMS])
        count = len(transforms)
        if self.shared_ids or not puzzle.train:
            # a puzzle with no training examples (test-only, or held out by ``strict``) has
            # nothing to learn an embedding row from: the blank id, no entry in the table, so
            # `trmkit adapt` sees it as new (docs/data.md, the store layout)
            ids = np.zeros(count, dtype=np.int64)
        else:
            first = len(self.identifiers)
            ids = np.arange(first, first + count, dtype=np.int64)
            self.identifiers += [
                _variant_name(self.augmenter, puzzle.name, t, i == 0)
                for i, t in enumerate(transforms)
            ]
        for split, examples in (("train", puzzle.train), ("test", puzzle.test)):
            if examples:
                self._add_split(split, puzzle.name, examples, transforms, ids)

    def guard(self, puzzle: RawPuzzle, drawn: np.ndarray) -> None:
        """Refuse (PluginError) an identity that changes a grid of ``puzzle`` or a ``drawn``
        transform that ``invert`` does not undo."""
        augmenter, identity = self.augmenter, self.identity
        fix = "nothing was written; trmkit.testing.check_task(task) shows the failing property"
        for example in (*puzzle.train, *puzzle.test):
            for grid in (np.asarray(example.input), np.asarray(example.output)):
                size = f"{grid.shape[0]}x{grid.shape[1]} grid of puzzle {puzzle.name!r}"
                for name, fn in (("apply", augmenter.apply), ("invert", augmenter.invert)):
                    if not np.array_equal(fn(identity, grid), grid):
                        raise PluginError(
                            f"{self.who}: augmenter.{name} with identity() {identity.tolist()} "
                            f"changes a {size}; identity() must change nothing ({fix})"
                        )
                for transform in drawn:
                    moved = np.asarray(augmenter.apply(transform, grid))
                    if not np.array_equal(augmenter.invert(transform, moved), grid):
                        raise PluginError(
                            f"{self.who}: augmenter.invert does not undo apply for transform "
                            f"{transform.tolist()} on a {size}; every inverted prediction "
                            f"would be wrong ({fix})"
                        )

    def _transformed(self, transforms: np.ndarray, grid: np.ndarray, puzzle: str) -> Any:
        """The grid under every transform: ndarray[T, h, w] from ``apply_batch`` (square
        grids), else a list of T grids."""
        if len(transforms) > 1 and self.apply_batch is not None and grid.shape[0] == grid.shape[1]:
            batch = np.repeat(grid[None], len(transforms), axis=0)
            out = np.asarray(self.apply_batch(transforms, batch))
            if out.shape != batch.shape:
                raise PluginError(
                    f"{self.who}: augmenter.apply_batch returned shape "
                    f"{out.shape} for {batch.shape} (puzzle {puzzle!r})"
                )
            return out
        return [grid] + [np.asarray(self.augmenter.apply(t, grid)) for t in transforms[1:]]

    def _add_split(
        self,
        split: str,
        name: str,
        examples: Sequence[Example],
        transforms: np.ndarray,
        ids: np.ndarray,
    ) -> None:
        pending = self.pending[split]
        count, per = len(transforms), len(examples)
        if self.encode_variants is not None:
            encoded = self.encode_variants(
                examples, transforms, self.augmenter, split=split, rng=self.codec_rng
            )
            rows, what = count * per, f"encode_variants ({split})"
            enc_in, enc_lab = (
                self._check_rows(np.asarray(e).reshape(rows, -1), rows, what) for e in encoded
            )
            pending.encoded.append((enc_in, enc_lab))
        else:
            for attr, target in (("input", pending.inputs), ("output", pending.outputs)):
                per_example = [
                    self._transformed(transforms, np.asarray(getattr(e, attr)), name)
                    for e in examples
                ]
                # variant-major order: all examples of variant 0, then variant 1, ...
                grids = [g[t] for t in range(count) for g in per_example]
                same = all(g.shape == grids[0].shape for g in grids)
                target.append(np.stack(grids) if same else grids)
        pending.rows += count * per
        pending.puzzle_sizes.extend([per] * count)
        pending.puzzle_ids.append(ids)
        pending.transforms.append(transforms)
        pending.group_sizes.append(count)
        pending.group_names.append(name)
        if pending.rows >= self.block_rows:
            self.flush(split)

    # ---------------------------------------------------------------- encoding

    def _encode_fast(self, segments: list[Any], rows: int) -> np.ndarray:
        """encode_batch over same-shape grids, scattered back into row order."""
        by_shape: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]] = {}
        offset = 0
        for segment in segments:
            stacks = [segment] if isinstance(segment, np.ndarray) else [g[None] for g in segment]
            for grids in stacks:
                positions = np.arange(offset, offset + len(grids))
                by_shape.setdefault(grids.shape[1:], []).append((positions, grids))
                offset += len(grids)
        out = np.empty((rows, self.codec.seq_len), dtype=np.uint8)
        assert isinstance(self.codec, BatchCodec)  # fast_encode implies one
        for parts in by_shape.values():
            positions, grids = (np.concatenate(part) for part in zip(*parts, strict=True))
            out[positions] = self._check_rows(
                self.codec.encode_batch(grids), len(grids), "encode_batch"
            )
        return out

    def _encode_slow(
        self, split: str, pending: _Pending, rng: np.random.Generator, limit: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """encode_puzzle per puzzle (the plain contract), for the first ``limit`` puzzles."""
        flat_in = (g for segment in pending.inputs for g in segment)
        flat_out = (g for segment in pending.outputs for g in segment)
        inputs, labels = [], []
        for size in pending.puzzle_sizes[:limit]:
            examples = [Example(next(flat_in), next(flat_out)) for _ in range(size)]
            what = f"encode_puzzle ({split})"
            enc_in, enc_lab = self.codec.encode_puzzle(examples, split=split, rng=rng)
            inputs.append(self._check_rows(enc_in, size, what))
            labels.append(self._check_rows(enc_lab, size, what))
        return np.concatenate(inputs), np.concatenate(labels)

    def flush(self, split: str) -> None:
        pending = self.pending[split]
        if not pending.group_sizes:
            return
        if pending.encoded:
            inputs, labels = (np.concatenate(part) for part in zip(*pending.encoded, strict=True))
        elif self.fast_encode[split]:
            inputs = self._encode_fast(pending.inputs, pending.rows)
            labels = self._encode_fast(pending.outputs, pending.rows)
            if not self.fast_checked[split]:
                self.fast_checked[split] = True
                n = min(FASTPATH_CHECK_PUZZLES, len(pending.puzzle_sizes))
                ref_in, ref_lab = self._encode_slow(split, pending, np.random.default_rng(0), n)
                rows = len(ref_in)
                self.fast_encode[split] = np.array_equal(ref_in, inputs[:rows]) and np.array_equal(
                    ref_lab, labels[:rows]
                )
        if not pending.encoded and not self.fast_encode[split]:
            inputs, labels = self._encode_slow(split, pending, self.codec_rng)
        writer = self.writer.split(split, seq_len=self.codec.seq_len, transform_size=self.k)
        writer.append(
            inputs,
            labels,
            puzzle_sizes=np.asarray(pending.puzzle_sizes),
            puzzle_ids=np.concatenate(pending.puzzle_ids),
            transforms=np.concatenate(pending.transforms),
            group_sizes=np.asarray(pending.group_sizes),
            group_names=pending.group_names,
        )
        self.pending[split] = _Pending()


def commit_store(
    writer: StoreWriter,
    task: Task,
    identifiers: Sequence[str],
    num_ids: int,
    blank_id: int = 0,
    **record: Any,
) -> dict[str, SplitMeta]:
    """Commit ``writer`` with the root attributes of every store (docs/data.md, the store
    layout): ``record`` holds what was read (source .. options), the rest comes from
    ``task``; build and import both write through here, so the keys and their order agree."""
    codec = task.codec
    common = {
        "vocab_size": codec.vocab_size,
        "pad_id": codec.pad_id,
        "ignore_label_id": codec.ignore_label_id,
        "blank_identifier_id": blank_id,
        "num_puzzle_identifiers": num_ids,
    }
    root_attrs = {
        "task": task.name,
        "task_version": task.version,
        **record,
        "puzzle_ids": task.defaults.puzzle_ids,
        "augment_test": task.defaults.augment_test,
        "transform_size": int(task.augmenter.transform_size),
        "seq_len": codec.seq_len,
        **common,
    }
    if task.configure is not None and record["options"]:  # readers rebuild it (Task.for_store)
        root_attrs[TASK_OPTIONS_KEY] = json.dumps(dict(record["options"]), sort_keys=True)
    return writer.commit(root_attrs, common, identifiers)


def build_dataset(
    task: Task,
    out: str | Path,
    *,
    source: str | None = None,
    num_aug: int | None = None,
    subsample: int | None = None,
    seed: int = 0,
    strict: bool = False,
    options: Mapping[str, str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> BuildSummary:
    """Build the dataset store of ``task`` at ``out`` (see the module docstring)."""
    started = time.perf_counter()
    out = Path(out)
    options = source_options(options or {}, "data.options")
    num_aug = task.defaults.num_aug if num_aug is None else int(num_aug)
    if not 0 <= num_aug <= MAX_NUM_AUG:
        raise ConfigError(f"--num-aug {num_aug}: must be between 0 and {MAX_NUM_AUG}")
    if seed < 0:
        raise ConfigError(f"--seed {seed}: must be >= 0")
    check_out_path(out, force)
    src, path = task.source_for(source)  # once: a name/path clash warns once
    raw = _load_source(task, src, path, seed, options)  # checks the options first
    task = task.with_options(options)  # an option may set the encoding (ARC's canvas)
    sub_seq = np.random.SeedSequence([seed, 0])
    puzzles = select_puzzles(raw.puzzles, subsample, strict, np.random.default_rng(sub_seq))
    if not puzzles:
        where = f"--source {source}" if source else f"its default source {task.defaults.source!r}"
        raise SourceError(
            f"task {task.name!r}: {where} produced no puzzles (an empty or header-only file, "
            "or options that select none); check the file or the options"
        )
    from tqdm import tqdm

    shown = progress and sys.stderr.isatty()
    with StoreWriter(out, force=force) as writer:
        builder = _Builder(task, writer, seed, num_aug)
        with tqdm(
            puzzles, "build", unit="puzzle", file=sys.stderr, leave=False, disable=not shown
        ) as bar:
            for puzzle in bar:
                builder.add(puzzle)
        for split in ("train", "test"):
            builder.flush(split)
        num_ids = len(builder.identifiers)  # 1 (the blank) for shared ids
        metas = commit_store(
            writer,
            task,
            builder.identifiers,
            num_ids,
            source=src.name,
            source_path=str(path) if path is not None else None,
            source_files=dict(raw.files),
            source_description=raw.description,
            seed=seed,
            num_aug=num_aug,
            subsample=subsample,
            strict=strict,
            options=options,
        )
    splits = {
        name: SplitSummary(
            meta.total_groups,
            meta.total_puzzles,
            meta.total_examples,
            2 * meta.total_examples * meta.seq_len,
        )
        for name, meta in metas.items()
    }
    return BuildSummary(
        task=task.name,
        out=out,
        splits=splits,
        num_puzzle_identifiers=num_ids,
        disk_bytes=sum(f.stat().st_size for f in out.rglob("*") if f.is_file()),
        seconds=time.perf_counter() - started,
        num_aug=num_aug,
        seed=seed,
        source=raw.description,
    )
