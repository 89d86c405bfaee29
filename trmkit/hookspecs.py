"""The plugin contract: three register-callback hooks under the marker name "trmkit"."""

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
