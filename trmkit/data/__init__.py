"""Datasets: the Zarr store, the builder, the loaders and the official-layout bridge.

Imports are lazy so that `import trmkit.data` stays cheap (torch is only needed by the
loaders)."""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "open_store": "trmkit.data.store",
    "Store": "trmkit.data.store",
    "SplitReader": "trmkit.data.store",
    "SplitMeta": "trmkit.data.store",
    "StoreWriter": "trmkit.data.store",
    "FORMAT_VERSION": "trmkit.data.store",
    "build_dataset": "trmkit.data.build",
    "BuildSummary": "trmkit.data.build",
    "TrainLoader": "trmkit.data.loader",
    "EvalLoader": "trmkit.data.loader",
    "export_official": "trmkit.data.official",
    "import_official": "trmkit.data.official",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trmkit.data' has no attribute {name!r}")
