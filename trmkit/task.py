"""The task contract: what a puzzle-task plugin hands to trmkit.

A task is plain data plus four small objects, each with one job:

    Source     raw files / generator  -> RawPuzzle values
    Augmenter  RawPuzzle              -> transforms (int vectors), applied and inverted per grid
    Codec      grid                  <-> token ids of fixed length
    Evaluator  predictions            -> metrics (may vote across augmentations)

Grids are 2-D integer numpy arrays. A `RawPuzzle` is the unit that gets augmented (one
group of the reference's example < puzzle < group index): a sudoku, a maze, an ARC task.
Its ``train`` examples go to the train split and its ``test`` examples to the test split,
each variant of the puzzle becoming one puzzle (with one puzzle identifier) in each split.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, get_args, runtime_checkable

import attrs
import numpy as np

Grid = np.ndarray
"""A 2-D integer array (rows x columns) of cell values in the task's own alphabet."""

Transform = np.ndarray
"""One augmentation as plain data: a 1-D int array of length `Augmenter.transform_size`."""


def _as_grid(value: Any) -> np.ndarray:
    grid = np.asarray(value)
    if grid.ndim != 2:
        raise ValueError(f"a grid must be 2-D, got shape {grid.shape}")
    return grid


@attrs.frozen
class Example:
    """One (input grid, output grid) pair: a row of the dataset once encoded."""

    input: Grid = attrs.field(converter=_as_grid)
    output: Grid = attrs.field(converter=_as_grid)


def _examples(values: Iterable[Example]) -> tuple[Example, ...]:
    return tuple(values)


