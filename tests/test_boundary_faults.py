"""Boundaries (docs/errors.md, "Boundaries: plugins, sources, names"): a plugin cannot take
a built-in command, a task-name clash skips only that task, ``--source`` tells names from
paths, a BOM is dropped, option values are typed and range-checked, file names made from
ids are safe, and echoed names carry no raw control characters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
import click
import pytest
import torch
from click.testing import CliRunner
from test_plugins import make_task, registered, task_plugin
from tiny_training import tiny_model_config

from trmkit import plugins
from trmkit.cli import TrmkitGroup, cli
from trmkit.config import load_recipe, recipe_from_dict
from trmkit.data.build import build_dataset, load_raw
from trmkit.errors import ConfigError, SourceError
from trmkit.hookspecs import hookimpl
from trmkit.names import MAX_NAME_CHARS, safe_file_name
from trmkit.solve import read_puzzles
from trmkit.textio import printable


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


# --------------------------------------------------------------------------- echoed text


def test_printable_escapes_control_characters_and_keeps_letters():
    assert printable("a\x1b[31mb\nc\rd\te\x00f\x7fg\x85h\u2028i") == (
        "a\\x1b[31mb\\nc\\rd\\te\\x00f\\x7fg\\x85h\\u2028i"
    )
    assert printable("caf\u00e9/\u6570\u72ec.txt") == "caf\u00e9/\u6570\u72ec.txt"
    assert printable("x\udcffy") == "x\\udcffy"  # an undecodable byte of a file name


def test_error_naming_a_path_with_escapes_is_one_safe_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = "./x\x1b[2J\nError: fake"
    result = CliRunner().invoke(
        cli, ["build", "--task", "maze-11x11", "--source", evil, "--out", "o"]
    )
    line = one_error_line(result)
    assert "\x1b" not in result.output
    assert "x\\x1b[2J\\nError: fake" in line
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- file names


def test_safe_file_name_keeps_safe_ids_and_makes_others_unique_and_bounded():
    assert safe_file_name("007bf74a") == "007bf74a"
    assert safe_file_name("train-000001.v2") == "train-000001.v2"
    ids = ["a/b", "a_b", "a?b", "a\\b", "..", ".", "", "a" * 300, "a" * 301, "\u6570\u72ec"]
    made = [safe_file_name(i) for i in ids]
    assert len(set(made)) == len(ids)
    for name in made:
        assert len(name.encode()) <= MAX_NAME_CHARS and name.isascii()
        assert "/" not in name and "\\" not in name and not name.startswith(".")
    # an id that looks like a hashed name is hashed itself, so it cannot collide
    crafted = safe_file_name("a/b")
    assert safe_file_name(crafted) != crafted


def _arc_bundle(out: Path) -> Path:
    from trmkit.checkpoint import DatasetRecord, Manifest, ModelRecord, TaskRecord, write_bundle
    from trmkit.models import build_model

    torch.manual_seed(0)
    config = tiny_model_config(seq_len=900, vocab_size=12, num_puzzle_identifiers=3)
    model = build_model("trm", config)
    manifest = Manifest(
        step=1,
        model=ModelRecord(name="trm", config=attrs.asdict(model.config)),
        task=TaskRecord(name="arc-agi-1", version="1"),
        dataset=DatasetRecord(seq_len=900, vocab_size=12, num_puzzle_identifiers=3),
    )
    return write_bundle(out, manifest, model.state_dict())


def test_solve_trace_with_slash_and_long_task_ids(tmp_path):
    bundle = _arc_bundle(tmp_path / "bundle")
    pair = {"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}
    task = {"train": [pair], "test": [{"input": [[1, 1], [2, 2]]}]}
    ids = ["dir/sub\x1bid", "x" * 300]
    spec = json.dumps({i: task for i in ids})
    trace_dir = tmp_path / "traces"
    result = CliRunner().invoke(
        cli,
        ["solve", str(bundle), spec, "--trace", "--trace-dir", str(trace_dir), "--num-aug", "1"],
    )
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "dir/sub\\x1bid" in result.output
    pngs = sorted(p.name for p in trace_dir.iterdir())
    assert len(pngs) == 2 and all(len(p) < 255 for p in pngs)
    assert sorted(trace_dir.rglob("*")) == [trace_dir / p for p in pngs]  # nothing nested


def test_new_task_name_too_long_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["new-task", "a" * 300, "--dir", str(tmp_path)])
    assert "at most 64 characters" in one_error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_task_name_too_long_is_refused_at_registration():
    with registered(task_plugin((make_task("t" * 65), ())), "long-name-plugin"):
        plugins.task_entries()
        assert "task name must be 1 to 64" in plugins.rejected["long-name-plugin"]


# --------------------------------------------------------------------------- plugins


class _CommandThief:
    @staticmethod
    @hookimpl
    def register_commands(cli):
        @cli.command(name="train")
        def fake_train():
            click.echo("stolen")

        @cli.command(name="thief-hello")
        def hello():
            click.echo("hello")


class _RaisingCommands:
    @staticmethod
    @hookimpl
    def register_commands(cli):
        @cli.command(name="half-added")
        def half():
            click.echo("half")

        raise RuntimeError("boom")


def test_plugin_cannot_replace_a_builtin_command():
    plugins.load_plugins()
    plugins.pm.register(_CommandThief, name="thief")
    try:
        group = TrmkitGroup(name="trmkit")
        result = CliRunner().invoke(group, ["thief-hello"])
        assert result.exit_code == 0 and result.stdout == "hello\n"
        from trmkit.commands.train import train_cmd

        assert group.commands["train"] is train_cmd
        assert group.owners["train"] == "commands"
        warning = [line for line in result.stderr.splitlines() if "'train'" in line]
        assert warning == [
            "Warning: plugin 'thief''s command 'train' was not added: plugin 'commands' has a "
            "command of that name, which is kept; rename the command"
        ]
    finally:
        plugins.pm.unregister(name="thief")


def test_plugin_whose_command_hook_raises_loses_only_its_commands():
    plugins.load_plugins()
    plugins.pm.register(_RaisingCommands, name="raising-commands")
    try:
        group = TrmkitGroup(name="trmkit")
        result = CliRunner().invoke(group, ["tasks"])
        assert result.exit_code == 0
        assert "half-added" not in group.commands
        assert "RuntimeError: boom" in plugins.rejected["raising-commands"]
    finally:
        plugins.pm.unregister(name="raising-commands")
        plugins.reset()


def test_task_name_clash_skips_only_the_clashing_task(capsys):
    first = registered(task_plugin((make_task("shared-name"), ())), "plugin-a")
    second = registered(
        task_plugin((make_task("shared-name"), ()), (make_task("only-b"), ("ob",))), "plugin-b"
    )
    with first, second:
        entries = plugins.task_entries()
        assert entries["shared-name"].plugin == "plugin-a"
        assert entries["only-b"].plugin == "plugin-b"
        assert plugins.get_task("ob").name == "only-b"
        message = plugins.rejected["plugin-b"]
        assert "task name 'shared-name' is already registered by plugin 'plugin-a'" in message
        assert f"Warning: {message}" in capsys.readouterr().err


# --------------------------------------------------------------------------- --source


def test_source_name_versus_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    task = plugins.get_task("maze-11x11")
    (tmp_path / "generate").mkdir()
    src, path = task.source_for("generate")  # the name wins, with a warning
    assert (src.name, path) == ("generate", None)
    assert "write ./generate to build from it" in capsys.readouterr().err
    src, path = task.source_for("./generate")  # written as a path: always the path
    assert (src.name, path) == ("csv", Path("generate"))
    with pytest.raises(SourceError, match="no such file or directory"):
        task.source_for("./csv")
    (tmp_path / "mazes").mkdir()
    assert task.source_for("mazes") == (task.sources["csv"], Path("mazes"))
    assert "Warning" not in capsys.readouterr().err


# --------------------------------------------------------------------------- input text


MAZE = "#####\n#S  #\n# # #\n#  G#\n#####\n"


def test_maze_file_with_a_bom_is_read(tmp_path):
    file = tmp_path / "maze.txt"
    file.write_bytes(b"\xef\xbb\xbf" + MAZE.replace("#####", "#" * 11).encode())
    task = plugins.get_task("maze-11x11")
    lines = [line.ljust(11, "#") for line in MAZE.splitlines()]
    lines += ["#" * 11] * (11 - len(lines))
    file.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    (puzzle,) = read_puzzles(task, str(file))
    assert puzzle.test[0].input.shape == (11, 11)


def test_csv_file_with_a_bom_is_read(tmp_path):
    from trmkit.grids.csvsource import read_table

    file = tmp_path / "train.csv"
    file.write_bytes(b"\xef\xbb\xbfsource,question,answer,rating\ns,ab,ab,1\n")
    assert len(read_table(file, "train", 2)) == 1


# --------------------------------------------------------------------------- options


def test_list_in_recipe_options_is_a_config_error_naming_the_option(tmp_path):
    raw = {"data": {"task": "sudoku-4x4", "options": {"count": [1, 2], "givens": 4}}}
    with pytest.raises(ConfigError, match=r"r\.toml: data\.options: option 'count' is a list"):
        recipe_from_dict(raw, where="r.toml")
    assert recipe_from_dict({"data": {"options": {"givens": 4}}}).data.options == {"givens": "4"}
    with pytest.raises(ConfigError, match="option 'count' is a table"):
        load_raw(plugins.get_task("sudoku-4x4"), None, 0, {"count": {"a": 1}})


def test_num_aug_is_bounded(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\ntask = "sudoku-4x4"\n')
    with pytest.raises(ConfigError, match="data.num_aug"):
        load_recipe(recipe, ["data.num_aug=1e9"])
    with pytest.raises(ConfigError, match="--num-aug 1000000000: must be between 0 and"):
        build_dataset(plugins.get_task("sudoku-4x4"), tmp_path / "o", num_aug=10**9)
    result = CliRunner().invoke(
        cli, ["build", "--task", "sudoku-4x4", "--out", str(tmp_path / "o"), "--num-aug", "10**9"]
    )
    assert result.exit_code != 0 and "--num-aug" in result.output
    result = CliRunner().invoke(
        cli,
        ["build", "--task", "sudoku-4x4", "--out", str(tmp_path / "o"), "--num-aug", "1000000000"],
    )
    assert "--num-aug 1000000000: must be between 0 and 100000" in one_error_line(result)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("task", "option", "expected"),
    [
        ("sudoku-4x4", "givens=99", "option givens=99: must be between 0 and 16"),
        ("sudoku-4x4", "count=-1", "option count=-1: must be >= 0"),
        ("maze-11x11", "min_path=500", "option min_path=500: must be between 0 and 121"),
        ("maze-11x11", "count=99999999999", "option count=99999999999: must be between"),
    ],
)
def test_plugin_options_are_range_checked(tmp_path, task, option, expected):
    result = CliRunner().invoke(
        cli, ["build", "--task", task, "--out", str(tmp_path / "o"), "-o", option]
    )
    assert expected in one_error_line(result)


def test_recipe_listing_skips_a_fifo_and_a_directory(tmp_path, monkeypatch):
    """A FIFO named x.toml in TRMKIT_RECIPES made `trmkit recipes` block forever reading it."""
    from trmkit.recipes import directory_recipes

    os.mkfifo(tmp_path / "fifo.toml")
    (tmp_path / "dir.toml").mkdir()
    (tmp_path / "mine.toml").write_text('[data]\ntask = "sudoku-4x4"\n')
    monkeypatch.setenv("TRMKIT_RECIPES", str(tmp_path))
    found = directory_recipes()
    assert found["mine"] == tmp_path / "mine.toml"
    assert "fifo" not in found and "dir" not in found
    result = CliRunner().invoke(cli, ["recipes"])
    assert result.exit_code == 0, result.output
    assert "mine" in result.output and "fifo" not in result.output
