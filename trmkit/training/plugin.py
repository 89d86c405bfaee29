"""Registers the built-in training components (the optimisers chosen by ``optim.name``)
through `register_components`, as a third party would (docs/engine.md, "Extension points")."""

from trmkit.hookspecs import hookimpl


@hookimpl
def register_components(register):
    from trmkit.training.optim import register as register_optimizers

    register_optimizers(register)
