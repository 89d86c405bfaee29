"""The plugin contract: five register-callback hooks under the marker name "trmkit"."""

from __future__ import annotations

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("trmkit")
hookimpl = HookimplMarker("trmkit")


@hookspec
def register_tasks(register):
    """Register puzzle tasks: call ``register(task, aliases=())`` with a `trmkit.task.Task`."""


@hookspec
def register_models(register):
    """Register architectures: call ``register(name, factory, config_cls, description="")``."""


@hookspec
def register_commands(cli):
    """Add click commands or groups to the ``trmkit`` command-line group."""


@hookspec
def register_recipes(register):
    """Register named training recipes shipped in the plugin's package: call
    ``register(name, path)`` with a recipe TOML file (``Path(__file__).parent / "recipes" /
    "life-quick.toml"``, installed as package data). ``trmkit train --recipe NAME`` and a
    task's ``BuildDefaults.recipe`` may then name it; ``trmkit recipes`` lists it."""


@hookspec
def register_components(register):
    """Register engine components by kind: call ``register(kind, name, component,
    description="")``. The kinds, the protocol each component implements and the module that
    owns it are `trmkit.plugins.COMPONENT_KINDS` (docs/engine.md, "Extension points"): token
    mixers and channel MLPs of a block, optimisers, per-step losses, inference halting
    policies and selection rules. The built-ins register through this hook too."""