@attrs.frozen
class RawPuzzle:
    """A puzzle as read from its source, before augmentation and encoding.

    ``train`` examples are trained on; ``test`` examples are held out for evaluation
    (an ARC task's test pairs, or a sudoku from test.csv). ``meta`` carries free-form
    source data (rating, source list, concept) that builders may filter on.
    """

    name: str
    train: tuple[Example, ...] = attrs.field(converter=_examples, factory=tuple)
    test: tuple[Example, ...] = attrs.field(converter=_examples, factory=tuple)
    meta: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def single(
        cls, name: str, example: Example, split: str, meta: Mapping[str, Any] | None = None
    ) -> RawPuzzle:
        """A one-example puzzle in ``split`` ("train" or "test"): a sudoku, a maze."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        if split == "train":
            return cls(name, train=(example,), meta=meta or {})
        return cls(name, test=(example,), meta=meta or {})


@attrs.frozen
class SourceRequest:
    """What `trmkit build` asks of a source."""

    path: Path | None
    seed: int
    options: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class RawData:
    """What a source returns: the puzzles and the provenance of the files they came from."""

    puzzles: Sequence[RawPuzzle]
    files: Mapping[str, str] = attrs.field(factory=dict)
    """name -> sha256 of every file read (or of the generator parameters)."""
    description: str = ""


@attrs.frozen
class Source:
    """A named way to obtain raw puzzles: a file reader, a downloader or a generator.

    ``options`` maps each accepted ``--option KEY=VALUE`` name to its help text; the builder
    rejects any other key before calling ``load``.
    """

    name: str
    description: str
    load: Callable[[SourceRequest], RawData]
    kind: Literal["path", "download", "package", "generator"] = "path"
    options: Mapping[str, str] = attrs.field(factory=dict)


@runtime_checkable
class Codec(Protocol):
    """Grid <-> fixed-length token ids. Token ``pad_id`` pads; label ``ignore_label_id``
    marks cells that carry no loss."""

    @property
    def seq_len(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def pad_id(self) -> int: ...
    @property
    def ignore_label_id(self) -> int: ...

    def encode(self, grid: Grid) -> np.ndarray:
        """One grid -> ``uint8[seq_len]`` token ids."""
        ...

    def decode(self, tokens: np.ndarray) -> Grid:
        """``[seq_len]`` token ids -> grid (cropped where the codec pads); inverse of encode."""
        ...

    def encode_puzzle(
        self, examples: Sequence[Example], *, split: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """A puzzle's examples -> (inputs, labels), each ``uint8[len(examples), seq_len]``.

        ``split`` is "train" or "test"; a codec may place grids differently in training
        (ARC translates them) as long as test encodings are canonical."""
        ...


@runtime_checkable
class Augmenter(Protocol):
    """Invertible, validity-preserving transforms recorded as int vectors."""

    transform_size: int

    def identity(self) -> Transform:
        """The transform that changes nothing (kept as variant 0 of every puzzle)."""
        ...

    def draw(self, puzzle: RawPuzzle, num_aug: int, rng: np.random.Generator) -> list[Transform]:
        """Up to ``num_aug`` non-identity transforms for this puzzle (fewer if deduplicated)."""
        ...

    def apply(self, transform: Transform, grid: Grid) -> Grid:
        """Apply one transform to one grid (input and output grids alike)."""
        ...

    def invert(self, transform: Transform, grid: Grid) -> Grid:
        """Exact inverse of `apply`: ``invert(t, apply(t, g)) == g``."""
        ...


def inverts_exactly(augmenter: Augmenter, transform: Transform, grid: Grid) -> bool:
    """Whether ``augmenter`` applies ``transform`` to ``grid`` and inverts it back exactly;
    an exception from the task's code counts as no (how a stored transform row that the
    task cannot use is told apart from a good one)."""
    try:
        back = augmenter.invert(transform, augmenter.apply(transform, grid))
        return np.array_equal(np.asarray(back), grid)
    except Exception:  # noqa: BLE001 - any failure of the task's code on this transform
        return False


# --------------------------------------------------------------------------- optional
# Batched fast paths. A codec or augmenter opts in by implementing every member of one of
# these protocols; `trmkit.plugins` refuses a registration that implements only part of
# one (naming what is missing), the builder uses a path only when ``isinstance`` holds,
# and `trmkit.testing.check_task` proves that each path agrees with the plain contract.


@runtime_checkable
class BatchAugmenter(Protocol):
    """Vectorised `Augmenter.apply` / `Augmenter.invert` over many same-shape grids."""

    def apply_batch(self, transforms: np.ndarray, grids: np.ndarray) -> np.ndarray:
        """``out[i] == apply(transforms[i], grids[i])`` for ``int[N, k]`` and ``int[N, H, W]``
        (the builder calls it with square grids only)."""
        ...

    def invert_batch(self, transforms: np.ndarray, grids: np.ndarray) -> np.ndarray:
        """``out[i] == invert(transforms[i], grids[i])``."""
        ...


@runtime_checkable
class VariantNamer(Protocol):
    """Names of augmented variants in the store's identifier list (``per_variant`` ids)."""

    def variant_name(self, puzzle_name: str, transform: Transform) -> str:
        """The identity must give ``puzzle_name``; distinct transforms distinct names.
        Without it: ``name`` for the identity, else ``name|||v0-v1-...``."""
        ...


@runtime_checkable
class BatchCodec(Protocol):
    """Vectorised encoding of many same-shape grids."""

    batch_encodes_puzzles: bool
    """True: ``encode_puzzle`` is ``encode_batch`` of the inputs and of the outputs for both
    splits, so the builder may call ``encode_batch`` instead; False when ``encode_puzzle``
    depends on split or rng (ARC translates train grids)."""

    def encode_batch(self, grids: np.ndarray) -> np.ndarray:
        """``int[N, H, W] -> uint8[N, seq_len]``, row i equal to ``encode(grids[i])``."""
        ...


