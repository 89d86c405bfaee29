"""Registers the built-in inference components (halting policies and selection rules)
through `register_components`, as a third party would (docs/engine.md, "Extension points")."""

from trmkit.hookspecs import hookimpl


@hookimpl
def register_components(register):
    """Filled by the halting/selection registries (trmkit.inference.policy)."""
