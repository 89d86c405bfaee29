"""The one plugin manager: loads `trmkit` entry points lazily, once, and validates every
registration (errors name the plugin that made it).

Isolation: a plugin that fails to import, or whose registrations fail validation, is
skipped with one warning line naming plugin, distribution and problem; the other plugins
keep working, and `trmkit plugins` lists every failure. An exception raised in plugin code
while a command runs becomes one line naming plugin, task and hook (`plugin_failure`).

``TRMKIT_LOAD_PLUGINS`` (comma-separated plugin or distribution names, compared after PEP
503 normalisation; empty = none) restricts which third-party plugins load, and names that
match nothing are warned about. The built-in plugins ship in the ``trmkit`` distribution,
always load, and load first: a third-party entry point with a built-in's name is refused
with a warning. ``TRMKIT_TRACE_HOOKS=1`` prints every hook call to stderr.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs
import pluggy

from trmkit import hookspecs
from trmkit.errors import PluginError, TrmkitError, UnknownNameError
from trmkit.task import (
    Augmenter,
    BuildDefaults,
    Codec,
    Evaluator,
    Source,
    Task,
    protocol_problems,
)
from trmkit.textio import printable

ENTRY_POINT_GROUP = "trmkit"
BUILTIN_DISTRIBUTION = "trmkit"

pm = pluggy.PluginManager("trmkit")
pm.add_hookspecs(hookspecs)

_loaded = False

MAX_TASK_NAME = 64
"""a task name names dataset cache directories and scaffolded packages: at most this long."""


@attrs.frozen
class ModelSpec:
    """A registered architecture: ``factory(config) -> torch.nn.Module``."""

    name: str
    factory: Callable[..., Any]
    config_cls: type
    description: str
    plugin: str


@attrs.frozen
class TaskEntry:
    task: Task
    plugin: str
    aliases: tuple[str, ...]


def normalize(name: str) -> str:
    """PEP 503 normalisation: ``Trmkit_Life.client`` -> ``trmkit-life-client``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _allowed_names() -> set[str] | None:
    value = os.environ.get("TRMKIT_LOAD_PLUGINS")
    if value is None:
        return None
    return {normalize(name.strip()) for name in value.split(",") if name.strip()}


def _warn(message: str) -> None:
    sys.stderr.write(f"Warning: {printable(message)}\n")