@runtime_checkable
class VariantEncoder(Protocol):
    """Encoding all augmented variants of one puzzle in one call."""

    def encode_variants(
        self,
        examples: Sequence[Example],
        transforms: np.ndarray,
        augmenter: Augmenter,
        *,
        split: str,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, labels), each ``uint8[V, len(examples), seq_len]``: row v equals
        ``encode_puzzle`` of the examples under ``augmenter.apply(transforms[v], .)``
        (identical for split "test", same distribution for "train")."""
        ...


@runtime_checkable
class AnswerChecker(Protocol):
    """Optional, on an `Evaluator`: tells whether an answer solves a puzzle *without its
    label* (a complete Sudoku that keeps the givens, a shortest S-to-G maze path). Test-time
    compute uses it to pick, among several trajectories, one that passes (``trmkit eval
    --select valid``, docs/test-time-compute.md); `trmkit.testing.check_task` proves that
    labelled solutions pass and corrupted ones fail."""

    def check_answer(self, puzzle_input: Grid, answer: Grid) -> bool:
        """True when ``answer`` is a valid solution of the puzzle whose input grid is
        ``puzzle_input`` (both in the same frame: checks must not depend on augmentation)."""
        ...


OPTIONAL_PROTOCOLS: Mapping[str, tuple[tuple[type, tuple[str, ...]], ...]] = {
    "codec": (
        (BatchCodec, ("encode_batch", "batch_encodes_puzzles")),
        (VariantEncoder, ("encode_variants",)),
    ),
    "augmenter": (
        (BatchAugmenter, ("apply_batch", "invert_batch")),
        (VariantNamer, ("variant_name",)),
    ),
    "evaluator": ((AnswerChecker, ("check_answer",)),),
}
"""Task field -> (protocol, its members): a partial opt-in is a `contract_problem`."""


@attrs.frozen
class PredictionBatch:
    """Model outputs for a batch of test rows, in the store's token space."""

    inputs: np.ndarray
    """int[B, seq_len] input tokens."""
    labels: np.ndarray
    """int[B, seq_len] label tokens as stored (``ignore_label_id`` where ignored)."""
    predictions: np.ndarray
    """int[B, seq_len] predicted tokens (argmax)."""
    puzzle_index: np.ndarray
    """int[B] index of each row's puzzle in the split; -1 marks padding rows."""
    q_halt: np.ndarray
    """float[B] halting confidence sigmoid(q_halt_logit) of the final step."""


@attrs.frozen
class EvalContext:
    """What an evaluator may know about the split it evaluates."""

    codec: Codec
    augmenter: Augmenter
    group_names: Sequence[str]
    """name of every group (raw puzzle) in the split."""
    puzzle_group: np.ndarray
    """int[num_puzzles]: the group of each puzzle."""
    transforms: np.ndarray
    """int[num_puzzles, transform_size]: the augmentation of each puzzle."""
    out_dir: Path | None = None
    """where to write artefacts such as submission.json (None: write nothing)."""


@runtime_checkable
class EvalRun(Protocol):
    def update(self, batch: PredictionBatch) -> None:
        """Accumulate one batch of predictions."""
        ...

    def finish(self) -> dict[str, float]:
        """Metrics over everything accumulated (and files written to ``out_dir``)."""
        ...


@runtime_checkable
class Evaluator(Protocol):
    def start(self, context: EvalContext) -> EvalRun:
        """Begin one evaluation pass (state is per pass: no silent ensembling)."""
        ...


PuzzleIds = Literal["shared", "per_variant"]
OfficialTotals = Literal["puzzles", "groups"]

TASK_OPTIONS_KEY = "task_options"
"""store attribute (and so manifest ``dataset.store`` key): the build options as a JSON
text, written for a task with `Task.configure` so readers rebuild the task it was built
with (`Task.for_store`)."""


