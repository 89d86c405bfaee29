"""The conformance kit: property-based proof that a task keeps the `trmkit.task` contract.

One call checks everything a plugin author can get silently wrong::

    from trmkit.testing import check_task
    check_task(my_task)                 # raises ConformanceError naming the property

or, in a pytest module, one test per property::

    from trmkit.testing import TaskConformance

    class TestLifeStep(TaskConformance):
        task = make_task()              # or a property / fixture-free factory

`Subject.of` first refuses a task that breaks the static contract registration checks
(`trmkit.task.contract_problem`: field types, codec sizes, pad/ignore ids inside the
vocabulary, partial optional protocols, sources); then the behaviour is proved by the
properties (`CHECKS`, each also a function of this module taking a `Subject`):

- ``codec``: ``decode(encode(g)) == g`` with ``seq_len`` tokens below ``vocab_size``;
  ``encode_puzzle`` shapes and token range in both splits; test-split rows decode back to
  their input grids (canonical test encodings).
- ``codec_batch``: `BatchCodec.encode_batch` equals ``encode`` row by row and, when
  ``batch_encodes_puzzles``, equals ``encode_puzzle`` in both splits; `VariantEncoder`
  ``encode_variants`` equals ``encode_puzzle`` of the transformed examples (test split).
- ``identity``: ``identity()`` is an int vector of ``transform_size`` and changes no grid.
- ``invert``: ``invert(t, apply(t, g)) == g`` for drawn transforms on real and generated
  grids, and transformed real grids still encode (the augmentation preserves the alphabet).
- ``draw``: the same seed gives the same transforms; at most ``num_aug`` of them, each an
  int vector of ``transform_size``, none the identity, no two equal.
- ``augmenter_batch``: `BatchAugmenter` ``apply_batch`` / ``invert_batch`` equal the scalar
  forms; `VariantNamer` names the identity by the puzzle name and distinct transforms
  distinctly.
- ``evaluator``: perfect predictions score ``headline`` 1.0 (also fed in two batches, with
  a padding row of garbage), corrupted predictions score it lower, every metric is a
  finite float, and each ``start`` begins afresh.
- ``answer_checker``: when the evaluator is a `trmkit.task.AnswerChecker`, ``check_answer``
  returns a bool, accepts every sample puzzle's label as the answer to its input, and
  rejects the label with one cell changed to another value of the alphabet.
- ``recipe``: ``defaults.recipe`` (when set) loads, and trains this task (or another task
  registered under the name it gives).
- ``parse``: ``parse_puzzles(format_puzzle(p))`` (or of ``render`` of the query grid) gives
  back the queries; ``render`` and ``cell_text`` (per cell) return text for every real and
  generated grid; ``givens`` (when set) is a bool mask of the input's shape whose cells every
  sample puzzle's label keeps.

Grids come from a `GridSpec` (shape range and alphabet) inferred from sample puzzles of the
task's default source (or given), and transforms from ``augmenter.draw`` with seeds chosen
by hypothesis; failures shrink to a minimal grid/seed and the message names the task, the
property and what to fix. Only numpy, hypothesis and `trmkit.task` are imported up front
(the ``recipe`` property loads the recipe through `trmkit.config` when it runs).
"""

from __future__ import annotations

import functools
import math
import numbers
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as exc:  # a test-time dependency, not a runtime one
    raise ImportError(
        "trmkit.testing needs hypothesis: pip install 'trmkit[test]' (or hypothesis>=6.100)"
    ) from exc

from trmkit.task import (
    AnswerChecker,
    BatchAugmenter,
    BatchCodec,
    EvalContext,
    Example,
    PredictionBatch,
    RawData,
    RawPuzzle,
    SourceRequest,
    Task,
    VariantEncoder,
    VariantNamer,
    contract_problem,
)

__all__ = [
    "CHECKS",
    "ConformanceError",
    "GridSpec",
    "Subject",
    "TaskConformance",
    "check_task",
    "grids",
    "run_check",
    "sample_puzzles",
    "seeds",
    "transforms",
]


class ConformanceError(AssertionError):
    """A task broke its contract; the message names the task, the property and the fix."""


# --------------------------------------------------------------------------- strategies