def load_plugins() -> None:
    """Import every `trmkit` entry point (once). Idempotent and cheap after the first call."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    allowed = _allowed_names()
    if os.environ.get("TRMKIT_TRACE_HOOKS"):
        pm.trace.root.setwriter(lambda message: sys.stderr.write(message))
        pm.enable_tracing()
    points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    # built-ins first, so that a third-party entry point can never take a built-in's name
    points.sort(key=lambda ep: _dist_name(ep) != BUILTIN_DISTRIBUTION)
    matched: set[str] = set()
    filtered_out.clear()
    for ep in points:
        dist = _dist_name(ep)
        builtin = dist == BUILTIN_DISTRIBUTION
        if not builtin and allowed is not None:
            keys = {normalize(ep.name), normalize(dist)}
            if not keys & allowed:
                filtered_out[ep.name] = dist
                continue
            matched.update(keys & allowed)
        owner = _dist_of.get(ep.name)
        if owner is not None and owner != dist:
            message = (
                f"plugin {ep.name!r} of distribution {dist or '?'} was not loaded: its entry "
                f"point has the name of the plugin of distribution {owner}; rename the entry "
                f"point in its pyproject.toml"
            )
            failed[ep.name + f" ({dist})"] = message
            _warn(message)
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            module = ep.load()
        except Exception as exc:  # one broken plugin must not take the others down
            message = (
                f"plugin {ep.name!r} (distribution {dist or '?'}) failed to import and was "
                f"skipped: {type(exc).__name__}: {exc}"
            )
            if not builtin:
                message += "; uninstall it or leave it out of TRMKIT_LOAD_PLUGINS"
            failed[ep.name] = message
            _warn(message)
            continue
        pm.register(module, name=ep.name)
        _dist_of[ep.name] = dist
    if allowed is not None:
        for name in sorted(allowed - matched):
            installed = sorted(
                {f"{ep.name} ({_dist_name(ep)})" for ep in points}
                - {f"{ep.name} ({BUILTIN_DISTRIBUTION})" for ep in points}
            )
            _warn(
                f"TRMKIT_LOAD_PLUGINS names {name!r}, which matches no installed plugin or "
                f"distribution (third-party plugins installed: {', '.join(installed) or 'none'})"
            )


def _dist_name(ep: metadata.EntryPoint) -> str:
    return (ep.dist.name if ep.dist is not None else "").lower()


_dist_of: dict[str, str] = {}
failed: dict[str, str] = {}
"""plugin -> why it could not be loaded (shown by `trmkit plugins` and errors)."""
rejected: dict[str, str] = {}
"""plugin -> why its registrations were refused (cleared by `reset`)."""
filtered_out: dict[str, str] = {}
"""plugin -> distribution, of the third-party plugins TRMKIT_LOAD_PLUGINS left out."""


def plugin_name(plugin: object) -> str:
    return pm.get_name(plugin) or str(getattr(plugin, "__name__", repr(plugin)))


# --------------------------------------------------------------------------- tasks


def _check_task(task: Any, plugin: str) -> Task:
    where = f"plugin {plugin!r}"
    if not isinstance(task, Task):
        raise PluginError(f"{where} registered {type(task).__name__}, not a trmkit.task.Task")
    where = f"{where} (task {task.name!r})"
    if (
        not task.name
        or not task.name.replace("-", "").replace("_", "").isascii()
        or not task.name.replace("-", "").replace("_", "").isalnum()
        or len(task.name) > MAX_TASK_NAME
    ):
        raise PluginError(
            f"{where}: task name must be 1 to {MAX_TASK_NAME} ASCII letters, digits, '-' or '_' "
            f"(it names directories)"
        )
    checks: list[tuple[str, Any, type]] = [
        ("codec", task.codec, Codec),
        ("augmenter", task.augmenter, Augmenter),
        ("evaluator", task.evaluator, Evaluator),
        ("defaults", task.defaults, BuildDefaults),
    ]
    for field, value, proto in checks:
        if value is None:
            raise PluginError(f"{where}: missing {field}")
        if not isinstance(value, proto):
            raise PluginError(
                f"{where}: {field} is a {type(value).__name__}, which does not implement "
                f"{proto.__name__} (see docs/plugins.md)"
            )
    codec = task.codec
    for attr in ("seq_len", "vocab_size", "pad_id", "ignore_label_id"):
        if not isinstance(getattr(codec, attr), int):
            raise PluginError(f"{where}: codec.{attr} must be an int")
    if codec.seq_len <= 0 or not 1 < codec.vocab_size <= 256:
        raise PluginError(f"{where}: codec needs seq_len > 0 and 2 <= vocab_size <= 256 (uint8)")
    if not isinstance(task.augmenter.transform_size, int) or task.augmenter.transform_size < 1:
        raise PluginError(f"{where}: augmenter.transform_size must be a positive int")
    for field in ("codec", "augmenter", "evaluator"):
        for problem in protocol_problems(field, getattr(task, field)):
            raise PluginError(f"{where}: {problem} (see docs/plugins.md)")
    if not task.sources:
        raise PluginError(f"{where}: no sources")
    for key, source in task.sources.items():
        if not isinstance(source, Source) or not callable(source.load):
            raise PluginError(f"{where}: source {key!r} is not a trmkit.task.Source")
    if task.defaults.source not in task.sources:
        raise PluginError(f"{where}: default source {task.defaults.source!r} is not in sources")
    if task.path_source is not None and task.path_source not in task.sources:
        raise PluginError(f"{where}: path_source {task.path_source!r} is not in sources")
    return task


def _impls(hook: Any) -> list[Any]:
    """Hook implementations, built-in plugins first, then by plugin name (deterministic:
    on a clash the built-in, or the first name, keeps its registration)."""
    return sorted(
        hook.get_hookimpls(),
        key=lambda impl: (_dist_of.get(impl.plugin_name) != BUILTIN_DISTRIBUTION, impl.plugin_name),
    )


def _reject(plugin: str, problem: str, outcome: str = "was skipped") -> None:
    dist = _dist_of.get(plugin) or "?"
    message = f"plugin {plugin!r} (distribution {dist}) {outcome}: {problem}"
    if rejected.get(plugin) != message:
        _warn(message)
    rejected[plugin] = message


def _problem(exc: Exception, plugin: str) -> str:
    """The reason of a refused registration, without repeating the plugin's name."""
    if isinstance(exc, PluginError):
        return str(exc).removeprefix(f"plugin {plugin!r} ").removeprefix(f"plugin {plugin!r}: ")
    return f"its hook raised {type(exc).__name__}: {exc}"


