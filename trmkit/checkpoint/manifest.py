"""The manifest of a checkpoint bundle (``manifest.json``) as typed attrs records, and the
compatibility checks a bundle must pass before it is used with a task or a dataset store.

JSON layout (format version 1)::

    {"format": "trmkit-checkpoint", "format_version": 1, "trmkit_version": "0.1.0",
     "step": 1000,
     "model": {"name": "trm", "config": {<fields of the registered attrs config>}},
     "task": {"name": "sudoku-extreme", "version": "1"},
     "dataset": {<SplitMeta of the training split>, "path": "...", "store": {<store attrs>}},
     "recipe": {<trmkit.config.recipe_to_dict>},
     "weights": {"ema": true},
     "eval": {<last evaluation's numeric metrics>}}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from trmkit import __version__
from trmkit.config import compute_excess
from trmkit.errors import CheckpointError
from trmkit.task import Task

FORMAT = "trmkit-checkpoint"
FORMAT_VERSION = 1


@attrs.define(kw_only=True)
class ModelRecord:
    """The registered architecture and its config fields (`trmkit.models.make_config`)."""

    name: str
    config: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(kw_only=True)
class TaskRecord:
    """The task whose codec encoded the training data."""

    name: str
    version: str


@attrs.define(kw_only=True)
class DatasetRecord:
    """The training data: token shape, puzzle ids, where the store was, its attributes."""

    seq_len: int
    vocab_size: int
    num_puzzle_identifiers: int = 1
    blank_identifier_id: int = 0
    path: str = ""
    """the store trained on (`trmkit eval` reads its test split when --data is not given)."""
    store: dict[str, Any] = attrs.field(factory=dict)
    """scalar attributes of the store (source, seed, num_aug, ...)."""
    meta: dict[str, Any] = attrs.field(factory=dict)
    """the other `SplitMeta` attributes of the training split (pad_id, total_groups, ...)."""


_NOT_META = attrs.filters.exclude(attrs.fields(DatasetRecord).meta)


@attrs.define(kw_only=True)
class Manifest:
    """What a bundle holds and how it was made; `to_json`/`from_json` map manifest.json."""

    step: int
    model: ModelRecord
    task: TaskRecord
    dataset: DatasetRecord
    recipe: dict[str, Any] = attrs.field(factory=dict)
    ema: bool = False
    """the bundle has ema.safetensors (EMA weights, loaded by default)."""
    eval: dict[str, float] = attrs.field(factory=dict)
    trmkit_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "trmkit_version": self.trmkit_version,
            "step": self.step,
            "model": attrs.asdict(self.model),
            "task": attrs.asdict(self.task),
            # the record's fields in declaration order after the split's other attributes
            "dataset": {**self.dataset.meta, **attrs.asdict(self.dataset, filter=_NOT_META)},
            "recipe": dict(self.recipe),
            "weights": {"ema": self.ema},
            "eval": {k: v for k, v in self.eval.items() if isinstance(v, (int, float))},
        }

    @classmethod
    def of_training(
        cls,
        *,
        step: int,
        model_name: str,
        model_config: Any,
        task: Task,
        split_meta: Any,
        data_path: Path | str,
        store_attrs: Mapping[str, Any],
        recipe: Mapping[str, Any],
        ema: bool,
        eval: Mapping[str, float],
    ) -> Manifest:  # noqa: A002 - the field's name
        """The manifest of a training run's checkpoint: ``model_config`` the attrs config
        instance, ``split_meta`` the training split's `SplitMeta`, ``recipe`` as
        `trmkit.config.recipe_to_dict`, ``eval`` the last evaluation's metrics."""
        meta = attrs.asdict(split_meta)
        known = {f.name for f in attrs.fields(DatasetRecord)} - {"path", "store", "meta"}
        return cls(
            step=step,
            model=ModelRecord(name=model_name, config=attrs.asdict(model_config)),
            task=TaskRecord(name=task.name, version=str(task.version)),
            dataset=DatasetRecord(
                **{k: meta[k] for k in known if k in meta},
                path=str(data_path),
                store={
                    k: v for k, v in store_attrs.items() if isinstance(v, (str, int, float, bool))
                },
                meta={k: v for k, v in meta.items() if k not in known},
            ),
            recipe=dict(recipe),
            ema=ema,
            eval=dict(eval),
        )

    @classmethod
    def from_json(cls, data: Any, where: Path | str) -> Manifest:
        """Validate parsed manifest.json; every problem is a CheckpointError naming ``where``."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CheckpointError(f"{where}: not a trmkit checkpoint manifest")
        if data.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{where}: checkpoint format {data.get('format_version')} is not supported by "
                f"trmkit {__version__} (expects {FORMAT_VERSION}); use the matching trmkit "
                "version"
            )
        field = _Fields(where)
        model = field.table(data, "model")
        task = field.table(data, "task")
        dataset = dict(field.table(data, "dataset"))
        num_ids = field.integer(dataset, "dataset.num_puzzle_identifiers", lo=1, default=1)
        known = {f.name for f in attrs.fields(DatasetRecord)} - {"meta"}
        return cls(
            step=field.integer(data, "step", lo=0),
            model=ModelRecord(
                name=field.text(model, "model.name"),
                config=dict(field.table(model, "model.config", optional=True)),
            ),
            task=TaskRecord(
                name=field.text(task, "task.name"),
                version=str(
                    field.get(task, "task.version", "a string", _is_text_or_int, default="")
                ),
            ),
            dataset=DatasetRecord(
                seq_len=field.integer(dataset, "dataset.seq_len", lo=1),
                vocab_size=field.integer(dataset, "dataset.vocab_size", lo=1),
                num_puzzle_identifiers=num_ids,
                blank_identifier_id=field.integer(
                    dataset, "dataset.blank_identifier_id", lo=0, hi=num_ids - 1, default=0
                ),
                path=field.text(dataset, "dataset.path", default=""),
                store=dict(field.table(dataset, "dataset.store", optional=True)),
                meta={k: v for k, v in dataset.items() if k not in known},
            ),
            recipe=dict(field.table(data, "recipe", optional=True)),
            ema=field.get(
                field.table(data, "weights", optional=True),
                "weights.ema",
                "true or false",
                lambda v: isinstance(v, bool),
                default=False,
            ),
            eval={
                k: v
                for k, v in field.table(data, "eval", optional=True).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            },
            trmkit_version=field.text(data, "trmkit_version", default=""),
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text_or_int(value: Any) -> bool:
    return isinstance(value, str) or _is_int(value)


@attrs.frozen
class _Fields:
    """Typed access to manifest fields, each named by its dotted path (``dataset.vocab_size``);
    every problem a CheckpointError naming the file, the field and what it must be."""

    where: Path | str

    def get(
        self,
        data: Mapping[str, Any],
        name: str,
        expected: str,
        ok: Callable[[Any], bool],
        default: Any = None,
    ) -> Any:
        """The field's value, or ``default`` (when not None) if the field is absent (else
        an absent field is refused as missing)."""
        key = name.rpartition(".")[2]
        if key not in data and default is not None:
            return default
        value = data.get(key)
        if not ok(value):
            shown = repr(value) if key in data else "missing"
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise CheckpointError(
                f"{self.where}: field {name} is {shown}, expected {expected}; "
                "the manifest is damaged or was edited"
            )
        return value

    def table(
        self, data: Mapping[str, Any], name: str, *, optional: bool = False
    ) -> Mapping[str, Any]:
        default: dict[str, Any] | None = {} if optional else None
        return self.get(data, name, "an object", lambda v: isinstance(v, dict), default)

    def integer(
        self,
        data: Mapping[str, Any],
        name: str,
        *,
        lo: int,
        hi: int | None = None,
        default: int | None = None,
    ) -> int:
        bounds = f" in [{lo}, {hi}]" if hi is not None else f" >= {lo}"
        return self.get(
            data,
            name,
            f"an integer{bounds}",
            lambda v: _is_int(v) and v >= lo and (hi is None or v <= hi),
            default,
        )

    def text(self, data: Mapping[str, Any], name: str, *, default: str | None = None) -> str:
        """A string; a non-empty one when the field has no default."""
        if default is None:
            return self.get(data, name, "a non-empty string", lambda v: isinstance(v, str) and v)
        return self.get(data, name, "a string", lambda v: isinstance(v, str), default)


# ------------------------------------------------------------------------------- compute


def check_model_compute(manifest: Manifest, fields: Mapping[str, Any], where: Path | str) -> None:
    """Refuse a manifest whose model config (``fields``: type-checked config values) asks
    for more recursion than `COMPUTE_BOUNDS` / `MAX_RECURSION`, or whose model dimensions
    differ from its dataset record; one CheckpointError naming the field, value and bound."""
    fix = "the manifest is damaged or was edited"
    excess = compute_excess(fields, "model.config.")
    if excess is not None:
        raise CheckpointError(f"{where}: {excess}; {fix}")
    for key in ("seq_len", "vocab_size", "num_puzzle_identifiers"):
        value, want = fields.get(key), getattr(manifest.dataset, key)
        if isinstance(value, int) and value != want:
            raise CheckpointError(
                f"{where}: field model.config.{key} is {value} but dataset.{key} is {want}; {fix}"
            )


# ----------------------------------------------------------------------------- compatibility


def check_task_matches(manifest: Manifest, task: Task, where: Path | str) -> None:
    """The bundle must have been trained on this task's encoding (version, seq_len, vocab)."""
    codec = task.codec
    if manifest.task.version != str(task.version):
        raise CheckpointError(
            f"{where}: trained with task {task.name!r} version {manifest.task.version!r}, the "
            f"installed plugin is version {task.version!r}; use the matching plugin version"
        )
    for key, have, want in (
        ("seq_len", manifest.dataset.seq_len, codec.seq_len),
        ("vocab_size", manifest.dataset.vocab_size, codec.vocab_size),
    ):
        if int(have) != int(want):
            raise CheckpointError(
                f"{where}: checkpoint {key} {have} does not match task {task.name!r} ({want}); "
                "it was trained on another task or vocabulary"
            )


