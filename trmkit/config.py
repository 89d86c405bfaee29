"""Training recipes: attrs sections loaded from TOML, ``--set key=value`` overrides, and a
small TOML writer for saving them (no dependency on tomli-w).

    recipe = load_recipe("sudoku-extreme-mlp", ["model.hidden_size=128", "optim.lr=3e-4"])
    cfg = recipe.model_config(seq_len=81, vocab_size=11, num_puzzle_identifiers=1, batch_size=768)

Every unknown key or badly typed value raises `ConfigError` naming the key and what is allowed.
The ``[model]`` section is ``name`` plus fields of the registered model's attrs config class.
"""

import json
import math
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from trmkit.errors import ConfigError
from trmkit.task import MAX_NUM_AUG, source_options

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@attrs.define(kw_only=True)
class DataSection:
    task: str = ""
    source: str | None = None
    num_aug: int | None = None
    subsample: int | None = None
    seed: int = 0
    strict: bool = False
    """as `trmkit build --strict`: puzzles with held-out test examples add no training rows."""
    options: dict = attrs.field(factory=dict)


@attrs.define(kw_only=True)
class ModelSection:
    name: str = "trm"
    fields: dict = attrs.field(factory=dict)


@attrs.define(kw_only=True)
class OptimSection:
    name: str = "adam_atan2"
    """the dense optimiser, a registered "optimizer" component (docs/engine.md, "Optimisers")."""
    no_decay: list[str] = attrs.field(factory=list)
    """parameters whose name contains one of these get no weight decay (none by default)."""
    global_batch_size: int = 768
    lr: float = 1e-4
    lr_min_ratio: float = 1.0
    warmup_steps: int = 2000
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.95
    puzzle_emb_lr: float = 1e-4
    puzzle_emb_weight_decay: float = 1.0
    ema: bool = True
    ema_rate: float = 0.999


@attrs.define(kw_only=True)
class TrainSection:
    epochs: int = 50000
    max_steps: int | None = None
    max_minutes: float = 0.0
    """a wall-clock budget: stop after the first step at which this many minutes of this
    process's training (evaluations included) have passed, evaluating and writing a
    checkpoint there (0: no limit; docs/training.md, "Budgets")."""
    eval_interval: int = 5000
    seed: int = 0
    checkpoint_keep: int = 3
    checkpoint_every_eval: bool = True
    checkpoint_every_steps: int = 0
    """a checkpoint every N steps, independent of evaluation (0: off)."""
    checkpoint_every_minutes: float = 5.0
    """a checkpoint when this many minutes passed since the last one (0: off)."""
    compile: bool = False
    log_every: int = 50
    eval_batch_size: int | None = None


@attrs.define(kw_only=True)
class Recipe:
    name: str = ""
    description: str = ""
    expected: str = ""
    hardware: str = ""
    data: DataSection = attrs.field(factory=DataSection)
    model: ModelSection = attrs.field(factory=ModelSection)
    optim: OptimSection = attrs.field(factory=OptimSection)
    train: TrainSection = attrs.field(factory=TrainSection)

    def model_config(self, **runtime: Any) -> Any:
        """The registered model's config: recipe fields, then runtime fields (seq_len, ...);
        within `COMPUTE_BOUNDS` (every scheduled value too), since a checkpoint asking for
        more is refused when loaded (docs/errors.md, "Bundles")."""
        cfg = make_model_config(self.model.name, {**self.model.fields, **runtime})
        fields = attrs.asdict(cfg) if attrs.has(type(cfg)) else {}
        for key, pieces in (fields.get("schedule") or {}).items():
            values = [v for _, v in pieces if isinstance(v, int)]
            fields[key] = max([fields.get(key) or 0, *values])
        excess = compute_excess(fields, "model.")
        if excess is not None:
            raise ConfigError(
                f"recipe {self.name!r}: {excess} (a checkpoint asking for more is refused when "
                "loaded); choose a smaller value"
            )
        return cfg


