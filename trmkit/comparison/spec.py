"""What a comparison is: its variants (label + resolved recipe), seeds, step budget and the
one test split every run is scored on; written to ``compare-spec.json`` and compared with
the spec of a directory that already holds a comparison.

Two specs describe the same comparison when the task, the variants (labels in order; each
resolved recipe's data, model, optim and train sections, ``train.seed`` aside), the step
budget and the test split's content hash agree. The number of seeds may change (a rerun
with more seeds adds runs), and so may the report options (target, sweep) and ``--jobs``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from trmkit import atomic
from trmkit.config import Recipe, recipe_to_dict
from trmkit.errors import ConfigError, OptionError, TrmkitError
from trmkit.textio import read_json

SPEC_NAME = "compare-spec.json"
SPEC_FORMAT = 1
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
COMPARED_SECTIONS = ("data", "model", "optim", "train")
SEED_KEY = "train.seed"


class CompareError(TrmkitError):
    """A comparison directory holds another comparison, or a run of it cannot go on."""


@attrs.frozen
class VariantArg:
    """One ``--recipe [LABEL=]NAME`` as given: its explicit label (or None) and recipe."""

    label: str | None
    recipe: str

    @classmethod
    def parse(cls, text: str) -> VariantArg:
        text = text.strip()
        if not text:
            raise OptionError("--recipe: empty; give a recipe name or LABEL=NAME")
        head, sep, tail = text.partition("=")
        # LABEL=NAME unless the whole text names an existing file (a path with '=')
        if sep and head and not Path(text).is_file():
            if not LABEL.match(head):
                raise OptionError(
                    f"--recipe {text}: label {head!r} is not a plain name; use letters, "
                    "digits, '.', '_', '+' or '-' (at most 64), e.g. --recipe nsup8=maze-quick"
                )
            if tail:
                return cls(head, tail)
        return cls(None, text)


def default_labels(args: Sequence[VariantArg]) -> list[str]:
    """Explicit labels as given; otherwise the recipe's name (its file stem), with the
    1-based position appended where two variants would share it."""
    stems = [Path(a.recipe).stem if a.recipe.endswith(".toml") else a.recipe for a in args]
    unlabelled = Counter(s for s, a in zip(stems, args, strict=True) if a.label is None)
    labels = [
        a.label if a.label is not None else f"{s}-{i}" if unlabelled[s] > 1 else s
        for i, (a, s) in enumerate(zip(args, stems, strict=True), start=1)
    ]
    for label in labels:
        if not LABEL.match(label):
            raise OptionError(
                f"--recipe: variant label {label!r} is not a plain name; give one with "
                "--recipe LABEL=NAME (letters, digits, '.', '_', '+', '-')"
            )
    twice = next((label for i, label in enumerate(labels) if label in labels[:i]), None)
    if twice is not None:
        raise OptionError(
            f"--recipe: two variants are labelled {twice!r}; give each its own label "
            "(--recipe LABEL=NAME)"
        )
    return labels


def variant_overrides(
    labels: Sequence[str], set_all: Sequence[str], set_for: Sequence[tuple[str, str]]
) -> list[list[str]]:
    """Per variant: the ``--set`` assignments, then its ``--set-for`` ones. ``--set-for``
    names a variant by label or by its 1-based position."""
    out = [list(set_all) for _ in labels]
    for who, assignment in set_for:
        if who in labels:
            index = labels.index(who)
        elif who.isdigit() and 1 <= int(who) <= len(labels):
            index = int(who) - 1
        else:
            raise OptionError(
                f"--set-for {who}: no such variant; name one of {', '.join(labels)} "
                f"(or its position 1..{len(labels)})"
            )
        out[index].append(assignment)
    for assignments in out:
        for assignment in assignments:
            if assignment.partition("=")[0].strip() == SEED_KEY:
                raise OptionError(
                    f"--set {assignment}: compare sets every run's train.seed itself (seed "
                    "s of --seeds N is train.seed=s); drop it and use --seeds"
                )
    return out


@attrs.frozen
class Variant:
    label: str
    recipe_arg: str
    """the recipe as named on the command line."""
    overrides: tuple[str, ...]
    recipe: Recipe

    def resolved(self) -> dict[str, Any]:
        """The recipe as a dict, ``train.seed`` left out (each run sets its own)."""
        data = recipe_to_dict(self.recipe)
        data["train"] = {k: v for k, v in data["train"].items() if k != "seed"}
        return data


def check_variants(variants: Sequence[Variant]) -> None:
    """One task and one ``[data]`` section for all variants (they share one built dataset)."""
    first = variants[0]
    for v in variants[1:]:
        if v.recipe.data.task != first.recipe.data.task:
            raise ConfigError(
                f"variant {v.label!r} trains task {v.recipe.data.task!r} but variant "
                f"{first.label!r} trains {first.recipe.data.task!r}; a comparison runs "
                "variants of one task on one test split"
            )
        found = _first_difference(attrs.asdict(first.recipe.data), attrs.asdict(v.recipe.data))
        if found:
            key, a, b = found
            raise ConfigError(
                f"variant {v.label!r}: data.{key} is {b!r} but variant {first.label!r} has "
                f"{a!r}; all variants must train on the same data (one built dataset, one "
                "test split), so drop that --set-for"
            )


def test_split_digest(store: Any) -> dict[str, Any]:
    """sha256 over the test split's contents (rows, labels, index arrays, identifiers and
    the shared metadata), independent of where the store lies and of its build id."""
    split = store.split("test")
    meta = split.meta
    shared = ("seq_len", "vocab_size", "total_examples", "total_puzzles", "total_groups")
    header = {key: getattr(meta, key) for key in shared}
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    indexes = (split.puzzle_identifiers, split.puzzle_indices, split.group_indices)
    for array in (*split.load(), *indexes):
        a = np.ascontiguousarray(array)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return {"sha256": digest.hexdigest(), "examples": int(meta.total_examples)}


def make_spec(
    variants: Sequence[Variant],
    *,
    seeds: int,
    budget_steps: int | None,
    data_path: Path,
    test: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "format": SPEC_FORMAT,
        "task": variants[0].recipe.data.task,
        "budget_steps": budget_steps,
        "seeds": seeds,
        "data": {"path": str(Path(data_path).absolute()), "test": dict(test)},
        "variants": [
            {
                "label": v.label,
                "recipe": v.recipe_arg,
                "overrides": list(v.overrides),
                "resolved": v.resolved(),
            }
            for v in variants
        ],
    }


def _first_difference(old: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            found = _first_difference(
                old.get(key), new.get(key), f"{path}.{key}" if path else str(key)
            )
            if found:
                return found
        return None
    return None if old == new else (path, old, new)


def spec_difference(old: Mapping[str, Any], new: Mapping[str, Any], data: bool) -> str | None:
    """The first way ``new`` describes another comparison than ``old`` (None: the same).
    ``data`` also compares the test split's hash (known only once the data is built)."""
    if old.get("format") != SPEC_FORMAT:
        return f"its format is {old.get('format')!r}, this trmkit writes {SPEC_FORMAT}"
    if old.get("task") != new.get("task"):
        return f"task {old.get('task')!r} there, {new.get('task')!r} here"
    if old.get("budget_steps") != new.get("budget_steps"):

        def budget(steps: Any) -> str:
            return f"--budget-steps {steps}" if steps else "each recipe's own step budget"

        return f"{budget(old.get('budget_steps'))} there, {budget(new.get('budget_steps'))} here"
    old_labels = [v.get("label") for v in old.get("variants", [])]
    new_labels = [v["label"] for v in new["variants"]]
    if old_labels != new_labels:
        return f"variants {', '.join(map(str, old_labels))} there, {', '.join(new_labels)} here"
    for o, n in zip(old["variants"], new["variants"], strict=True):
        o_res, n_res = o.get("resolved", {}), n["resolved"]
        for section in COMPARED_SECTIONS:
            found = _first_difference(o_res.get(section), n_res.get(section), section)
            if found:
                key, was, now = found
                return f"variant {n['label']!r}: {key} is {was!r} there, {now!r} here"
    if data:
        was = old.get("data", {}).get("test", {}).get("sha256")
        now = new["data"]["test"]["sha256"]
        if was != now:
            return (
                f"its test split has content hash {str(was)[:12]}..., the data built now "
                f"{now[:12]}... (a rebuilt or different dataset)"
            )
    return None