def _collect_tasks() -> dict[str, TaskEntry]:
    load_plugins()
    entries: dict[str, TaskEntry] = {}
    names: dict[str, tuple[str, str]] = {}  # name or alias -> (owning plugin, task name)

    for impl in _impls(pm.hook.register_tasks):
        plugin = impl.plugin_name
        mine: dict[str, TaskEntry] = {}
        my_names: dict[str, tuple[str, str]] = {}
        clashes: list[str] = []

        def register(
            task: Task,
            aliases: Iterable[str] = (),
            _plugin: str = plugin,
            mine: dict[str, TaskEntry] = mine,
            my_names: dict[str, tuple[str, str]] = my_names,
            clashes: list[str] = clashes,
        ) -> None:
            task = _check_task(task, _plugin)
            alias_tuple = tuple(aliases)
            for alias in alias_tuple:
                if not isinstance(alias, str) or not alias:
                    raise PluginError(
                        f"plugin {_plugin!r} (task {task.name!r}): bad alias {alias!r}"
                    )
            keys = (task.name, *alias_tuple)
            for key in keys:
                if key in my_names:  # the plugin clashes with itself: a bug, refused whole
                    other, other_task = my_names[key]
                    kind = "task name" if key == task.name else "alias"
                    raise PluginError(
                        f"plugin {_plugin!r} (task {task.name!r}): {kind} {key!r} is already "
                        f"registered by plugin {other!r} (task {other_task!r}); rename it"
                    )
            taken = next((key for key in keys if key in names), None)
            if taken is not None:  # another plugin's name: only this task is skipped
                other, other_task = names[taken]
                kind = "task name" if taken == task.name else "alias"
                clashes.append(
                    f"(task {task.name!r}): {kind} {taken!r} is already registered by plugin "
                    f"{other!r} (task {other_task!r}); rename it"
                )
                return
            for key in keys:
                my_names[key] = (_plugin, task.name)
            mine[task.name] = TaskEntry(task, _plugin, alias_tuple)

        try:
            impl.function(register=register)
        except Exception as exc:  # skip this plugin whole, keep the others
            _reject(plugin, _problem(exc, plugin))
            continue
        if clashes:
            _reject(plugin, "; ".join(clashes), "had a task skipped (its other tasks load)")
        entries.update(mine)
        names.update(my_names)
    return entries


_tasks: dict[str, TaskEntry] | None = None
_models: dict[str, ModelSpec] | None = None


def task_entries() -> dict[str, TaskEntry]:
    global _tasks
    if _tasks is None:
        _tasks = _collect_tasks()
    return _tasks


def get_task(name: str) -> Task:
    """A task by name or alias; unknown names raise with the list of known ones."""
    entries = task_entries()
    for entry in entries.values():
        if name == entry.task.name or name in entry.aliases:
            _current[:] = [entry]
            return entry.task
    known = ", ".join(sorted(entries)) or "none (no task plugin is installed)"
    broken = "".join(f" ({why})" for why in (*failed.values(), *rejected.values()))
    hidden = ""
    if filtered_out:
        left_out = ", ".join(f"{p} ({d or '?'})" for p, d in sorted(filtered_out.items()))
        hidden = (
            f" (TRMKIT_LOAD_PLUGINS={os.environ.get('TRMKIT_LOAD_PLUGINS', '')!r} left out the "
            f"plugins {left_out}; the task may be theirs: add the plugin or distribution name)"
        )
    raise UnknownNameError(f"unknown task {name!r}; known tasks: {known}{broken}{hidden}")