@attrs.frozen
class BuildDefaults:
    """How `trmkit build` treats this task when the user does not say otherwise."""

    source: str
    """name of the source used when --source is omitted (the embedded default)."""
    num_aug: int = 0
    puzzle_ids: PuzzleIds = "shared"
    """"shared": every puzzle has identifier 0 (Sudoku, Maze); "per_variant": every
    (puzzle, augmentation) gets its own learned embedding row, shared by both splits (ARC)."""
    augment_test: bool = False
    """Also augment puzzles that have only test examples (ARC test-time voting)."""
    recipe: str | None = None
    """name of the recipe `trmkit train --task` uses by default."""
    official_total_puzzles: OfficialTotals = "puzzles"
    """what `total_puzzles` means in an exported official ``dataset.json``: the number of
    puzzles (the official ARC builder) or of groups (the official Sudoku and Maze builders,
    which write total_puzzles = total_groups). trmkit's own store always counts puzzles."""
    cpu_recipe: str | None = None
    """a recipe that trains this task (or a smaller variant from the same plugin) on a CPU in
    well under a day: what `trmkit train`'s preflight suggests when ``recipe`` would take
    longer here (None: it picks such a recipe of the same plugin from tasks/*.toml)."""


MAX_NUM_AUG = 100_000
"""the most augmented variants per puzzle a build (or `trmkit solve --num-aug`) accepts; the
reference uses 1,000. A larger value would only exhaust memory inside the augmenter."""


def source_options(values: Mapping[Any, Any], where: str) -> dict[str, str]:
    """``values`` as the ``Mapping[str, str]`` a `Source` receives: a string, integer, float
    or boolean becomes its text (``true``/``false``); a list, a table or anything else is a
    ConfigError naming ``where`` and the option (docs/errors.md)."""
    from trmkit.errors import ConfigError

    out: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{where}: option name {key!r} is not a non-empty string")
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[key] = str(value)
        else:
            kinds: dict[type, str] = {list: "list", tuple: "list", dict: "table"}
            kind = kinds.get(type(value), type(value).__name__)
            raise ConfigError(
                f"{where}: option {key!r} is a {kind}, expected one value (a string or a "
                f'number); write e.g. {key} = "..."'
            )
    return out


def _render_digits(grid: Grid) -> str:
    return "\n".join(" ".join(str(int(v)) for v in row) for row in np.asarray(grid))


