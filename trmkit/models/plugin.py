"""Registers the built-in architectures."""

from trmkit.hookspecs import hookimpl


@hookimpl
def register_models(register):
    return None