@attrs.frozen
class GridSpec:
    """The grids a task works on: a range of shapes and the cell alphabet."""

    rows: tuple[int, int]
    """(min, max) number of rows."""
    cols: tuple[int, int]
    """(min, max) number of columns."""
    values: tuple[int, ...]
    """the cell values that occur (the task's alphabet)."""
    square: bool = False
    """every grid is square (rows == cols)."""

    @classmethod
    def infer(cls, puzzles: Iterable[RawPuzzle]) -> GridSpec:
        """The smallest spec covering every grid of ``puzzles`` (inputs and outputs)."""
        every = [
            np.asarray(g) for p in puzzles for e in (*p.train, *p.test) for g in (e.input, e.output)
        ]
        if not every:
            raise ValueError("no grids to infer a GridSpec from")
        rows, cols = zip(*(g.shape for g in every), strict=True)
        values = tuple(sorted({int(v) for g in every for v in np.unique(g)}))
        return cls((min(rows), max(rows)), (min(cols), max(cols)), values, rows == cols)


def grids(spec: GridSpec) -> st.SearchStrategy[np.ndarray]:
    """int64 grids of ``spec``'s shapes with cells drawn from its alphabet."""
    values = st.sampled_from(spec.values)
    if spec.square:
        lo, hi = max(spec.rows[0], spec.cols[0]), min(spec.rows[1], spec.cols[1])
        shapes = st.integers(lo, hi).map(lambda n: (n, n))
    else:
        shapes = st.tuples(st.integers(*spec.rows), st.integers(*spec.cols))
    return shapes.flatmap(lambda shape: hnp.arrays(np.int64, shape, elements=values))


def seeds() -> st.SearchStrategy[int]:
    """Seeds for ``np.random.default_rng``."""
    return st.integers(0, 2**32 - 1)


def transforms(
    task: Task, puzzles: Sequence[RawPuzzle], num_aug: int = 4
) -> st.SearchStrategy[np.ndarray]:
    """The identity or one of the transforms ``task.augmenter.draw`` gives for one of
    ``puzzles`` with a hypothesis-chosen seed."""
    augmenter = task.augmenter
    identity = np.asarray(augmenter.identity())

    def drawn(args: tuple[RawPuzzle, int]) -> list[np.ndarray]:
        puzzle, seed = args
        got = augmenter.draw(puzzle, num_aug, np.random.default_rng(seed))
        if not isinstance(got, (list, tuple, np.ndarray)):
            raise ConformanceError(
                f"task {task.name!r}, draw: draw returned {type(got).__name__}, not a list of "
                f"transforms (an empty list when there is none)"
            )
        return [np.asarray(t) for t in got]

    batches = st.tuples(st.sampled_from(list(puzzles)), seeds()).map(drawn)
    picked = batches.flatmap(lambda ts: st.sampled_from(ts) if ts else st.just(identity))
    return st.one_of(st.just(identity), picked)


