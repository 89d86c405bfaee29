"""The `trmkit` command line. Expected failures (`TrmkitError`) print one line and exit 1."""

from __future__ import annotations

import importlib
import json

import click

from trmkit import __version__, plugins
from trmkit.errors import TrmkitError

# Built-in command modules; each defines `register(cli)`. Third-party plugins add theirs
# through the `register_commands` hook.
COMMAND_MODULES = (
    "trmkit.commands.data",
    "trmkit.commands.model",
    "trmkit.commands.train",
    "trmkit.commands.eval",
    "trmkit.commands.solve",
    "trmkit.commands.checkpoint",
)


class TrmkitGroup(click.Group):
    """Turns every TrmkitError raised by a command into a one-line click error, and so an
    exception raised in plugin code (`plugins.plugin_failure`) unless --traceback or
    TRMKIT_DEBUG=1 asks for the stack."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except TrmkitError as exc:
            raise click.ClickException(str(exc)) from exc
        except Exception as exc:
            line = plugins.plugin_failure(exc)
            if line is None or ctx.params.get("traceback") or plugins.debug_enabled():
                raise
            raise click.ClickException(line) from exc


@click.group(cls=TrmkitGroup)
@click.version_option(__version__, prog_name="trmkit")
@click.option(
    "--traceback",
    is_flag=True,
    help="Show the full stack of an exception raised in plugin code (or TRMKIT_DEBUG=1).",
)
def cli(traceback: bool) -> None:
    """Tiny Recursive Models on grid puzzles: build data, train, evaluate, solve."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tasks(as_json: bool) -> None:
    """List the registered tasks (name, plugin, description)."""
    rows = [
        {
            "name": entry.task.name,
            "aliases": list(entry.aliases),
            "plugin": entry.plugin,
            "description": entry.task.description,
            "sources": sorted(entry.task.sources),
        }
        for entry in plugins.task_entries().values()
    ]
    rows.sort(key=lambda row: str(row["name"]))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no tasks registered")
        return
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        aliases = f" (aliases: {', '.join(row['aliases'])})" if row["aliases"] else ""
        click.echo(f"{row['name']:<{width}}  [{row['plugin']}] {row['description']}{aliases}")


@cli.command(name="plugins")
def plugins_cmd() -> None:
    """List plugins as JSON: name, distribution, version, hooks, and "error" for a plugin
    that failed to import, whose registrations were refused, or that was left out."""
    click.echo(json.dumps(plugins.plugin_info(), indent=2))


def _install_commands() -> None:
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # command module not part of this build
                continue
            raise
        module.register(cli)


_install_commands()
_plugin_commands_loaded = False


def main() -> None:
    global _plugin_commands_loaded
    if not _plugin_commands_loaded:
        _plugin_commands_loaded = True
        try:
            plugins.load_plugins()
            plugins.pm.hook.register_commands(cli=cli)
        except TrmkitError as exc:
            raise SystemExit(f"Error: {exc}") from exc
    cli(prog_name="trmkit")


if __name__ == "__main__":
    main()
