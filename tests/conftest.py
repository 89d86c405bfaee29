"""Shared fixtures: the throwaway third-party plugin `trmkit-toy` (task "toy-flip").

`tests/toy_plugin` holds the package `trmkit_toy` next to a hand-written
`trmkit_toy-0.1.0.dist-info` whose entry_points.txt declares the `trmkit` entry point, so
putting that directory on sys.path (or PYTHONPATH) installs it as far as
importlib.metadata, and therefore trmkit's plugin loader, can tell.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from trmkit import plugins

# Hypothesis: a "ci" profile (more examples, no deadline, derandomized so CI is repeatable)
# is picked up when CI is set, the "dev" profile otherwise; HYPOTHESIS_PROFILE overrides.
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

TOY_DIR = Path(__file__).parent / "toy_plugin"
TOY_PLUGIN = "toy"  # the entry-point name, which pluggy uses as the plugin name
TOY_DISTRIBUTION = "trmkit-toy"


def _import_toy():
    """The trmkit_toy module, imported without leaving its dist-info discoverable."""
    if "trmkit_toy" not in sys.modules:
        sys.path.insert(0, str(TOY_DIR))
        try:
            importlib.import_module("trmkit_toy")
        finally:
            sys.path.remove(str(TOY_DIR))
            importlib.invalidate_caches()
    return sys.modules["trmkit_toy"]


def unregister_plugin(name: str) -> None:
    """Drop a plugin from trmkit's plugin manager and its caches (test helper)."""
    if plugins.pm.get_plugin(name) is not None:
        plugins.pm.unregister(name=name)
    plugins.registry.dist_of.pop(name, None)
    plugins.reset()


def reload_plugins() -> None:
    """Re-run entry-point discovery (already registered plugins are kept)."""
    plugins.registry.loaded = False
    plugins.load_plugins()
    plugins.reset()


@pytest.fixture(scope="session")
def toy():
    """The toy plugin module (for `make_task`), without registering it."""
    return _import_toy()


@pytest.fixture
def toy_task(toy):
    return toy.make_task()


@pytest.fixture
def toy_plugin(toy) -> Iterator[None]:
    """The toy distribution installed (on sys.path) and discovered through its real entry
    point for the duration of one test; removed afterwards."""
    sys.path.insert(0, str(TOY_DIR))
    importlib.invalidate_caches()
    try:
        reload_plugins()
        assert plugins.pm.get_plugin(TOY_PLUGIN) is not None, "toy entry point not discovered"
        yield
    finally:
        sys.path.remove(str(TOY_DIR))
        importlib.invalidate_caches()
        unregister_plugin(TOY_PLUGIN)
