"""The one plugin manager: loads `trmkit` entry points lazily, once, and validates every
registration (errors name the plugin that made it).

``TRMKIT_LOAD_PLUGINS`` (comma-separated distribution names; empty = none) restricts which
third-party distributions load. The built-in plugins ship in the ``trmkit`` distribution
and always load. ``TRMKIT_TRACE_HOOKS=1`` prints every hook call to stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

import attrs
import pluggy

from trmkit import hookspecs
from trmkit.errors import PluginError, UnknownNameError
from trmkit.task import (
    Augmenter,
    BuildDefaults,
    Codec,
    Evaluator,
    Source,
    Task,
    protocol_problems,
)

ENTRY_POINT_GROUP = "trmkit"
BUILTIN_DISTRIBUTION = "trmkit"

pm = pluggy.PluginManager("trmkit")
pm.add_hookspecs(hookspecs)

_loaded = False


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


def _allowed_distributions() -> set[str] | None:
    value = os.environ.get("TRMKIT_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip().lower() for name in value.split(",") if name.strip()}


def load_plugins() -> None:
    """Import every `trmkit` entry point (once). Idempotent and cheap after the first call."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    allowed = _allowed_distributions()
    if os.environ.get("TRMKIT_TRACE_HOOKS"):
        pm.trace.root.setwriter(lambda message: sys.stderr.write(message))
        pm.enable_tracing()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = (ep.dist.name if ep.dist is not None else "").lower()
        if dist != BUILTIN_DISTRIBUTION and allowed is not None and dist not in allowed:
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
            if dist != BUILTIN_DISTRIBUTION:
                message += "; uninstall it or leave it out of TRMKIT_LOAD_PLUGINS"
            failed[ep.name] = message
            sys.stderr.write(f"Warning: {message}\n")
            continue
        pm.register(module, name=ep.name)
        _dist_of[ep.name] = dist


_dist_of: dict[str, str] = {}
failed: dict[str, str] = {}
"""entry-point name -> why it could not be loaded (shown by `trmkit plugins` and errors)."""


def plugin_name(plugin: object) -> str:
    return pm.get_name(plugin) or str(getattr(plugin, "__name__", repr(plugin)))


# --------------------------------------------------------------------------- tasks


def _check_task(task: Any, plugin: str) -> Task:
    where = f"plugin {plugin!r}"
    if not isinstance(task, Task):
        raise PluginError(f"{where} registered {type(task).__name__}, not a trmkit.task.Task")
    where = f"{where} (task {task.name!r})"
    if not task.name or not task.name.replace("-", "").replace("_", "").isalnum():
        raise PluginError(f"{where}: task name must be non-empty letters, digits, '-' or '_'")
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
    for field in ("codec", "augmenter"):
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


def _collect_tasks() -> dict[str, TaskEntry]:
    load_plugins()
    entries: dict[str, TaskEntry] = {}
    names: dict[str, str] = {}  # name or alias -> owning plugin

    for impl in pm.hook.register_tasks.get_hookimpls():
        plugin = impl.plugin_name

        def register(task: Task, aliases: Iterable[str] = (), _plugin: str = plugin) -> None:
            task = _check_task(task, _plugin)
            alias_tuple = tuple(aliases)
            for key in (task.name, *alias_tuple):
                if key in names:
                    raise PluginError(
                        f"plugin {_plugin!r} registered task name {key!r}, "
                        f"already registered by plugin {names[key]!r}"
                    )
                names[key] = _plugin
            entries[task.name] = TaskEntry(task, _plugin, alias_tuple)

        impl.function(register=register)
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
    if name in entries:
        return entries[name].task
    for entry in entries.values():
        if name in entry.aliases:
            return entry.task
    known = ", ".join(sorted(entries)) or "none (no task plugin is installed)"
    broken = "".join(f" ({why})" for why in failed.values())
    raise UnknownNameError(f"unknown task {name!r}; known tasks: {known}{broken}")


# --------------------------------------------------------------------------- models


def _collect_models() -> dict[str, ModelSpec]:
    load_plugins()
    specs: dict[str, ModelSpec] = {}
    for impl in pm.hook.register_models.get_hookimpls():
        plugin = impl.plugin_name

        def register(
            name: str,
            factory: Callable[..., Any],
            config_cls: type,
            description: str = "",
            _plugin: str = plugin,
        ) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {_plugin!r} registered a model without a name")
            if name in specs:
                raise PluginError(
                    f"plugin {_plugin!r} registered model {name!r}, "
                    f"already registered by plugin {specs[name].plugin!r}"
                )
            if not callable(factory):
                raise PluginError(f"plugin {_plugin!r}: model {name!r} factory is not callable")
            if not (isinstance(config_cls, type) and attrs.has(config_cls)):
                raise PluginError(
                    f"plugin {_plugin!r}: model {name!r} config must be an attrs class"
                )
            specs[name] = ModelSpec(name, factory, config_cls, description, _plugin)

        impl.function(register=register)
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
    for name, why in failed.items():
        rows.append(
            {"name": name, "distribution": None, "version": None, "hooks": [], "error": why}
        )
    return sorted(rows, key=lambda row: row["name"])


def reset() -> None:
    """Forget cached registrations (tests register and unregister throwaway plugins)."""
    global _tasks, _models
    _tasks = None
    _models = None
