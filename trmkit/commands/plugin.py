"""Registers the built-in commands through `register_commands`, as a third party would.

Every command module defines module-level click commands and lists them in ``COMMANDS``;
command modules import nothing heavy at import time (torch only inside the commands that
run a model), so `trmkit --version`, `trmkit tasks` and `trmkit --help` stay fast.
"""

from __future__ import annotations

import importlib

import click

from trmkit.hookspecs import hookimpl

COMMAND_MODULES = (
    "trmkit.commands.info",
    "trmkit.commands.data",
    "trmkit.commands.model",
    "trmkit.commands.train",
    "trmkit.commands.eval",
    "trmkit.commands.solve",
    "trmkit.commands.adapt",
    "trmkit.commands.checkpoint",
    "trmkit.commands.recipes",
    "trmkit.commands.new_task",
    "trmkit.commands.compare",
    "trmkit.commands.report",
)


@hookimpl
def register_commands(cli: click.Group) -> None:
    for name in COMMAND_MODULES:
        for command in importlib.import_module(name).COMMANDS:
            cli.add_command(command)