def read_spec(out: Path) -> dict[str, Any] | None:
    """The spec of comparison directory ``out`` (None: no comparison there yet). A
    non-empty directory without one is refused: it holds something else."""
    path = out / SPEC_NAME
    if path.is_file():
        data = read_json(path, error=CompareError, what="comparison spec")
        if not isinstance(data, dict):
            raise CompareError(f"{path}: not a JSON object; the comparison spec is damaged")
        return data
    if out.exists() and not out.is_dir():
        raise CompareError(f"{out}: a file, not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        raise CompareError(
            f"{out}: holds files but no {SPEC_NAME}, so it is not a comparison; choose an "
            "empty or new --out"
        )
    return None


def refuse_if_other(out: Path, old: Mapping[str, Any] | None, new: Mapping[str, Any], data: bool):
    if old is None:
        return
    diff = spec_difference(old, new, data)
    if diff is not None:
        raise CompareError(
            f"{out / SPEC_NAME}: the directory holds another comparison ({diff}); rerun with "
            "that comparison's arguments to resume it, or choose another --out"
        )


def write_spec(out: Path, spec: Mapping[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / SPEC_NAME, json.dumps(spec, indent=2, default=str) + "\n")


__all__ = [
    "SPEC_NAME",
    "CompareError",
    "Variant",
    "VariantArg",
    "check_variants",
    "default_labels",
    "make_spec",
    "read_spec",
    "refuse_if_other",
    "spec_difference",
    "test_split_digest",
    "variant_overrides",
    "write_spec",
]
