"""The command line: every command arrives through `register_commands` (built-in or not),
also when the group runs under click's CliRunner; commands that need no model import no
torch; --log-with accepts the trackers Accelerate knows."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from trmkit import plugins
from trmkit.cli import TrmkitGroup, cli
from trmkit.commands.plugin import COMMAND_MODULES
from trmkit.errors import ConfigError
from trmkit.hookspecs import hookimpl


class _HelloPlugin:
    @staticmethod
    @hookimpl
    def register_commands(cli):
        @cli.command(name="hello")
        def hello():
            """Say hello."""
            click.echo("hello from a plugin")


def test_plugin_and_builtin_commands_arrive_through_the_hook_under_clirunner():
    plugins.load_plugins()
    plugins.pm.register(_HelloPlugin, name="hello-plugin")
    try:
        group = TrmkitGroup(name="trmkit")
        assert group.commands == {}  # nothing until the first lookup fires the hook
        result = CliRunner().invoke(group, ["hello"])
        assert result.exit_code == 0, result.output
        assert result.output == "hello from a plugin\n"
        # the built-in commands came through the very same hook call
        for name in ("tasks", "plugins", "build", "data", "model", "train", "eval", "solve"):
            assert name in group.commands, name
        listed = CliRunner().invoke(group, ["--help"]).output
        assert "hello" in listed and "train" in listed
    finally:
        plugins.pm.unregister(name="hello-plugin")


def test_builtin_commands_are_a_plugin_with_the_hook():
    rows = {row["name"]: row for row in json.loads(CliRunner().invoke(cli, ["plugins"]).output)}
    assert rows["commands"]["distribution"] == "trmkit"
    assert rows["commands"]["hooks"] == ["register_commands"]
    assert len(COMMAND_MODULES) == len(set(COMMAND_MODULES))


_NO_TORCH = """
import sys
from trmkit.cli import cli
try:
    cli.main(args={args!r}, prog_name="trmkit")
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not loaded, loaded[:5]
print("no torch")
"""


@pytest.mark.parametrize("args", [["--version"], ["tasks"], ["tasks", "--json"], ["--help"]])
def test_commands_without_a_model_import_no_torch(args):
    result = subprocess.run(
        [sys.executable, "-c", _NO_TORCH.format(args=args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("no torch")


def test_log_with_accepts_what_accelerate_knows():
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    from trmkit.commands.train import check_tracker

    with pytest.raises(ConfigError, match="not a tracker Accelerate knows; known: .*mlflow"):
        check_tracker("no-such-tracker")
    for name in LOGGER_TYPE_TO_CLASS:  # known: accepted, or refused as not installed
        try:
            check_tracker(name)
        except ConfigError as exc:
            assert "not installed" in str(exc)
    result = CliRunner().invoke(cli, ["train", "--task", "sudoku", "--log-with", "nope"])
    assert result.exit_code != 0 and "not a tracker Accelerate knows" in result.output


def test_a_tracker_registered_with_accelerate_is_accepted():
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, GeneralTracker

    from trmkit.commands.train import check_tracker

    class Custom(GeneralTracker):
        name = "trmkit-test-tracker"
        requires_logging_directory = False

    LOGGER_TYPE_TO_CLASS[Custom.name] = Custom
    try:
        check_tracker(Custom.name)
    finally:
        del LOGGER_TYPE_TO_CLASS[Custom.name]