@attrs.frozen
class Task:
    """A puzzle task, as registered by a plugin through ``register_tasks``."""

    name: str
    description: str
    codec: Codec
    augmenter: Augmenter
    evaluator: Evaluator
    sources: Mapping[str, Source]
    defaults: BuildDefaults
    version: str = "1"
    """bump when the encoding changes: stores record it and refuse a mismatch."""
    path_source: str | None = None
    """name of the source that reads a local file or directory given as --source PATH."""
    render: Callable[[Grid], str] = _render_digits
    """grid -> text for `trmkit data info` and `trmkit solve`."""
    parse_puzzles: Callable[[str], list[RawPuzzle]] | None = None
    """text or path given to `trmkit solve` -> puzzles (test examples hold the queries)."""
    format_puzzle: Callable[[RawPuzzle], str] | None = None
    """puzzle -> text that ``parse_puzzles`` reads back (same examples' inputs); None: ``render``
    of the first query grid is that text. `trmkit.testing` checks the round trip."""
    givens: Callable[[Grid], np.ndarray] | None = None
    """puzzle input -> bool mask (its shape) of the cells the input fixes, which every answer
    keeps (a Sudoku's clues; a maze's walls, S and G). Traces mark them (docs/reports.md);
    None: no cell is marked given (an ARC output is a new grid, not a completed input)."""
    cell_text: Callable[[int], str] = str
    """one cell value -> its symbol, as ``render`` prints it, for the traces' per-cell marks
    (docs/reports.md); default: the value's digits."""
    configure: Callable[[Mapping[str, str]], Task] | None = None
    """build options -> the task as built with them, for a task whose encoding follows an
    option (ARC's ``canvas``: docs/tasks-arc.md). `trmkit build` encodes with it and every
    reader of a store or bundle rebuilds it from the recorded options (`with_options`); None:
    options never change the task."""

    def with_options(self, options: Mapping[str, Any] | None) -> Task:
        """This task as built with ``options`` (a recipe's ``data.options``)."""
        if self.configure is None or not options:
            return self
        return self.configure(source_options(options, f"options of task {self.name!r}"))

    def for_store(self, store_attrs: Mapping[str, Any]) -> Task:
        """This task as the store with these root attributes (or a manifest's
        ``dataset.store``) was built: its `TASK_OPTIONS_KEY` record, if any."""
        from trmkit.errors import ConfigError

        text = store_attrs.get(TASK_OPTIONS_KEY)
        if self.configure is None or text is None:
            return self
        try:
            options = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            options = None
        if not isinstance(options, dict):
            raise ConfigError(
                f"store attribute {TASK_OPTIONS_KEY} {str(text)[:60]!r}: not a JSON table of "
                "build options; rebuild the store (and retrain) with trmkit build"
            )
        return self.with_options(options)

    def source_for(self, spec: str | None) -> tuple[Source, Path | None]:
        """Resolve ``--source`` (docs/errors.md, "Boundaries: plugins, sources, names"):
        written as a path (`written_as_path`: a separator, a leading ``.`` or ``~``) it is
        a path; else a source name of the task is that source (a same-named directory here
        is warned about: ``./NAME`` builds from it); else an existing file or directory."""
        from trmkit.errors import SourceError, UnknownNameError
        from trmkit.textio import printable

        if spec is None:
            return self.sources[self.defaults.source], None
        if not written_as_path(spec) and spec in self.sources:
            if self.path_source is not None and _exists(spec):
                shown = printable(spec)
                sys.stderr.write(
                    f"Warning: --source {shown} names the source {spec!r} of task "
                    f"{self.name!r}; the file or directory {shown} here is not read: write "
                    f"./{shown} to build from it\n"
                )
            return self.sources[spec], None
        path = Path(spec).expanduser()
        if self.path_source is None:
            raise UnknownNameError(
                f"task {self.name!r} has no source {spec!r}; choose one of "
                f"{', '.join(sorted(self.sources))}"
            )
        if not _exists(spec):
            raise SourceError(
                f"{spec}: no such file or directory, and not a source of task {self.name!r} "
                f"(sources: {', '.join(sorted(self.sources))})"
            )
        return self.sources[self.path_source], path