def sample_puzzles(task: Task, count: int = 6, seed: int = 0) -> list[RawPuzzle]:
    """Up to ``count`` puzzles from the task's default source (asking a generator for few
    puzzles through its ``count`` / ``test_count`` options when it has them), keeping both
    puzzles with training and with test examples."""
    source = task.sources[task.defaults.source]
    options = {key: str(count) for key in ("count", "test_count") if key in source.options}
    where = f"task {task.name!r}: its default source {source.name!r}"
    try:
        raw = source.load(SourceRequest(None, seed, options))
    except Exception as exc:
        if source.kind == "path":
            raise ConformanceError(
                f"{where} cannot load without a path ({type(exc).__name__}: {exc}); pass "
                f"puzzles=[...] to check_task"
            ) from exc
        raise ConformanceError(
            f"{where} raised {type(exc).__name__}: {exc}; fix the source (or pass "
            f"puzzles=[...] to check_task)"
        ) from exc
    if not isinstance(raw, RawData):
        raise ConformanceError(
            f"{where} returned {type(raw).__name__}, not trmkit.task.RawData; return "
            f"RawData(puzzles=[...], files={{...}})"
        )
    puzzles = list(raw.puzzles)
    train = [p for p in puzzles if p.train and not p.test]
    test = [p for p in puzzles if p.test]
    half = max(1, count // 2)
    chosen = train[:half] + test[: count - min(half, len(train))]
    return chosen or puzzles[:count]


# --------------------------------------------------------------------------- the subject


@attrs.frozen
class Subject:
    """What the checks examine: a task, its sample puzzles and grid spec, and settings."""

    task: Task
    puzzles: Sequence[RawPuzzle]
    spec: GridSpec
    headline: str = "exact_accuracy"
    max_examples: int = 25
    num_aug: int = 4

    @classmethod
    def of(
        cls,
        task: Task,
        puzzles: Sequence[RawPuzzle] | None = None,
        spec: GridSpec | None = None,
        **options: Any,
    ) -> Subject:
        if not isinstance(task, Task):
            raise ConformanceError(f"{type(task).__name__} is not a trmkit.task.Task")
        problem = contract_problem(task)
        if problem is not None:
            raise ConformanceError(f"task {task.name!r}: {problem} (registration refuses it)")
        puzzles = list(puzzles) if puzzles is not None else sample_puzzles(task)
        if not puzzles:
            raise ConformanceError(
                f"task {task.name!r}: no sample puzzles (the default source gave none); pass "
                f"puzzles=[...]"
            )
        return cls(task, puzzles, spec or GridSpec.infer(puzzles), **options)

    def fail(self, check: str, message: str) -> ConformanceError:
        return ConformanceError(f"task {self.task.name!r}, {check}: {message}")

    def for_all(self, *strategies: st.SearchStrategy[Any]) -> Callable[[Callable[..., None]], None]:
        """Decorator that runs the property it decorates at once, on what hypothesis draws from
        ``strategies``, with this subject's settings (no deadline: plugin code may be slow on
        its first call)."""

        def run(test: Callable[..., None]) -> None:
            settings(
                max_examples=self.max_examples,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                database=None,
            )(given(*strategies)(test))()

        return run

    def examples(self) -> list[Example]:
        return [e for p in self.puzzles for e in (*p.train, *p.test)]

    def real_grids(self) -> list[np.ndarray]:
        return [np.asarray(g) for e in self.examples() for g in (e.input, e.output)]

    def on_grids(self, check: Callable[[np.ndarray, str], None]) -> None:
        """``check(grid, where)`` on every real grid, then on generated ones."""
        for grid in self.real_grids():
            check(grid, "a real grid")
        self.for_all(grids(self.spec))(lambda grid: check(grid, "the generated grid"))


def _splits(puzzle: RawPuzzle) -> list[tuple[str, Sequence[Example]]]:
    return [(name, ex) for name, ex in (("train", puzzle.train), ("test", puzzle.test)) if ex]


def _same(a: Any, b: Any) -> bool:
    return bool(np.array_equal(a, b))  # False for different shapes


def _show(value: Any) -> str:
    array = np.asarray(value)
    text = np.array2string(array, threshold=40, max_line_width=200).replace("\n", "")
    return f"{text} (shape {list(array.shape)})"


# --------------------------------------------------------------------------- codec


def _check_tokens(s: Subject, check: str, tokens: Any, shape: tuple[int, ...], what: str) -> None:
    codec = s.task.codec
    array = np.asarray(tokens)
    if array.shape != shape or array.dtype.kind not in "iu":
        raise s.fail(
            check, f"{what} gave {array.dtype}{list(array.shape)}, expected uint8{list(shape)}"
        )
    if array.size and (array.min() < 0 or array.max() >= codec.vocab_size):
        bad = int(array.max()) if array.max() >= codec.vocab_size else int(array.min())
        raise s.fail(
            check, f"{what} produced token {bad} outside the vocabulary 0..{codec.vocab_size - 1}"
        )


def check_codec(s: Subject) -> None:
    codec, check = s.task.codec, "codec"

    def round_trip(grid: np.ndarray, where: str) -> None:
        tokens = codec.encode(grid)
        _check_tokens(s, check, tokens, (codec.seq_len,), f"encode of {where}")
        back = codec.decode(np.asarray(tokens))
        if not _same(back, grid):
            raise s.fail(
                check,
                f"decode(encode(g)) != g for {where} {_show(grid)}: got {_show(back)}; "
                f"decode must invert encode",
            )

    s.on_grids(round_trip)
    rng = np.random.default_rng(0)
    for puzzle in s.puzzles:
        for split, examples in _splits(puzzle):
            inputs, labels = codec.encode_puzzle(examples, split=split, rng=rng)
            shape = (len(examples), codec.seq_len)
            what = f"encode_puzzle ({split}, puzzle {puzzle.name!r})"
            _check_tokens(s, check, inputs, shape, what + " inputs")
            _check_tokens(s, check, labels, shape, what + " labels")
            rows = zip(np.asarray(inputs), examples, strict=True)
            if split == "test" and not all(_same(codec.decode(r), e.input) for r, e in rows):
                raise s.fail(
                    check,
                    f"{what}: a test row does not decode to its input grid; test "
                    f"encodings must be canonical (decode(row) == input)",
                )


def check_codec_batch(s: Subject) -> None:
    codec, check = s.task.codec, "codec_batch"
    if isinstance(codec, BatchCodec):
        by_shape: dict[tuple[int, ...], list[np.ndarray]] = {}
        for grid in s.real_grids():
            by_shape.setdefault(grid.shape, []).append(grid)
        for group in by_shape.values():
            batch = codec.encode_batch(np.stack(group))
            _check_tokens(s, check, batch, (len(group), codec.seq_len), "encode_batch")
            for row, grid in zip(np.asarray(batch), group, strict=True):
                if not _same(row, codec.encode(grid)):
                    raise s.fail(check, f"encode_batch row != encode for grid {_show(grid)}")
        if codec.batch_encodes_puzzles:
            for puzzle in s.puzzles:
                for split, examples in _splits(puzzle):
                    if len({np.shape(e.input) for e in examples}) > 1:
                        continue
                    inputs, labels = codec.encode_puzzle(
                        examples, split=split, rng=np.random.default_rng(0)
                    )
                    fast_in = codec.encode_batch(np.stack([e.input for e in examples]))
                    fast_lab = codec.encode_batch(np.stack([e.output for e in examples]))
                    if not (_same(inputs, fast_in) and _same(labels, fast_lab)):
                        raise s.fail(
                            check,
                            f"batch_encodes_puzzles is True but encode_puzzle ({split}, puzzle "
                            f"{puzzle.name!r}) differs from encode_batch of its grids; set "
                            f"batch_encodes_puzzles = False if encode_puzzle depends on split "
                            f"or rng",
                        )
    if isinstance(codec, VariantEncoder):
        augmenter = s.task.augmenter

        @s.for_all(st.sampled_from(list(s.puzzles)), seeds())
        def variants(puzzle: RawPuzzle, seed: int) -> None:
            drawn = augmenter.draw(puzzle, s.num_aug, np.random.default_rng(seed))
            ts = np.stack([np.asarray(augmenter.identity()), *map(np.asarray, drawn)])
            for split, examples in _splits(puzzle):
                enc_in, enc_lab = codec.encode_variants(
                    examples, ts, augmenter, split=split, rng=np.random.default_rng(seed)
                )
                shape = (len(ts), len(examples), codec.seq_len)
                what = f"encode_variants ({split})"
                _check_tokens(s, check, enc_in, shape, what + " inputs")
                _check_tokens(s, check, enc_lab, shape, what + " labels")
                if split != "test":
                    continue
                for v, t in enumerate(ts):
                    moved = [
                        Example(augmenter.apply(t, e.input), augmenter.apply(t, e.output))
                        for e in examples
                    ]
                    ref_in, ref_lab = codec.encode_puzzle(
                        moved, split="test", rng=np.random.default_rng(0)
                    )
                    if not (_same(enc_in[v], ref_in) and _same(enc_lab[v], ref_lab)):
                        raise s.fail(
                            check,
                            f"encode_variants (test) row {v} != encode_puzzle of the examples "
                            f"under transform {_show(t)} (puzzle {puzzle.name!r})",
                        )


# --------------------------------------------------------------------------- augmenter


def _check_transform(s: Subject, check: str, transform: Any, what: str) -> np.ndarray:
    size = s.task.augmenter.transform_size
    array = np.asarray(transform)
    if array.shape != (size,) or array.dtype.kind not in "iu":
        raise s.fail(
            check,
            f"{what} is {array.dtype}{list(array.shape)}, expected an int vector of "
            f"transform_size {size}",
        )
    return array


def check_identity(s: Subject) -> None:
    augmenter, check = s.task.augmenter, "identity"
    identity = _check_transform(s, check, augmenter.identity(), "identity()")

    def unchanged(grid: np.ndarray, where: str) -> None:
        for name, fn in (("apply", augmenter.apply), ("invert", augmenter.invert)):
            out = fn(identity, grid)
            if not _same(out, grid):
                raise s.fail(
                    check,
                    f"{name}(identity(), g) changed {where} {_show(grid)} into {_show(out)}; "
                    f"identity() must be the transform that changes nothing",
                )

    s.on_grids(unchanged)


def check_invert(s: Subject) -> None:
    task, check = s.task, "invert"
    augmenter = task.augmenter

    def inverts(transform: np.ndarray, grid: np.ndarray, real: bool) -> None:
        moved = np.asarray(augmenter.apply(transform, grid))
        if moved.ndim != 2:
            raise s.fail(check, f"apply({_show(transform)}, g) returned {moved.ndim}-D, not a grid")
        back = augmenter.invert(transform, moved)
        if not _same(back, grid):
            raise s.fail(
                check,
                f"invert(t, apply(t, g)) != g for t = {_show(transform)}, g = {_show(grid)}: "
                f"got {_show(back)}; invert must undo apply exactly",
            )
        if real:
            try:
                task.codec.encode(moved)
            except Exception as exc:
                raise s.fail(
                    check,
                    f"apply({_show(transform)}, g) of a real grid gives a grid the codec "
                    f"refuses ({type(exc).__name__}: {exc}); augmentations must stay valid",
                ) from exc

    real = s.real_grids()
    drawn = transforms(task, s.puzzles, s.num_aug)
    s.for_all(drawn, st.sampled_from(range(len(real))))(lambda t, i: inverts(t, real[i], True))
    s.for_all(drawn, grids(s.spec))(lambda t, grid: inverts(t, grid, False))


def check_draw(s: Subject) -> None:
    task, check = s.task, "draw"
    augmenter = task.augmenter
    identity = np.asarray(augmenter.identity())
    if task.defaults.num_aug > 0:
        rng = np.random.default_rng(0)
        if not any(len(augmenter.draw(p, s.num_aug, rng)) for p in s.puzzles):
            raise s.fail(
                check,
                f"draw returned no transform for any sample puzzle although defaults.num_aug "
                f"is {task.defaults.num_aug}; set num_aug=0 or make draw return transforms",
            )

    @s.for_all(st.sampled_from(list(s.puzzles)), seeds(), st.integers(1, s.num_aug))
    def deterministic(puzzle: RawPuzzle, seed: int, num_aug: int) -> None:
        first = augmenter.draw(puzzle, num_aug, np.random.default_rng(seed))
        second = augmenter.draw(puzzle, num_aug, np.random.default_rng(seed))
        if len(first) != len(second) or not all(map(_same, first, second)):
            raise s.fail(
                check,
                f"draw gave different transforms for the same seed {seed}; draw all its "
                f"randomness from the rng argument",
            )
        if len(first) > num_aug:
            raise s.fail(check, f"draw returned {len(first)} transforms for num_aug {num_aug}")
        for i, t in enumerate(first):
            t = _check_transform(s, check, t, "a drawn transform")
            if _same(t, identity):
                raise s.fail(
                    check, "draw returned the identity; it must yield non-identity transforms"
                )
            if any(_same(t, other) for other in first[:i]):
                raise s.fail(
                    check, f"draw returned the transform {_show(t)} twice; deduplicate draws"
                )


def check_augmenter_batch(s: Subject) -> None:
    task, check = s.task, "augmenter_batch"
    augmenter = task.augmenter
    square = [g for g in s.real_grids() if g.shape[0] == g.shape[1]]
    if isinstance(augmenter, BatchAugmenter) and square:

        @s.for_all(
            st.lists(transforms(task, s.puzzles, s.num_aug), min_size=1, max_size=4),
            st.sampled_from(range(len(square))),
        )
        def agree(ts: list[np.ndarray], index: int) -> None:
            grid = square[index]
            batch = np.repeat(grid[None], len(ts), axis=0)
            stacked = np.stack(ts)
            moved = np.asarray(augmenter.apply_batch(stacked, batch))
            want = np.stack([augmenter.apply(t, grid) for t in ts])
            if not _same(moved, want):
                raise s.fail(check, "apply_batch(ts, grids)[i] != apply(ts[i], grids[i])")
            back = np.asarray(augmenter.invert_batch(stacked, moved))
            want_back = np.stack([augmenter.invert(t, m) for t, m in zip(ts, moved, strict=True)])
            if not _same(back, want_back):
                raise s.fail(check, "invert_batch(ts, grids)[i] != invert(ts[i], grids[i])")

    if isinstance(augmenter, VariantNamer):
        identity = np.asarray(augmenter.identity())
        for puzzle in s.puzzles:
            name = augmenter.variant_name(puzzle.name, identity)
            if name != puzzle.name:
                raise s.fail(
                    check,
                    f"variant_name(name, identity()) is {name!r}, not the name {puzzle.name!r}",
                )
            drawn = augmenter.draw(puzzle, s.num_aug, np.random.default_rng(0))
            names = [augmenter.variant_name(puzzle.name, np.asarray(t)) for t in drawn]
            if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
                raise s.fail(
                    check, "variant_name must give distinct str names to distinct transforms"
                )


# --------------------------------------------------------------------------- evaluator


def _eval_rows(s: Subject) -> tuple[EvalContext, np.ndarray, np.ndarray, np.ndarray]:
    """Every sample puzzle as one identity-transformed test puzzle: (context, inputs,
    labels, puzzle_index)."""
    codec, augmenter = s.task.codec, s.task.augmenter
    rows = [
        codec.encode_puzzle(list(p.test or p.train), split="test", rng=np.random.default_rng(0))
        for p in s.puzzles
    ]
    index = [np.full(len(p.test or p.train), i, np.int64) for i, p in enumerate(s.puzzles)]
    identity = np.asarray(augmenter.identity(), np.int64)
    context = EvalContext(
        codec=codec,
        augmenter=augmenter,
        group_names=[p.name for p in s.puzzles],
        puzzle_group=np.arange(len(s.puzzles), dtype=np.int64),
        transforms=np.repeat(identity[None], len(s.puzzles), axis=0),
    )
    inputs, labels = (np.concatenate(part).astype(np.int64) for part in zip(*rows, strict=True))
    return context, inputs, labels, np.concatenate(index)


def _score(
    s: Subject,
    context: EvalContext,
    batches: Sequence[Sequence[np.ndarray]],
    what: str,
) -> Mapping[str, float]:
    check = "evaluator"
    run = s.task.evaluator.start(context)
    for inputs, labels, predictions, index in batches:
        run.update(
            PredictionBatch(
                inputs=inputs,
                labels=labels,
                predictions=predictions,
                puzzle_index=index,
                q_halt=np.ones(len(inputs), np.float32),
            )
        )
    metrics = run.finish()
    if not isinstance(metrics, Mapping):
        raise s.fail(check, f"finish() returned {type(metrics).__name__}, not a dict of metrics")
    for key, value in metrics.items():
        # trmkit eval reports float(value): numpy scalars are numbers too
        if not (isinstance(key, str) and isinstance(value, numbers.Real) and math.isfinite(value)):
            raise s.fail(check, f"metric {key!r} = {value!r} is not a finite number ({what})")
    if s.headline not in metrics:
        raise s.fail(
            check,
            f"finish() has no {s.headline!r} metric (it returned {', '.join(sorted(metrics))}); "
            f"pass headline=NAME to name the metric that perfect predictions score 1.0",
        )
    return metrics


def check_evaluator(s: Subject) -> None:
    check = "evaluator"
    codec = s.task.codec
    context, inputs, labels, index = _eval_rows(s)
    perfect = labels.copy()
    rows = (inputs, labels, perfect, index)
    metrics = _score(s, context, [rows], "perfect predictions")
    if metrics[s.headline] != 1.0:
        raise s.fail(
            check, f"perfect predictions score {s.headline} {metrics[s.headline]}, not 1.0"
        )
    # the same rows in two batches, plus a padding row (puzzle_index -1) of garbage
    garbage = np.full((1, inputs.shape[1]), (codec.pad_id + 1) % codec.vocab_size, np.int64)
    half = max(1, len(inputs) // 2)
    padding = (garbage, garbage, (garbage + 1) % codec.vocab_size, np.array([-1]))
    split = [
        [a[:half] for a in rows],
        [np.concatenate([a[half:], pad]) for a, pad in zip(rows, padding, strict=True)],
    ]
    again = _score(s, context, split, "perfect predictions in two batches with a padding row")
    if again[s.headline] != 1.0:
        raise s.fail(
            check,
            f"perfect predictions fed in two batches (with a padding row, puzzle_index -1) score "
            f"{s.headline} {again[s.headline]}; accumulate over update() calls and skip rows "
            f"with puzzle_index -1",
        )
    scored = labels != codec.ignore_label_id
    if not scored.any(axis=1).all():
        raise s.fail(check, "a sample row has no scored label token (all ignore_label_id)")

    @s.for_all(seeds())
    def corrupted(seed: int) -> None:
        rng = np.random.default_rng(seed)
        wrong = perfect.copy()
        for row in range(len(wrong)):
            cols = np.flatnonzero(scored[row])
            col = cols[rng.integers(len(cols))]
            shift = 1 + rng.integers(codec.vocab_size - 1)
            wrong[row, col] = (wrong[row, col] + shift) % codec.vocab_size
        bad = _score(s, context, [(inputs, labels, wrong, index)], "corrupted predictions")
        if not bad[s.headline] < 1.0:
            raise s.fail(
                check,
                f"predictions with one wrong token in every row still score {s.headline} "
                f"{bad[s.headline]}; the evaluator must compare predictions with labels",
            )

    fresh = _score(s, context, [rows], "a second pass")
    if fresh[s.headline] != 1.0:
        raise s.fail(check, "a second start() carried state over from an earlier pass")


def check_answer_checker(s: Subject) -> None:
    check = "answer_checker"
    evaluator = s.task.evaluator
    if not isinstance(evaluator, AnswerChecker):
        return
    alphabet = np.asarray(s.spec.values, np.int64)

    def verdict(puzzle: RawPuzzle, example: Example, answer: np.ndarray, what: str) -> bool:
        try:
            result = evaluator.check_answer(np.asarray(example.input), answer)
        except Exception as exc:
            raise s.fail(
                check,
                f"check_answer raised {type(exc).__name__}: {exc} on {what} of puzzle "
                f"{puzzle.name!r}; return False for an answer that does not solve the puzzle",
            ) from exc
        if not isinstance(result, (bool, np.bool_)):
            raise s.fail(check, f"check_answer returned {result!r}, not True or False ({what})")
        return bool(result)

    examples = [(p, e) for p in s.puzzles for e in (*p.train, *p.test)]
    for puzzle, example in examples:
        label = np.asarray(example.output)
        if not verdict(puzzle, example, label.copy(), "its label"):
            raise s.fail(
                check,
                f"check_answer(input, label) is False for puzzle {puzzle.name!r}: the puzzle's "
                f"own solution must pass (is the input or the answer read in another frame?)",
            )
    if len(alphabet) < 2:
        return

    @s.for_all(seeds())
    def corrupted(seed: int) -> None:
        rng = np.random.default_rng(seed)
        puzzle, example = examples[int(rng.integers(len(examples)))]
        wrong = np.asarray(example.output).copy()
        if not wrong.size:
            return
        cell = np.unravel_index(int(rng.integers(wrong.size)), wrong.shape)
        others = alphabet[alphabet != wrong[cell]]
        wrong[cell] = others[int(rng.integers(len(others)))]
        if verdict(puzzle, example, wrong, "a corrupted label"):
            raise s.fail(
                check,
                f"check_answer accepts puzzle {puzzle.name!r}'s label with cell "
                f"{tuple(int(i) for i in cell)} changed to {int(wrong[cell])}: it must reject "
                f"answers that do not solve the puzzle",
            )


def check_recipe(s: Subject) -> None:
    check, name = "recipe", s.task.defaults.recipe
    if not name:
        return
    from trmkit import plugins
    from trmkit.config import load_recipe
    from trmkit.errors import TrmkitError

    try:
        recipe = load_recipe(name)
    except TrmkitError as exc:
        raise s.fail(
            check,
            f"defaults.recipe {name!r} does not load ({exc}); ship the TOML file in the "
            f"package, register it through the register_recipes hook (docs/plugins.md) and "
            f"install the package (pip install -e .) so its entry point is seen",
        ) from exc
    trains = recipe.data.task
    if not trains or trains == s.task.name:
        return
    try:
        plugins.get_task(trains)
    except TrmkitError as exc:
        raise s.fail(
            check,
            f"defaults.recipe {name!r} trains data.task {trains!r}, which is neither this task "
            f"nor a registered one; set data.task = {s.task.name!r} in the recipe",
        ) from exc


# --------------------------------------------------------------------------- text


def check_parse(s: Subject) -> None:
    task, check = s.task, "parse"

    def renders(grid: np.ndarray, where: str) -> None:
        text = task.render(grid)
        if not isinstance(text, str) or not text:
            raise s.fail(
                check, f"render returned {text!r} for {where} {_show(grid)}; it must return text"
            )
        for v in np.unique(grid).tolist():
            sym = task.cell_text(v)
            if not isinstance(sym, str) or not sym:
                raise s.fail(
                    check, f"cell_text({v}) returned {sym!r}; it must return the cell's symbol"
                )

    s.on_grids(renders)
    givens = task.givens
    if givens is not None:  # a bool mask of the input's shape that every label keeps
        for puzzle, e in [(p, e) for p in s.puzzles for e in (*p.train, *p.test)]:
            mask = np.asarray(givens(e.input))
            if mask.dtype != bool or mask.shape != e.input.shape:
                raise s.fail(
                    check,
                    f"givens returned {mask.dtype} {mask.shape} for an input of shape "
                    f"{e.input.shape}; return a bool mask of the input's shape",
                )
            if e.output.shape == e.input.shape and not _same(e.output[mask], e.input[mask]):
                raise s.fail(
                    check,
                    f"the label of puzzle {puzzle.name!r} changes a cell givens marks as "
                    "fixed; mark only cells every answer keeps",
                )
    if task.parse_puzzles is None:
        return
    for puzzle in s.puzzles:
        queries = list(puzzle.test or puzzle.train)
        if task.format_puzzle is not None:
            text, how = task.format_puzzle(puzzle), "format_puzzle"
            want = [e.input for e in (*puzzle.train, *puzzle.test)]
        else:
            text, how = task.render(queries[0].input), "render"
            want = [queries[0].input]
        try:
            parsed = task.parse_puzzles(text)
        except Exception as exc:
            raise s.fail(
                check,
                f"parse_puzzles cannot read what {how} writes for puzzle {puzzle.name!r} "
                f"({type(exc).__name__}: {exc}); set Task.format_puzzle to a puzzle -> text "
                f"function that parse_puzzles reads back",
            ) from exc
        got = [e.input for p in parsed for e in (*p.train, *p.test)]
        if len(got) != len(want) or not all(map(_same, got, want)):
            raise s.fail(
                check,
                f"parse_puzzles({how}(puzzle {puzzle.name!r})) does not give back its "
                f"{len(want)} input grid(s) (got {len(got)}, or different cells)",
            )


CHECKS: Mapping[str, Callable[[Subject], None]] = {
    "codec": check_codec,
    "codec_batch": check_codec_batch,
    "identity": check_identity,
    "invert": check_invert,
    "draw": check_draw,
    "augmenter_batch": check_augmenter_batch,
    "evaluator": check_evaluator,
    "answer_checker": check_answer_checker,
    "recipe": check_recipe,
    "parse": check_parse,
}
"""Every property, by name, in the order `check_task` runs them."""


def check_task(
    task: Task,
    puzzles: Sequence[RawPuzzle] | None = None,
    *,
    spec: GridSpec | None = None,
    headline: str = "exact_accuracy",
    max_examples: int = 25,
    num_aug: int = 4,
    checks: Iterable[str] | None = None,
) -> None:
    """Run every property of `CHECKS` (or only ``checks``) on ``task``; raise
    `ConformanceError` at the first that fails.

    ``puzzles`` default to a few from the task's default source; ``spec`` defaults to the one
    those puzzles imply; ``headline`` is the metric perfect predictions score 1.0;
    ``max_examples`` is hypothesis's budget per property; ``num_aug`` transforms are drawn
    per puzzle.
    """
    subject = Subject.of(
        task, puzzles, spec, headline=headline, max_examples=max_examples, num_aug=num_aug
    )
    names = list(CHECKS) if checks is None else list(checks)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; choose from {', '.join(CHECKS)}")
    for name in names:
        run_check(subject, name)


_NOT_TASK_CODE = ("trmkit.testing", "hypothesis", "numpy", "_pytest", "pluggy")
"""modules whose frames are not where a task's code raised (the kit, its engines)."""


def run_check(subject: Subject, name: str) -> None:
    """Run the property ``name`` on ``subject``; an exception the task's code raises (a
    ``decode`` that raises, a ``finish`` that divides by zero) becomes a `ConformanceError`
    naming the task, the property and the innermost frame outside the kit, with the
    exception chained (its stack is printed above the error)."""
    try:
        CHECKS[name](subject)
    except ConformanceError:
        raise
    except Exception as exc:
        leaf: BaseException = exc
        while getattr(leaf, "exceptions", None):  # hypothesis's group of distinct failures
            leaf = leaf.exceptions[0]  # type: ignore[attr-defined]
        if isinstance(leaf, ConformanceError):
            raise leaf from exc
        frames = list(traceback.walk_tb(leaf.__traceback__))
        ours = [
            (f, n)
            for f, n in frames
            if not str(f.f_globals.get("__name__", "")).startswith(_NOT_TASK_CODE)
        ]
        frame, line = (ours or frames)[-1]
        code = frame.f_code
        where = f"{code.co_name} raised {type(leaf).__name__} ({code.co_filename}:{line})"
        reason = (str(leaf).splitlines() or [""])[0][:300]
        raise subject.fail(
            name, f"{where}: {reason}; fix the task's code (its stack: the exception chained above)"
        ) from exc


class TaskConformance:
    """Subclass in a test module to get one pytest test per property of `CHECKS`::

        class TestMyTask(TaskConformance):
            task = make_task()
            headline = "exact_accuracy"   # optional, as are puzzles, spec, max_examples

    The subject (sample puzzles included) is built once per class.
    """

    task: ClassVar[Task]
    puzzles: ClassVar[Sequence[RawPuzzle] | None] = None
    spec: ClassVar[GridSpec | None] = None
    headline: ClassVar[str] = "exact_accuracy"
    max_examples: ClassVar[int] = 25
    num_aug: ClassVar[int] = 4

    @classmethod
    @functools.cache
    def subject(cls) -> Subject:
        settings = {key: getattr(cls, key) for key in ("headline", "max_examples", "num_aug")}
        return Subject.of(cls.task, cls.puzzles, cls.spec, **settings)


def _conformance_test(name: str) -> Callable[[TaskConformance], None]:
    def test(self: TaskConformance) -> None:
        run_check(self.subject(), name)

    return test


for _name in CHECKS:  # one pytest test per property: test_codec, ...
    setattr(TaskConformance, f"test_{_name}", _conformance_test(_name))