def owner_of(task: Task) -> str | None:
    """The plugin that registered ``task`` (None for a task nobody registered)."""
    for entry in task_entries().values():
        if entry.task is task:
            return entry.plugin
    return None


# --------------------------------------------------------------------------- models


def _collect_models() -> dict[str, ModelSpec]:
    load_plugins()
    specs: dict[str, ModelSpec] = {}
    for impl in _impls(pm.hook.register_models):
        plugin = impl.plugin_name
        mine: dict[str, ModelSpec] = {}

        def register(
            name: str,
            factory: Callable[..., Any],
            config_cls: type,
            description: str = "",
            _plugin: str = plugin,
            mine: dict[str, ModelSpec] = mine,
        ) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {_plugin!r} registered a model without a name")
            if name in specs or name in mine:
                other = (specs.get(name) or mine[name]).plugin
                raise PluginError(
                    f"plugin {_plugin!r} registered model {name!r}, "
                    f"already registered by plugin {other!r}"
                )
            if not callable(factory):
                raise PluginError(f"plugin {_plugin!r}: model {name!r} factory is not callable")
            if not (isinstance(config_cls, type) and attrs.has(config_cls)):
                raise PluginError(
                    f"plugin {_plugin!r}: model {name!r} config must be an attrs class"
                )
            mine[name] = ModelSpec(name, factory, config_cls, description, _plugin)

        try:
            impl.function(register=register)
        except Exception as exc:
            _reject(plugin, _problem(exc, plugin))
            continue
        specs.update(mine)
    return specs


def model_specs() -> dict[str, ModelSpec]:
    global _models
    if _models is None:
        _models = _collect_models()
    return _models


def get_model(name: str) -> ModelSpec:
    specs = model_specs()
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise UnknownNameError(f"unknown model {name!r}; known models: {known}")
    return specs[name]


# --------------------------------------------------------------------------- components

COMPONENT_KINDS: dict[str, str] = {
    "mixer": "token mixer of a block (trmkit.models.blocks.MixerSpec)",
    "mlp": "channel MLP of a block (trmkit.models.blocks.MLPSpec)",
    "optimizer": "dense optimiser (trmkit.training.optim.OptimizerSpec)",
    "step_loss": "per-supervision-step loss (trmkit.models.losses.StepLoss)",
    "halt_policy": "inference halting policy (trmkit.inference.policy.HaltRule)",
    "select_rule": "inference selection rule (trmkit.inference.policy.SelectRule)",
}
"""kind -> what a component of that kind is, and the protocol its owning module checks."""
COMPONENT_NAME = re.compile(r"[a-z][a-z0-9_]*")


@attrs.frozen
class ComponentSpec:
    """One registered component: the owning module checks ``component`` against its
    protocol at lookup (`component`), naming ``plugin`` when it does not conform."""

    kind: str
    name: str
    component: Any
    description: str
    plugin: str


def _collect_components() -> dict[str, dict[str, ComponentSpec]]:
    load_plugins()
    specs: dict[str, dict[str, ComponentSpec]] = {kind: {} for kind in COMPONENT_KINDS}
    for impl in _impls(pm.hook.register_components):
        plugin = impl.plugin_name
        mine: list[ComponentSpec] = []

        def register(
            kind: str,
            name: str,
            component: Any,
            description: str = "",
            _plugin: str = plugin,
            mine: list[ComponentSpec] = mine,
        ) -> None:
            where = f"plugin {_plugin!r}"
            if kind not in COMPONENT_KINDS:
                raise PluginError(
                    f"{where}: unknown component kind {kind!r}; one of {', '.join(COMPONENT_KINDS)}"
                )
            if not isinstance(name, str) or not COMPONENT_NAME.fullmatch(name):
                raise PluginError(
                    f"{where}: {kind} name {name!r} must be lower-case letters, digits and '_', "
                    f"starting with a letter"
                )
            clash = specs[kind].get(name) or next(
                (c for c in mine if c.kind == kind and c.name == name), None
            )
            if clash is not None:
                raise PluginError(
                    f"{where}: {kind} {name!r} is already registered by plugin "
                    f"{clash.plugin!r}; rename it"
                )
            if component is None:
                raise PluginError(f"{where}: {kind} {name!r} is None")
            mine.append(ComponentSpec(kind, name, component, str(description), _plugin))

        try:
            impl.function(register=register)
        except Exception as exc:
            _reject(plugin, _problem(exc, plugin), "had its components refused")
            continue
        for spec in mine:
            specs[spec.kind][spec.name] = spec
    return specs