COMPUTE_BOUNDS: dict[str, int] = {
    **dict.fromkeys(("h_cycles", "l_cycles", "num_z", "h_layers", "l_layers", "num_layers"), 64),
    "halt_max_steps": 256,
    "puzzle_emb_len": 1024,
    "seq_len": 65536,
}
"""Upper bounds on the model config fields (of any registered model that has them) a loaded
manifest may ask for, and so a recipe may train (`Recipe.model_config`). Weights bound the
sizes of tensors, not how often a network runs: a manifest with ``l_cycles = 1e9`` would
make ``solve`` run for ever. Every recipe in tasks/ and the paper stays far below (T <= 3,
n <= 6, <= 8 layers, N_sup 16, prefix 16, 900 tokens);
docs/errors.md, "Bundles: the manifest is the truth"."""
MAX_RECURSION = 16384
"""bound on halt_max_steps x h_cycles x l_cycles (the paper's largest: 16 x 3 x 6 = 288)."""


def compute_excess(fields: Mapping[str, Any], prefix: str) -> str | None:
    """What in the model config ``fields`` asks for more than `COMPUTE_BOUNDS` /
    `MAX_RECURSION` (``field <prefix>K is V, more than the B allowed``), or None."""
    for key, bound in COMPUTE_BOUNDS.items():
        value = fields.get(key)
        if isinstance(value, int) and value > bound:
            return f"field {prefix}{key} is {value}, more than the {bound} allowed"
    depth = 1
    for key in ("halt_max_steps", "h_cycles", "l_cycles"):
        value = fields.get(key)
        depth *= value if isinstance(value, int) and value > 0 else 1
    if depth > MAX_RECURSION:
        return (
            f"fields {prefix}halt_max_steps x h_cycles x l_cycles ask for {depth} recursions "
            f"per puzzle, more than the {MAX_RECURSION} allowed"
        )
    return None


SECTIONS = {"data": DataSection, "optim": OptimSection, "train": TrainSection}
TEXT_FIELDS = ("name", "description", "expected", "hardware")


# ----------------------------------------------------------------------------- typing


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in attrs.fields(cls)}


