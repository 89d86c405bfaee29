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

The state lives in one `Registry` (the plugin manager, what loaded and what was refused, the
collected registrations); the module functions are those of the default one, `registry`.
Tests may build their own, ``Registry(pluggy_manager)``.
"""

from __future__ import annotations

import inspect
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
from trmkit.errors import PluginError, TrmkitError, UnknownNameError, first_line
from trmkit.task import Task, contract_problem
from trmkit.textio import printable

ENTRY_POINT_GROUP = "trmkit"
BUILTIN_DISTRIBUTION = "trmkit"

MAX_TASK_NAME = 64
"""a task name names dataset cache directories and scaffolded packages: at most this long."""
RECIPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
COMPONENT_NAME = re.compile(r"[a-z][a-z0-9_]*")
COMPONENT_KINDS: dict[str, str] = {
    "mixer": "token mixer of a block (trmkit.models.blocks.MixerSpec)",
    "mlp": "channel MLP of a block (trmkit.models.blocks.MLPSpec)",
    "optimizer": "dense optimiser (trmkit.training.optim.OptimizerSpec)",
    "step_loss": "per-supervision-step loss (trmkit.models.losses.StepLoss)",
    "halt_policy": "inference halting policy (trmkit.inference.policy.HaltRule)",
    "select_rule": "inference selection rule (trmkit.inference.policy.SelectRule)",
}
"""kind -> what a component of that kind is, and the protocol its owning module checks."""


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


@attrs.frozen
class RecipeSpec:
    """A recipe a plugin registered through ``register_recipes``: a TOML file it ships."""

    name: str
    path: Path
    plugin: str


@attrs.frozen
class ComponentSpec:
    """One registered component: the owning module checks ``component`` against its
    protocol at lookup (`component`), naming ``plugin`` when it does not conform."""

    kind: str
    name: str
    component: Any
    description: str
    plugin: str


def normalize(name: str) -> str:
    """PEP 503 normalisation: ``Trmkit_Life.client`` -> ``trmkit-life-client``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def warn(message: str) -> None:
    sys.stderr.write(f"Warning: {printable(message)}\n")


def _dist_name(ep: metadata.EntryPoint) -> str:
    return (ep.dist.name if ep.dist is not None else "").lower()


def problem(exc: Exception, plugin: str) -> str:
    """The reason of a refused registration, without repeating the plugin's name."""
    if isinstance(exc, PluginError):
        return str(exc).removeprefix(f"plugin {plugin!r} ").removeprefix(f"plugin {plugin!r}: ")
    return f"its hook raised {type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- registrations
# One checker per hook: ``add(plugin, mine, taken, *hook arguments)`` checks one call of the
# hook's ``register`` (``mine``: what the plugin registered before, ``taken``: what the
# plugins before it did) and returns what it adds, by key.


class _Skipped(Exception):
    """One registration refused alone: the plugin's other registrations stand."""


def _task_clash(key: str, task: Task, entry: TaskEntry) -> str:
    kind = "task name" if key == task.name else "alias"
    return (
        f"{kind} {key!r} is already registered by plugin {entry.plugin!r} "
        f"(task {entry.task.name!r}); rename it"
    )


def _task_name(name: object) -> bool:
    """Whether ``name`` may name a task (or an alias): 1 to `MAX_TASK_NAME` ASCII letters,
    digits, '-' or '_'."""
    plain = name.replace("-", "").replace("_", "") if isinstance(name, str) else ""
    return plain.isascii() and plain.isalnum() and len(str(name)) <= MAX_TASK_NAME


def _add_task(
    plugin: str, mine: dict, taken: dict, task: Task, aliases: Iterable[str] = ()
) -> dict[str, TaskEntry]:
    """Keyed by the task's name and each alias; ``task`` must keep its static contract
    (`trmkit.task.contract_problem`) and have a name that can name directories."""
    where = f"plugin {plugin!r}"
    if not isinstance(task, Task):
        raise PluginError(f"{where} registered {type(task).__name__}, not a trmkit.task.Task")
    where = f"{where} (task {task.name!r})"
    rule = f"must be 1 to {MAX_TASK_NAME} ASCII letters, digits, '-' or '_'"
    if not _task_name(task.name):
        raise PluginError(f"{where}: task name {rule} (it names directories)")
    problem = contract_problem(task)
    if problem is not None:
        raise PluginError(f"{where}: {problem}")
    if isinstance(aliases, str):  # iterating it would register one alias per character
        raise PluginError(
            f"{where}: aliases must be a tuple of names, not the str {aliases!r}; write "
            f"aliases=({aliases!r},)"
        )
    alias_tuple = tuple(aliases)
    for alias in alias_tuple:
        if not _task_name(alias):  # typed as --task, listed by `trmkit tasks`
            raise PluginError(f"{where}: alias {alias!r} {rule}")
    keys = (task.name, *alias_tuple)
    for key in keys:
        if key in mine:  # the plugin clashes with itself: a bug, refused whole
            raise PluginError(f"{where}: {_task_clash(key, task, mine[key])}")
    for key in keys:
        if key in taken:  # another plugin's name: only this task is skipped
            raise _Skipped(f"(task {task.name!r}): {_task_clash(key, task, taken[key])}")
    return dict.fromkeys(keys, TaskEntry(task, plugin, alias_tuple))