def contract_problem(task: Task) -> str | None:
    """The first break of ``task``'s static contract (docs/plugins.md, sections 2 and 5), or
    None: a missing or wrong-typed codec, augmenter, evaluator or defaults; codec sizes that
    are not ints, a vocabulary that does not fit uint8 or pad/ignore ids outside it; a
    transform size that is not a positive int; an optional protocol implemented in part, a
    member of one that is not callable or a flag that is not bool; no sources, or a default
    or path source that is not one. Checked where a task enters, registration
    (`trmkit.plugins`) and `trmkit.testing.Subject.of`; nothing downstream checks again."""
    if not isinstance(task.description, str):
        return f"description {task.description!r} must be a str"
    if not isinstance(task.version, str) or not task.version:
        return f"version {task.version!r} must be a non-empty str (it is recorded in every store)"
    typed = {"codec": Codec, "augmenter": Augmenter, "evaluator": Evaluator}
    for field, proto in {**typed, "defaults": BuildDefaults}.items():
        value = getattr(task, field)
        if value is None:
            return f"missing {field}"
        if not isinstance(value, proto):
            return (
                f"{field} is a {type(value).__name__}, which does not implement "
                f"{proto.__name__} (see docs/plugins.md)"
            )
    problem = _defaults_problem(task.defaults)
    if problem is not None:
        return problem
    codec = task.codec
    sizes = ("seq_len", "vocab_size", "pad_id", "ignore_label_id")
    for name in sizes:
        if not isinstance(getattr(codec, name), int):
            return f"codec.{name} must be an int"
    if codec.seq_len <= 0 or not 1 < codec.vocab_size <= 256:
        return "codec needs seq_len > 0 and 2 <= vocab_size <= 256 (uint8)"
    for name in sizes[2:]:
        if not 0 <= getattr(codec, name) < codec.vocab_size:
            return f"codec.{name} {getattr(codec, name)} is outside 0..{codec.vocab_size - 1}"
    if not isinstance(task.augmenter.transform_size, int) or task.augmenter.transform_size < 1:
        return "augmenter.transform_size must be a positive int"
    for field in typed:
        value = getattr(task, field)
        for proto, members in OPTIONAL_PROTOCOLS[field]:
            present = [m for m in members if m in dir(value)]
            missing = [m for m in members if m not in present]
            if present and missing:
                return (
                    f"{field} defines {', '.join(present)} but not {', '.join(missing)}: "
                    f"implement all of trmkit.task.{proto.__name__} or none of it "
                    "(see docs/plugins.md)"
                )
            for member in present:
                attr = getattr(value, member)
                if member == "batch_encodes_puzzles" and not isinstance(attr, bool):
                    return f"{field}.{member} must be True or False (see docs/plugins.md)"
                if member != "batch_encodes_puzzles" and not callable(attr):
                    return (
                        f"{field}.{member} is not callable ({proto.__name__}; see docs/plugins.md)"
                    )
    if not isinstance(task.sources, Mapping):
        return (
            f"sources must be a dict of name -> trmkit.task.Source, not "
            f"{type(task.sources).__name__}"
        )
    if not task.sources:
        return "no sources"
    for key, source in task.sources.items():
        if not isinstance(source, Source) or not callable(source.load):
            return f"source {key!r} is not a trmkit.task.Source"
    if task.defaults.source not in task.sources:
        return f"default source {task.defaults.source!r} is not in sources"
    if task.path_source is not None and task.path_source not in task.sources:
        return f"path_source {task.path_source!r} is not in sources"
    return None


def _defaults_problem(defaults: BuildDefaults) -> str | None:
    """The first `BuildDefaults` field of the wrong type or outside its values (attrs does not
    check them, and the builder would fail later, blaming the user's options)."""
    num_aug = defaults.num_aug
    if isinstance(num_aug, bool) or not isinstance(num_aug, int) or not 0 <= num_aug <= MAX_NUM_AUG:
        return f"defaults.num_aug {num_aug!r} must be an int from 0 to {MAX_NUM_AUG}"
    if not isinstance(defaults.augment_test, bool):
        return f"defaults.augment_test {defaults.augment_test!r} must be True or False"
    for field, kind in {"puzzle_ids": PuzzleIds, "official_total_puzzles": OfficialTotals}.items():
        allowed = get_args(kind)
        if getattr(defaults, field) not in allowed:
            return (
                f"defaults.{field} {getattr(defaults, field)!r} must be one of "
                f"{', '.join(map(repr, allowed))}"
            )
    for field in ("recipe", "cpu_recipe"):
        if not isinstance(getattr(defaults, field), (str, type(None))):
            return f"defaults.{field} {getattr(defaults, field)!r} must be a str (a recipe name)"
    return None


def written_as_path(spec: str) -> bool:
    """Whether ``--source SPEC`` is written as a path (a path separator, or a leading ``.``
    or ``~``): then it is never taken for a source name, so ``./generate`` is the directory."""
    separators = {sep for sep in ("/", os.sep, os.altsep) if sep}
    return any(sep in spec for sep in separators) or spec.startswith((".", "~"))


def _exists(spec: str) -> bool:
    """Whether ``spec`` names an existing file or directory (False for text no path can
    be: a NUL byte, too long for the OS)."""
    try:
        return Path(spec).expanduser().exists()
    except (OSError, ValueError):
        return False
