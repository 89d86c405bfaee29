"""TRM's successors as plugins of trmkit: each method is one module registered through the
public hooks exactly as a third party's would be (docs/methods.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def lazy_getattr(module: str, names: tuple[str, ...], parts: Callable[[], dict[str, Any]]):
    """A module ``__getattr__`` serving ``names`` from ``parts()`` (built on first use), so
    that loading a method's plugin imports no torch (`trmkit tasks` stays torch-free)."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return parts()[name]

    return __getattr__