def _add_model(
    plugin: str,
    mine: dict,
    taken: dict,
    name: str,
    factory: Callable[..., Any],
    config_cls: type,
    description: str = "",
) -> dict[str, ModelSpec]:
    if not isinstance(name, str) or not name:
        raise PluginError(f"plugin {plugin!r} registered a model without a name")
    other = mine.get(name) or taken.get(name)
    if other is not None:
        raise PluginError(
            f"plugin {plugin!r} registered model {name!r}, "
            f"already registered by plugin {other.plugin!r}"
        )
    if not callable(factory):
        raise PluginError(f"plugin {plugin!r}: model {name!r} factory is not callable")
    if not (isinstance(config_cls, type) and attrs.has(config_cls)):
        raise PluginError(f"plugin {plugin!r}: model {name!r} config must be an attrs class")
    return {name: ModelSpec(name, factory, config_cls, description, plugin)}


def _add_component(
    plugin: str, mine: dict, taken: dict, kind: str, name: str, component: Any, description=""
) -> dict[tuple[str, str], ComponentSpec]:
    """Keyed by (kind, name)."""
    where = f"plugin {plugin!r}"
    if kind not in COMPONENT_KINDS:
        raise PluginError(
            f"{where}: unknown component kind {kind!r}; one of {', '.join(COMPONENT_KINDS)}"
        )
    if not isinstance(name, str) or not COMPONENT_NAME.fullmatch(name):
        raise PluginError(
            f"{where}: {kind} name {name!r} must be lower-case letters, digits and '_', "
            f"starting with a letter"
        )
    clash = mine.get((kind, name)) or taken.get((kind, name))
    if clash is not None:
        raise PluginError(
            f"{where}: {kind} {name!r} is already registered by plugin {clash.plugin!r}; rename it"
        )
    if component is None:
        raise PluginError(f"{where}: {kind} {name!r} is None")
    return {(kind, name): ComponentSpec(kind, name, component, str(description), plugin)}


def _add_recipe(
    plugin: str, mine: dict, taken: dict, name: str, path: str | os.PathLike[str]
) -> dict[str, RecipeSpec]:
    """The names of recipe files are `trmkit.recipes`' to keep (`plugin_recipes`)."""
    where = f"plugin {plugin!r}"
    if not isinstance(name, str) or not RECIPE_NAME.fullmatch(name) or name.endswith(".toml"):
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
    other = mine.get(name) or taken.get(name)
    if other is not None:
        raise PluginError(
            f"{where}: recipe {name!r} is already plugin {other.plugin!r}'s; rename it"
        )
    return {name: RecipeSpec(name, file, plugin)}


HOOKS: dict[str, tuple[Callable[..., dict[Any, Any]], str]] = {
    "register_tasks": (_add_task, "was skipped"),
    "register_models": (_add_model, "was skipped"),
    "register_components": (_add_component, "had its components refused"),
    "register_recipes": (_add_recipe, "had its recipes refused"),
}
"""hook -> (the checker of one registration, what happens to a plugin whose hook fails)."""

# --------------------------------------------------------------------------- failures

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


# --------------------------------------------------------------------------- the registry


