"""Recipes shipped by plugins: the register_recipes hook, `trmkit recipes`, default recipes."""

from __future__ import annotations

import json

import attrs
import pytest
from click.testing import CliRunner
from test_plugins import make_task, registered

from trmkit import plugins
from trmkit.cli import cli
from trmkit.commands.train import resolve_recipe
from trmkit.errors import UnknownNameError
from trmkit.hookspecs import hookimpl
from trmkit.recipes import find_recipe, plugin_recipes

RECIPE = """\
name = "rtask-quick"
description = "a plugin's quick recipe"
expected = "100% exact accuracy in 3 steps"
hardware = "any CPU, 1 second"

[data]
task = "rtask"

[model]
name = "trm"
hidden_size = 16
num_heads = 2

[train]
epochs = 1
"""


def recipe_plugin(*pairs, task=None):
    class Plugin:
        @staticmethod
        @hookimpl
        def register_recipes(register):
            for name, path in pairs:
                register(name, path)

        if task is not None:

            @staticmethod
            @hookimpl
            def register_tasks(register):
                register(task)

    return Plugin


def test_a_plugin_recipe_is_found_listed_and_the_default_of_its_task(tmp_path):
    path = tmp_path / "recipes" / "rtask-quick.toml"
    path.parent.mkdir()
    path.write_text(RECIPE)
    task = make_task("rtask")
    task = attrs.evolve(task, defaults=attrs.evolve(task.defaults, recipe="rtask-quick"))
    with registered(recipe_plugin(("rtask-quick", path), task=task), "rplug"):
        assert find_recipe("rtask-quick") == path
        recipe = resolve_recipe("rtask", None, ())
        assert recipe.name == "rtask-quick" and recipe.data.task == "rtask"
        result = CliRunner().invoke(cli, ["recipes", "--json"])
        assert result.exit_code == 0, result.output
        rows = {row["name"]: row for row in json.loads(result.output)}
        row = rows["rtask-quick"]
        assert (row["task"], row["plugin"], row["origin"]) == (
            "rtask",
            "rplug",
            "registered by plugin",
        )
        assert row["expected"] == "100% exact accuracy in 3 steps"
        assert row["hardware"] == "any CPU, 1 second"
        assert rows["sudoku-quick"]["plugin"] == "sudoku"  # trmkit's own, by its task
        text = CliRunner().invoke(cli, ["recipes"]).output
        assert "rtask-quick  (task rtask, plugin rplug)" in text
        assert "expected: 100% exact accuracy in 3 steps" in text


@pytest.mark.parametrize(
    ("name", "path", "expected"),
    [
        ("sudoku-quick", "{file}", "recipe 'sudoku-quick' is already the recipe file"),
        ("bad/name", "{file}", "recipe name 'bad/name' must be letters"),
        ("x.toml", "{file}", "(a name, not a file name)"),
        ("missing", "{dir}/missing.toml", "is not a .toml file; ship it with the package"),
        ("typed", 42, "the path is a int, not a str or os.PathLike"),
    ],
)
def test_bad_recipe_registrations_are_refused_in_one_line(tmp_path, capsys, name, path, expected):
    file = tmp_path / "ok.toml"
    file.write_text(RECIPE)
    if isinstance(path, str):
        path = path.format(file=file, dir=tmp_path)
    with registered(recipe_plugin((name, path)), "rbad"):
        specs = plugin_recipes()
        assert not any(spec.plugin == "rbad" for spec in specs.values())
        message = plugins.rejected["rbad"]
        assert message.startswith("plugin 'rbad' (distribution ?) had its recipes refused: ")
        assert expected in message and "\n" not in message
        assert f"Warning: {message}" in capsys.readouterr().err
        assert find_recipe("sudoku-quick").parent.name == "tasks"  # trmkit's own keeps its name


def test_two_plugins_cannot_register_the_same_recipe_name(tmp_path):
    file = tmp_path / "same.toml"
    file.write_text(RECIPE)
    with (
        registered(recipe_plugin(("same", file)), "ra"),
        registered(recipe_plugin(("same", file)), "rb"),
    ):
        assert plugins.recipe_specs()["same"].plugin == "ra"
        assert "recipe 'same' is already plugin 'ra''s; rename it" in plugins.rejected["rb"]


def test_unknown_recipe_lists_plugin_recipes_too(tmp_path):
    file = tmp_path / "listed.toml"
    file.write_text(RECIPE)
    with (
        registered(recipe_plugin(("listed-quick", file)), "rlist"),
        pytest.raises(UnknownNameError, match="known recipes: .*listed-quick"),
    ):
        find_recipe("no-such-recipe")