_components: dict[str, dict[str, ComponentSpec]] | None = None


def component_specs(kind: str) -> dict[str, ComponentSpec]:
    """Every registered component of ``kind``, by name."""
    global _components
    if kind not in COMPONENT_KINDS:
        raise ValueError(f"unknown component kind {kind!r}")
    if _components is None:
        _components = _collect_components()
    return _components[kind]


def component(kind: str, name: str, option: str) -> ComponentSpec:
    """The ``kind`` component called ``name``; an unknown name is one line naming
    ``option`` (the recipe key or command option that chose it) and the known names."""
    specs = component_specs(kind)
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise UnknownNameError(f"{option}: unknown {kind} {name!r}; known: {known}")
    return specs[name]


# --------------------------------------------------------------------------- recipes

RECIPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@attrs.frozen
class RecipeSpec:
    """A recipe a plugin registered through ``register_recipes``: a TOML file it ships."""

    name: str
    path: Path
    plugin: str


def _collect_recipes() -> dict[str, RecipeSpec]:
    from trmkit.recipes import directory_recipes

    load_plugins()
    taken = directory_recipes()  # trmkit's own tasks/ (and TRMKIT_RECIPES) keep their names
    specs: dict[str, RecipeSpec] = {}
    for impl in _impls(pm.hook.register_recipes):
        plugin = impl.plugin_name
        mine: dict[str, RecipeSpec] = {}

        def register(
            name: str,
            path: str | os.PathLike[str],
            _plugin: str = plugin,
            mine: dict[str, RecipeSpec] = mine,
        ) -> None:
            where = f"plugin {_plugin!r}"
            if (
                not isinstance(name, str)
                or not RECIPE_NAME.fullmatch(name)
                or name.endswith(".toml")
            ):
                raise PluginError(
                    f"{where}: recipe name {name!r} must be letters, digits, '-', '_' or '.' "
                    f"(a name, not a file name)"
                )
            if not isinstance(path, (str, os.PathLike)):
                raise PluginError(
                    f"{where} (recipe {name!r}): the path is a {type(path).__name__}, not a str "
                    f"or os.PathLike; pass Path(__file__).parent / 'recipes' / '{name}.toml'"
                )
            file = Path(path)
            if file.suffix != ".toml" or not file.is_file():
                raise PluginError(
                    f"{where} (recipe {name!r}): {file} is not a .toml file; ship it with the "
                    f'package ([tool.setuptools.package-data] "*" = ["*.toml"])'
                )
            if name in taken or name in specs or name in mine:
                other = (
                    f"the recipe file {taken[name]}"
                    if name in taken
                    else f"plugin {(specs.get(name) or mine[name]).plugin!r}"
                )
                raise PluginError(f"{where}: recipe {name!r} is already {other}'s; rename it")
            mine[name] = RecipeSpec(name, file, _plugin)

        try:
            impl.function(register=register)
        except Exception as exc:
            _reject(plugin, _problem(exc, plugin), "had its recipes refused")
            continue
        specs.update(mine)
    return specs


_recipes: dict[str, RecipeSpec] | None = None


def recipe_specs() -> dict[str, RecipeSpec]:
    """Every recipe registered by a plugin, by name."""
    global _recipes
    if _recipes is None:
        _recipes = _collect_recipes()
    return _recipes


# --------------------------------------------------------------------------- failures

_current: list[TaskEntry] = []
"""the entry of the task last resolved by `get_task` (the one a command works on)."""
HELPER_PACKAGES = ("trmkit.grids",)
"""trmkit's helpers for task plugins: their frames count as the calling task's code."""


def debug_enabled() -> bool:
    """TRMKIT_DEBUG=1: show the full stack of exceptions raised in plugin code."""
    return os.environ.get("TRMKIT_DEBUG", "").lower() in ("1", "true", "yes")