def check_store_matches(manifest: Manifest, meta: Any, where: Path | str) -> None:
    """A store split (its `SplitMeta`) must be encoded like the bundle's training data."""
    adapted = "adapted_from" in manifest.dataset.store  # `trmkit adapt` appended rows
    for key in ("seq_len", "vocab_size", "num_puzzle_identifiers"):
        have, want = int(getattr(meta, key)), int(getattr(manifest.dataset, key))
        if have != want and not (adapted and key == "num_puzzle_identifiers" and have < want):
            raise CheckpointError(
                f"{where}: {key} {have} does not match the checkpoint's {want}; evaluate on "
                "a store built like the training data"
            )


STORE_IDENTITY_KEYS = (
    "task",
    "task_version",
    "source",
    "seed",
    "num_aug",
    "subsample",
    "strict",
    "puzzle_ids",
    "augment_test",
    "transform_size",
    "seq_len",
    "vocab_size",
    "num_puzzle_identifiers",
)
"""store attributes that say which data a store holds, compared when either side lacks the
content hash (`trmkit.data.store.CONTENT_KEY`; stores built before it was recorded)."""
SPLIT_IDENTITY_KEYS = ("total_groups", "total_puzzles", "total_examples")
CONTENT_KEY = "content_sha256"


def dataset_mismatch(record: DatasetRecord, store: Any) -> str | None:
    """How ``store`` (a `trmkit.data.store.Store`: its root attributes and its training
    split's `SplitMeta`) differs from the data a checkpoint was trained on, or None when it
    is the same data: the same content hash where both record one, else the same provenance
    attributes and training-split sizes (docs/errors.md, "Run directories")."""
    mine, theirs = record.store.get(CONTENT_KEY), store.attrs.get(CONTENT_KEY)
    if isinstance(mine, str) and isinstance(theirs, str):
        if mine != theirs:
            return f"content hash {theirs[:12]} (trained on {mine[:12]})"
        return None
    for key in STORE_IDENTITY_KEYS:
        if key in record.store and record.store[key] != store.attrs.get(key):
            return f"{key} {store.attrs.get(key)!r} (trained on {record.store[key]!r})"
    if "train" not in store.splits:
        return None
    train_meta = store.split("train").meta
    for key in SPLIT_IDENTITY_KEYS:
        want = record.meta.get(key)
        if want is not None and getattr(train_meta, key) != want:
            return f"training split {key} {getattr(train_meta, key)!r} (trained on {want!r})"
    return None
