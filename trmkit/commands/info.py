"""`trmkit tasks` and `trmkit plugins`: what is registered (no torch import)."""

from __future__ import annotations

import json

import click

from trmkit import plugins


@click.command(name="tasks")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tasks_cmd(as_json: bool) -> None:
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


@click.command(name="plugins")
def plugins_cmd() -> None:
    """List plugins as JSON: name, distribution, version, hooks, and "error" for a plugin
    that failed to import, whose registrations were refused, or that was left out."""
    from trmkit.recipes import plugin_recipes

    plugin_recipes()  # refuses the recipes that take a recipe file's name
    click.echo(json.dumps(plugins.plugin_info(), indent=2))


COMMANDS = (tasks_cmd, plugins_cmd)
