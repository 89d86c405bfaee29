"""Registers the built-in training components (the optimisers chosen by ``optim.name``)
through `register_components`, as a third party would (docs/engine.md, "Extension points")."""

from trmkit.hookspecs import hookimpl


@hookimpl
def register_components(register):
    """Filled by the optimiser registry (trmkit.training.optim)."""