class Registry:
    """The plugins of one pluggy manager, what they registered and what was refused."""

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        if pm is None:
            pm = pluggy.PluginManager("trmkit")
            pm.add_hookspecs(hookspecs)
        self.pm = pm
        self.loaded = False
        self.dist_of: dict[str, str] = {}
        """plugin -> the distribution it was loaded from."""
        self.failed: dict[str, str] = {}
        """plugin -> why it could not be loaded (shown by `trmkit plugins` and errors)."""
        self.rejected: dict[str, str] = {}
        """plugin -> why its registrations were refused (cleared by `reset`)."""
        self.filtered_out: dict[str, str] = {}
        """plugin -> distribution, of the third-party plugins TRMKIT_LOAD_PLUGINS left out."""
        self._collected: dict[str, dict[Any, Any]] = {}

    # ------------------------------------------------------------------- loading

    def load_plugins(self) -> None:
        """Import every `trmkit` entry point (once). Idempotent and cheap after the first
        call."""
        if self.loaded:
            return
        self.loaded = True
        value = os.environ.get("TRMKIT_LOAD_PLUGINS")
        allowed = (
            None if value is None else {normalize(n.strip()) for n in value.split(",") if n.strip()}
        )
        if os.environ.get("TRMKIT_TRACE_HOOKS"):
            self.pm.trace.root.setwriter(lambda message: sys.stderr.write(message))
            self.pm.enable_tracing()
        points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
        # built-ins first, so that a third-party entry point can never take a built-in's name
        points.sort(key=lambda ep: _dist_name(ep) != BUILTIN_DISTRIBUTION)
        matched: set[str] = set()
        self.filtered_out.clear()
        for ep in points:
            dist = _dist_name(ep)
            builtin = dist == BUILTIN_DISTRIBUTION
            if not builtin and allowed is not None:
                keys = {normalize(ep.name), normalize(dist)}
                if not keys & allowed:
                    self.filtered_out[ep.name] = dist
                    continue
                matched.update(keys & allowed)
            owner = self.dist_of.get(ep.name)
            if owner is not None and owner != dist:
                message = (
                    f"plugin {ep.name!r} of distribution {dist or '?'} was not loaded: its entry "
                    f"point has the name of the plugin of distribution {owner}; rename the entry "
                    f"point in its pyproject.toml"
                )
                self.failed[ep.name + f" ({dist})"] = message
                warn(message)
                continue
            if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
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
                self.failed[ep.name] = message
                warn(message)
                continue
            problem = self._register(module, ep.name, dist)
            if problem is not None:
                message = f"plugin {ep.name!r} (distribution {dist or '?'}) {problem}"
                self.failed[ep.name] = message
                warn(message)
                continue
            self.dist_of[ep.name] = dist
        if allowed is not None:
            dists = {(ep.name, _dist_name(ep)) for ep in points}
            installed = sorted(f"{n} ({d})" for n, d in dists if d != BUILTIN_DISTRIBUTION)
            for name in sorted(allowed - matched):
                warn(
                    f"TRMKIT_LOAD_PLUGINS names {name!r}, which matches no installed plugin or "
                    f"distribution (third-party plugins installed: "
                    f"{', '.join(installed) or 'none'})"
                )

    def _register(self, module: Any, name: str, dist: str) -> str | None:
        """Register ``module`` as plugin ``name``; what is wrong with its hooks, or None. A
        hook whose arguments are not the hookspec's is refused (the plugin is skipped); one
        trmkit does not have is named (pluggy would ignore it silently)."""
        specs = {
            h: getattr(self.pm.hook, h).spec.argnames
            for h in dir(hookspecs)
            if h.startswith("register_")
        }
        hooks = [attr for attr in dir(module) if self.pm.parse_hookimpl_opts(module, attr)]
        for hook in hooks:
            taken = [
                p.name
                for p in inspect.signature(getattr(module, hook)).parameters.values()
                if p.default is p.empty  # pluggy passes only the arguments without defaults
            ]
            if hook in specs and not set(taken) <= set(specs[hook]):
                return (
                    f"was skipped: its hook {hook}({', '.join(taken)}) does not take trmkit's "
                    f"arguments ({', '.join(specs[hook])}); rename them as docs/plugins.md, "
                    "section 2, does"
                )
        unknown = [hook for hook in hooks if hook not in specs]
        if unknown:
            warn(
                f"plugin {name!r} (distribution {dist or '?'}) implements "
                f"{', '.join(unknown)}, which is not a trmkit hook (trmkit's: "
                f"{', '.join(sorted(specs))}); rename it (docs/plugins.md, section 2)"
            )
        try:
            self.pm.register(module, name=name)
        except pluggy.PluginValidationError as exc:  # any other hook pluggy refuses
            return f"was skipped: {first_line(exc)}; see docs/plugins.md, section 2"
        return None

    def reset(self) -> None:
        """Forget collected registrations (tests register and unregister throwaway plugins)."""
        self._collected.clear()
        self.rejected.clear()

    def plugin_name(self, plugin: object) -> str:
        return self.pm.get_name(plugin) or str(getattr(plugin, "__name__", repr(plugin)))

    def is_builtin(self, plugin: str) -> bool:
        """Whether ``plugin`` ships in the trmkit distribution."""
        return self.dist_of.get(plugin) == BUILTIN_DISTRIBUTION

    def ordered_impls(self, hook: Any) -> list[Any]:
        """Hook implementations, built-in plugins first, then by plugin name (deterministic:
        on a clash the built-in, or the first name, keeps its registration)."""
        return sorted(
            hook.get_hookimpls(),
            key=lambda impl: (not self.is_builtin(impl.plugin_name), impl.plugin_name),
        )

    def reject(self, plugin: str, problem: str, outcome: str = "was skipped") -> None:
        dist = self.dist_of.get(plugin) or "?"
        message = f"plugin {plugin!r} (distribution {dist}) {outcome}: {problem}"
        if self.rejected.get(plugin) != message:
            warn(message)
        self.rejected[plugin] = message

    # ------------------------------------------------------------------- registrations

    def collected(self, hook: str) -> dict[Any, Any]:
        """What ``hook`` (a key of `HOOKS`) registered, by key, collected once (until
        `reset`): one plugin at a time, built-ins first. A plugin whose hook raises (a
        refused registration included) adds nothing and is rejected; one with a skipped
        registration (a task name another plugin has) loses only that one."""
        if hook in self._collected:
            return self._collected[hook]
        self.load_plugins()
        add, outcome = HOOKS[hook]
        taken: dict[Any, Any] = {}
        for impl in self.ordered_impls(getattr(self.pm.hook, hook)):
            plugin = impl.plugin_name
            try:
                mine, skipped = _call_hook(impl, add, taken)
            except Exception as exc:  # skip this plugin whole, keep the others
                self.reject(plugin, problem(exc, plugin), outcome)
                continue
            if skipped:
                self.reject(plugin, "; ".join(skipped), "had a task skipped (its other tasks load)")
            taken.update(mine)
        self._collected[hook] = taken
        return taken

    def task_entries(self) -> dict[str, TaskEntry]:
        """Every registered task, by name."""
        return {k: e for k, e in self.collected("register_tasks").items() if k == e.task.name}

    def get_task(self, name: str) -> Task:
        """A task by name or alias; unknown names raise with the list of known ones."""
        entry = self.collected("register_tasks").get(name)
        if entry is not None:
            return entry.task
        known = ", ".join(sorted(self.task_entries())) or "none (no task plugin is installed)"
        broken = "".join(f" ({why})" for why in (*self.failed.values(), *self.rejected.values()))
        hidden = ""
        if self.filtered_out:
            left_out = ", ".join(f"{p} ({d or '?'})" for p, d in sorted(self.filtered_out.items()))
            hidden = (
                f" (TRMKIT_LOAD_PLUGINS={os.environ.get('TRMKIT_LOAD_PLUGINS', '')!r} left out the "
                f"plugins {left_out}; the task may be theirs: add the plugin or distribution name)"
            )
        raise UnknownNameError(f"unknown task {name!r}; known tasks: {known}{broken}{hidden}")

    def owner_of(self, task: Task) -> str | None:
        """The plugin that registered ``task`` (None for a task nobody registered)."""
        entry = self.collected("register_tasks").get(task.name)
        return entry.plugin if entry is not None and entry.task is task else None

    def model_specs(self) -> dict[str, ModelSpec]:
        return self.collected("register_models")

    def get_model(self, name: str) -> ModelSpec:
        specs = self.model_specs()
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise UnknownNameError(f"unknown model {name!r}; known models: {known}")
        return specs[name]

    def component_specs(self, kind: str) -> dict[str, ComponentSpec]:
        """Every registered component of ``kind``, by name."""
        if kind not in COMPONENT_KINDS:
            raise ValueError(f"unknown component kind {kind!r}")
        specs = self.collected("register_components").values()
        return {spec.name: spec for spec in specs if spec.kind == kind}

    def component(self, kind: str, name: str, option: str) -> ComponentSpec:
        """The ``kind`` component called ``name``; an unknown name is one line naming
        ``option`` (the recipe key or command option that chose it) and the known names."""
        specs = self.component_specs(kind)
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise UnknownNameError(f"{option}: unknown {kind} {name!r}; known: {known}")
        return specs[name]

    def recipe_specs(self) -> dict[str, RecipeSpec]:
        """Every recipe registered by a plugin, by name (`trmkit.recipes.plugin_recipes`
        leaves out those that take a recipe file's name)."""
        return self.collected("register_recipes")

    # ------------------------------------------------------------------- introspection

    def plugin_failure(self, exc: BaseException, task: str | None = None) -> str | None:
        """One line for an exception that plugin code raised (None if no plugin frame is on
        its stack, or for a `TrmkitError`, which is already a message for the user): the
        plugin, the task being worked on (``task``, named when that plugin registered it),
        the hook trmkit called, where it raised and why."""
        if isinstance(exc, TrmkitError) or not isinstance(exc, Exception):
            return None
        packages = [(_package_of(p), self.plugin_name(p)) for p in self.pm.get_plugins()]
        # trmkit's own built-in plugins (commands, models) live in trmkit.*: not plugin code
        packages = [(pkg, name) for pkg, name in packages if pkg and not _within(pkg, "trmkit")]
        current = self.collected("register_tasks").get(task) if task is not None else None
        if current is not None:  # the helpers' frames are the task's plugin's, after its own
            packages += [(pkg, current.plugin) for pkg in HELPER_PACKAGES]
        hits: list[tuple[str, str, str]] = []  # (plugin, qualname, file:line)
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            module = str(frame.f_globals.get("__name__", ""))
            owner = next((name for pkg, name in packages if _within(module, pkg)), None)
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
        task_part = f" (task {current.task.name!r})" if current is not None and ours else ""
        reason = (str(exc).splitlines() or [""])[0][:300]
        return (
            f"plugin {plugin!r}{task_part} raised {type(exc).__name__} in {hook} ({where}): "
            f"{reason}; a bug in the plugin, not in your input: report it to its authors (the "
            f"stack: --traceback or TRMKIT_DEBUG=1)"
        )

    def plugin_info(self) -> list[dict[str, Any]]:
        """name, distribution, version and implemented hooks of every loaded plugin."""
        self.load_plugins()
        for hook in HOOKS:  # collecting is what finds refused registrations
            self.collected(hook)
        rows: list[dict[str, Any]] = []
        for plugin in self.pm.get_plugins():
            name = self.plugin_name(plugin)
            dist = self.dist_of.get(name, "")
            try:
                version = metadata.version(dist) if dist else None
            except metadata.PackageNotFoundError:
                version = None
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            rows.append({"name": name, "distribution": dist, "version": version, "hooks": hooks})
            if name in self.rejected:
                rows[-1]["error"] = self.rejected[name]
        left_out = "not loaded: left out by TRMKIT_LOAD_PLUGINS"
        unloaded: list[tuple[str, str | None, str]] = [(n, None, w) for n, w in self.failed.items()]
        unloaded += [(name, dist, left_out) for name, dist in self.filtered_out.items()]
        rows += [
            {"name": name, "distribution": dist, "version": None, "hooks": [], "error": why}
            for name, dist, why in unloaded
        ]
        return sorted(rows, key=lambda row: row["name"])


