"""The `register_components` hook: kinds, names and clashes are checked where a component
enters (registration); an unknown name is one line naming the option and the known names."""

from __future__ import annotations

import pytest

from trmkit import plugins
from trmkit.errors import UnknownNameError
from trmkit.hookspecs import hookimpl


@pytest.fixture
def registered():
    added: list[str] = []

    def add(plugin: object, name: str) -> None:
        plugins.pm.register(plugin, name=name)
        added.append(name)
        plugins.reset()

    yield add
    for name in added:
        plugins.pm.unregister(name=name)
    plugins.reset()


class _Good:
    @staticmethod
    @hookimpl
    def register_components(register):
        register("halt_policy", "never_stop", object(), "a test component")


class _BadKind:
    @staticmethod
    @hookimpl
    def register_components(register):
        register("flux_capacitor", "x", object())


class _Clash:
    @staticmethod
    @hookimpl
    def register_components(register):
        register("halt_policy", "never_stop", object())


def test_registered_component_is_found_with_its_plugin(registered):
    registered(_Good, "good-components")
    spec = plugins.component("halt_policy", "never_stop", "--halt")
    assert spec.plugin == "good-components"
    assert spec.description == "a test component"


def test_unknown_kind_refuses_the_plugin_and_names_the_kinds(registered, capsys):
    registered(_BadKind, "bad-kind")
    assert "x" not in plugins.component_specs("mixer")
    assert "unknown component kind 'flux_capacitor'" in plugins.rejected["bad-kind"]


def test_a_name_taken_by_another_plugin_is_refused(registered):
    registered(_Good, "good-components")
    registered(_Clash, "other-components")
    # on a clash the first plugin by name keeps the name (deterministic order)
    assert plugins.component("halt_policy", "never_stop", "--halt").plugin == "good-components"
    assert "already registered by plugin 'good-components'" in plugins.rejected["other-components"]


def test_unknown_name_names_option_and_known(registered):
    registered(_Good, "good-components")
    with pytest.raises(
        UnknownNameError,
        match=r"--halt: unknown halt_policy 'nope'; known: .*never_stop",
    ):
        plugins.component("halt_policy", "nope", "--halt")