def _package_of(plugin: object) -> str:
    module = plugin if isinstance(plugin, type(sys)) else sys.modules.get(plugin.__module__)
    if module is None:
        return ""
    if getattr(module, "__path__", None) is not None:  # a package: all of it is the plugin's
        return module.__name__
    return module.__name__.rpartition(".")[0] or module.__name__


def _within(module: str, package: str) -> bool:
    return bool(package) and (module == package or module.startswith(package + "."))


def plugin_failure(exc: BaseException) -> str | None:
    """One line for an exception that plugin code raised (None if no plugin frame is on its
    stack, or for a `TrmkitError`, which is already a message for the user): the plugin, the
    task being worked on, the hook trmkit called, where it raised and why."""
    if isinstance(exc, TrmkitError) or not isinstance(exc, Exception):
        return None
    packages = [(_package_of(p), plugin_name(p)) for p in pm.get_plugins()]
    # trmkit's own built-in plugins (commands, models) live in trmkit.*: not plugin code
    packages = [(pkg, name) for pkg, name in packages if pkg and not _within(pkg, "trmkit")]
    current = _current[-1] if _current else None
    hits: list[tuple[str, str, str]] = []  # (plugin, qualname, file:line)
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        owner = next((name for pkg, name in packages if _within(module, pkg)), None)
        if (
            owner is None
            and current is not None
            and any(_within(module, pkg) for pkg in HELPER_PACKAGES)
        ):
            owner = current.plugin
        if owner is not None:
            code = frame.f_code
            qualname = getattr(code, "co_qualname", code.co_name)
            where = f"{module.replace('.', '/')}.py:{lineno}"
            hits.append((owner, qualname, where))
    if not hits:
        return None
    plugin, hook, _ = hits[0]
    where = hits[-1][2]
    ours = current is not None and current.plugin == plugin
    task = f" (task {current.task.name!r})" if current is not None and ours else ""
    reason = (str(exc).splitlines() or [""])[0][:300]
    return (
        f"plugin {plugin!r}{task} raised {type(exc).__name__} in {hook} ({where}): {reason}; "
        f"a bug in the plugin, not in your input: report it to its authors (the stack: "
        f"--traceback or TRMKIT_DEBUG=1)"
    )


# --------------------------------------------------------------------------- introspection


def plugin_info() -> list[dict[str, Any]]:
    """name, distribution, version and implemented hooks of every loaded plugin."""
    load_plugins()
    rows = []
    for plugin in pm.get_plugins():
        name = plugin_name(plugin)
        dist = _dist_of.get(name, "")
        try:
            version = metadata.version(dist) if dist else None
        except metadata.PackageNotFoundError:
            version = None
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        rows.append({"name": name, "distribution": dist, "version": version, "hooks": hooks})
    task_entries()
    model_specs()
    recipe_specs()
    component_specs("mixer")
    for row in rows:
        if row["name"] in rejected:
            row["error"] = rejected[row["name"]]
    for name, why in failed.items():
        rows.append(
            {"name": name, "distribution": None, "version": None, "hooks": [], "error": why}
        )
    for name, dist in filtered_out.items():
        rows.append(
            {
                "name": name,
                "distribution": dist,
                "version": None,
                "hooks": [],
                "error": "not loaded: left out by TRMKIT_LOAD_PLUGINS",
            }
        )
    return sorted(rows, key=lambda row: row["name"])


# --------------------------------------------------------------------------- commands
# trmkit.cli fires register_commands one plugin at a time with these (docs/errors.md,
# "Boundaries: plugins, sources, names").

ordered_impls = _impls
reject = _reject
problem = _problem
warn = _warn


def is_builtin(plugin: str) -> bool:
    """Whether ``plugin`` ships in the trmkit distribution."""
    return _dist_of.get(plugin) == BUILTIN_DISTRIBUTION


def reset() -> None:
    """Forget cached registrations (tests register and unregister throwaway plugins)."""
    global _tasks, _models, _recipes, _components
    _tasks = None
    _models = None
    _recipes = None
    _components = None
    rejected.clear()