def _call_hook(
    impl: Any, add: Callable[..., dict[Any, Any]], taken: dict[Any, Any]
) -> tuple[dict[Any, Any], list[str]]:
    """Call one plugin's hook with a ``register`` that checks each call with ``add``: what
    the plugin added, by key, and the registrations skipped alone (`_Skipped`)."""
    mine: dict[Any, Any] = {}
    skipped: list[str] = []

    def register(*args: Any, **kwargs: Any) -> None:
        try:
            mine.update(add(impl.plugin_name, mine, taken, *args, **kwargs))
        except _Skipped as skip:
            skipped.append(str(skip))

    impl.function(register=register)
    return mine, skipped


registry = Registry()
"""The default registry: trmkit's commands and the functions below use it."""
pm = registry.pm
failed = registry.failed
rejected = registry.rejected
filtered_out = registry.filtered_out
load_plugins = registry.load_plugins
reset = registry.reset
is_builtin = registry.is_builtin
ordered_impls = registry.ordered_impls
reject = registry.reject
task_entries = registry.task_entries
get_task = registry.get_task
owner_of = registry.owner_of
model_specs = registry.model_specs
get_model = registry.get_model
component_specs = registry.component_specs
component = registry.component
recipe_specs = registry.recipe_specs
plugin_failure = registry.plugin_failure
plugin_info = registry.plugin_info