def _parse_text(text: str) -> Any:
    """A --set value: a TOML literal when it parses as one, else the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def coerce(value: Any, kind: Any, key: str, raw: str | None = None) -> Any:
    """Check/convert ``value`` to the annotated ``kind``; ConfigError on mismatch."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in options:
            return None
        first: ConfigError | None = None
        for option in (o for o in options if o is not type(None)):
            try:
                return coerce(value, option, key, raw)
            except ConfigError as exc:
                first = first or exc
        raise first or ConfigError(f"{key}: bad value {value!r}")
    if kind is Any:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(float(value)):
                raise ConfigError(f"{key}: expected a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        if raw is not None and not isinstance(value, (dict, list)):
            return raw
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(kind)
        return [coerce(v, item, key) for v in value]
    if kind is dict or origin is dict:
        if isinstance(value, Mapping):
            return {str(k): v for k, v in value.items()}
        raise ConfigError(f"{key}: expected a table, got {value!r}")
    return value


def make_model_config(name: str, fields: Mapping[str, Any] | Any) -> Any:
    """The registered config class of model ``name`` built from a dict (unknown keys refused);
    an attrs instance is returned as is."""
    from trmkit import plugins

    spec = plugins.get_model(name)
    if attrs.has(type(fields)):
        return fields
    allowed = {f.name for f in attrs.fields(spec.config_cls)}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ConfigError(
            f"model.{unknown[0]}: not a field of model {name!r}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return spec.config_cls(**dict(fields))


def _model_types(name: str) -> dict[str, Any]:
    from trmkit import plugins

    return _field_types(plugins.get_model(name).config_cls)


def _check_model_fields(name: str, fields: Mapping[str, Any], where: str) -> dict[str, Any]:
    kinds = _model_types(name)
    out = {}
    for key, value in fields.items():
        if key not in kinds:
            raise ConfigError(
                f"{where}: model.{key} is not a field of model {name!r}; allowed: "
                f"name, {', '.join(sorted(kinds))}"
            )
        out[key] = _model_value(name, key, value, kinds, f"{where}: model.{key}")
    return out


def _model_value(
    model: str, key: str, value: Any, kinds: Mapping[str, Any], where: str, raw=None
) -> Any:
    typed = coerce(value, kinds[key], where, raw)
    return check_schedule(typed, kinds, where, model) if key == "schedule" else typed


def check_schedule(
    value: Mapping[str, Any], kinds: Mapping[str, Any], where: str, model: str
) -> dict:
    """``model.schedule``: ``{field: [[fraction, value], ...]}``, fractions rising strictly from
    0.0 below 1.0, values of the field's type (docs/recipes.md, "Schedules"). Which fields may
    be scheduled is the architecture's (`trmkit.models.core.CoreConfig.schedulable`); a field
    the model ``model`` lacks (TRM-CGAR's h_cycles on the transformer) is refused naming it."""
    out = {}
    for key, pieces in value.items():
        name = f"{where}.{key}"
        if key not in kinds or key == "schedule":
            raise ConfigError(f"{name}: not a field of model {model!r}; schedule one of its fields")
        shape = "expected [[fraction, value], ...], e.g. [[0.0, 1], [0.3, 2]]"
        if not isinstance(pieces, list) or not pieces:
            raise ConfigError(f"{name}: {shape}")
        checked = []
        for piece in pieces:
            if not (isinstance(piece, list) and len(piece) == 2):
                raise ConfigError(f"{name}: {shape}, got {piece!r}")
            start = coerce(piece[0], float, f"{name} fraction")
            checked.append([start, coerce(piece[1], kinds[key], name)])
        starts = [start for start, _ in checked]
        if starts[0] != 0.0 or starts[-1] >= 1.0 or starts != sorted(set(starts)):
            raise ConfigError(
                f"{name}: fractions {starts} must start at 0.0 and rise strictly below 1.0"
            )
        out[key] = checked
    return out


# ----------------------------------------------------------------------------- loading


def recipe_from_dict(raw: Mapping[str, Any], where: str = "recipe") -> Recipe:
    """Build and validate a Recipe from parsed TOML (``where`` names the file in errors)."""
    allowed_top = {*TEXT_FIELDS, *SECTIONS, "model"}
    for key in raw:
        if key not in allowed_top:
            raise ConfigError(
                f"{where}: unknown key {key!r}; allowed: {', '.join(sorted(allowed_top))}"
            )
    kwargs: dict[str, Any] = {
        key: coerce(raw[key], str, f"{where}: {key}") for key in TEXT_FIELDS if key in raw
    }
    for section, cls in SECTIONS.items():
        values = raw.get(section, {})
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: [{section}] must be a table")
        kinds = _field_types(cls)
        checked = {}
        for key, value in values.items():
            if key not in kinds:
                raise ConfigError(
                    f"{where}: unknown key {section}.{key}; allowed: "
                    + ", ".join(f"{section}.{k}" for k in sorted(kinds))
                )
            checked[key] = coerce(value, kinds[key], f"{where}: {section}.{key}")
            if (section, key) == ("data", "options"):  # one value each (docs/errors.md)
                checked[key] = source_options(checked[key], f"{where}: data.options")
            check_range(section, key, checked[key], where)
        kwargs[section] = cls(**checked)
    model = dict(raw.get("model", {}))
    name = coerce(model.pop("name", ModelSection().name), str, f"{where}: model.name")
    kwargs["model"] = ModelSection(name=name, fields=_check_model_fields(name, model, where))
    return Recipe(**kwargs)


def apply_override(recipe: Recipe, assignment: str) -> Recipe:
    """Apply one ``section.key=value`` (``data.options.k=v`` for options) in place."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. optim.lr=3e-4")
    key, text = (part.strip() for part in assignment.split("=", 1))
    value = _parse_text(text)
    parts = key.split(".")
    where = f"--set {key}"
    if len(parts) == 1 and key in TEXT_FIELDS:
        setattr(recipe, key, text)
    elif parts == ["model", "name"]:
        recipe.model.name = coerce(value, str, where, text)
        recipe.model.fields = _check_model_fields(recipe.model.name, recipe.model.fields, where)
    elif parts[0] == "model" and len(parts) == 2:
        kinds = _model_types(recipe.model.name)
        if parts[1] not in kinds:
            raise ConfigError(
                f"{where}: unknown key; allowed: model.name, "
                + ", ".join(f"model.{k}" for k in sorted(kinds))
            )
        recipe.model.fields[parts[1]] = _model_value(
            recipe.model.name, parts[1], value, kinds, where, text
        )
    elif parts[:2] == ["data", "options"] and len(parts) == 3:
        recipe.data.options[parts[2]] = text
    elif parts[0] in SECTIONS and len(parts) == 2:
        kinds = _field_types(SECTIONS[parts[0]])
        if parts[1] not in kinds:
            raise ConfigError(
                f"{where}: unknown key; allowed: "
                + ", ".join(f"{parts[0]}.{k}" for k in sorted(kinds))
            )
        typed = coerce(value, kinds[parts[1]], where, text)
        check_range(parts[0], parts[1], typed, "--set")
        setattr(getattr(recipe, parts[0]), parts[1], typed)
    else:
        allowed = [*TEXT_FIELDS, "model.<field>", *(f"{s}.<field>" for s in SECTIONS)]
        raise ConfigError(f"{where}: unknown key; allowed: {', '.join(allowed)}")
    return recipe


def load_recipe(name_or_path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """A recipe by name (tasks/<name>.toml) or path, with ``--set`` overrides applied."""
    from trmkit.recipes import find_recipe
    from trmkit.textio import read_text

    path = find_recipe(str(name_or_path))
    text = read_text(path, max_bytes=MAX_RECIPE_BYTES, error=ConfigError, what="recipe")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    recipe = recipe_from_dict(raw, where=str(path))
    if not recipe.name:
        recipe.name = path.stem
    for assignment in overrides:
        apply_override(recipe, assignment)
    return recipe


# ----------------------------------------------------------------------------- saving


def _toml_value(value: Any) -> str:
    """A bool, finite number, string or list of them in TOML: their JSON text, which is
    TOML's but for a raw DEL (TOML forbids it in a string)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    finite = not isinstance(value, float) or math.isfinite(value)
    if not (finite and isinstance(value, (bool, int, float, str))):
        raise ConfigError(f"cannot write {type(value).__name__} {value!r} to TOML")
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _table(lines: list[str], header: str, values: Mapping[str, Any]) -> None:
    lines.append(f"\n[{header}]")
    # TOML has no null: an absent key means the default (None); sub-tables follow the values
    scalars = {k: v for k, v in values.items() if v is not None and not isinstance(v, Mapping)}
    lines += [f"{key} = {_toml_value(value)}" for key, value in scalars.items()]
    for key, value in values.items():
        if isinstance(value, Mapping):
            _table(lines, f"{header}.{key}", value)


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    out = attrs.asdict(recipe)
    out["model"] = {"name": recipe.model.name, **recipe.model.fields}
    return out


def recipe_to_toml(recipe: Recipe) -> str:
    """TOML text that `load_recipe` reads back to an equal Recipe."""
    data = recipe_to_dict(recipe)
    lines = [f"{key} = {_toml_value(data[key])}" for key in TEXT_FIELDS]
    for section in ("data", "model", "optim", "train"):
        _table(lines, section, data[section])
    return "\n".join(lines) + "\n"


def save_recipe(recipe: Recipe, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(recipe_to_toml(recipe), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- value ranges
# (hardening, issue 11) Every numeric recipe field with a meaningful range; a value outside
# it is a ConfigError naming the field and the range. Names not (yet) fields of a section
# are never looked up, so listing a field another branch adds is harmless.

MAX_RECIPE_BYTES = 1 << 20
"""a recipe file larger than this (1 MiB) is refused before it is parsed."""


@attrs.frozen
class Range:
    """``lo <= value <= hi`` (``< hi`` with ``hi_open``; no upper bound for ``hi`` None)."""

    lo: float
    hi: float | None = None
    hi_open: bool = False

    def contains(self, value: float) -> bool:
        below_hi = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
        return self.lo <= value and below_hi

    def describe(self) -> str:
        def text(v: float) -> str:
            return str(v) if isinstance(v, int) else f"{v:g}"

        if self.hi is None:
            return f">= {text(self.lo)}"
        return f"in [{text(self.lo)}, {text(self.hi)}{')' if self.hi_open else ']'}"


MAX_SEED = 2**63 - 1
"""seeds are int64 (torch.manual_seed refuses 2**64 with a ValueError once training starts)."""

RANGES: dict[str, Range] = {
    "data.num_aug": Range(0, MAX_NUM_AUG),
    "data.subsample": Range(1),
    "data.seed": Range(0, MAX_SEED),
    "optim.global_batch_size": Range(1),
    "optim.lr": Range(0),
    "optim.lr_min_ratio": Range(0, 1),
    "optim.warmup_steps": Range(0),
    "optim.weight_decay": Range(0),
    "optim.beta1": Range(0, 1, hi_open=True),
    "optim.beta2": Range(0, 1, hi_open=True),
    "optim.puzzle_emb_lr": Range(0),
    "optim.puzzle_emb_weight_decay": Range(0),
    "optim.ema_rate": Range(0, 1),
    "train.epochs": Range(1),
    "train.max_steps": Range(1),
    "train.max_minutes": Range(0),
    "train.eval_interval": Range(0),
    "train.seed": Range(0, MAX_SEED),
    "train.checkpoint_keep": Range(0),
    "train.log_every": Range(1),
    "train.eval_batch_size": Range(1),
    "train.checkpoint_every_steps": Range(0),
    "train.checkpoint_every_minutes": Range(0),
}


def check_range(section: str, key: str, value: Any, where: str) -> None:
    """ConfigError if ``section.key`` has a range in `RANGES` and ``value`` is outside it
    (None, the "unset" of optional fields, is always allowed)."""
    allowed = RANGES.get(f"{section}.{key}")
    if allowed is None or value is None or isinstance(value, bool):
        return
    if isinstance(value, (int, float)) and not allowed.contains(value):
        raise ConfigError(
            f"{where}: {section}.{key} = {value!r} is out of range; it must be {allowed.describe()}"
        )


# ----------------------------------------------------------------------------- resuming

RESUME_MAY_CHANGE = frozenset(
    {
        "train.epochs",
        "train.max_steps",
        "train.max_minutes",
        "train.log_every",
        "train.checkpoint_keep",
        "train.checkpoint_every_eval",
        "train.checkpoint_every_steps",
        "train.checkpoint_every_minutes",
        "train.eval_batch_size",
    }
)
"""The only recipe settings that may differ on --resume (docs/training.md, "Checkpoints and
exact resume"): the budget (as --max-steps), logging, checkpoint cadence and the evaluation
batch, none of which changes the trajectory. Every other setting (data, model incl. its
dtype, optimiser incl. the batch, seed, eval_interval, compile, and any setting added
later) must match the run's."""


def resume_mismatch(saved: Mapping[str, Any], recipe: Recipe) -> str | None:
    """The first setting of ``recipe`` outside `RESUME_MAY_CHANGE` that differs from the
    ``saved`` recipe dict of a run (``"optim.lr is 0.002 but ... 0.001"`` without the run's
    name), or None when the run can resume exactly. A setting the saved recipe lacks
    (written before the setting existed) counts as its default."""
    now = recipe_to_dict(recipe)
    for section in ("data", "model", "optim", "train"):
        defaults = attrs.asdict(SECTIONS[section]()) if section in SECTIONS else {}
        old = {**defaults, **saved.get(section, {})}
        new = now.get(section, {})
        for key in sorted(set(old) | set(new)):
            if f"{section}.{key}" in RESUME_MAY_CHANGE:
                continue
            if old.get(key) != new.get(key):
                return (
                    f"{section}.{key} is {new.get(key)!r} but the run was trained with "
                    f"{old.get(key)!r}"
                )
    return None
