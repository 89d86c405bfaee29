"""`trmkit recipes`: every recipe trmkit can train, from its own tasks/ and from plugins."""

from __future__ import annotations

import json

import click


def _short(text: str, width: int = 150) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


@click.command(name="recipes")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (full texts).")
def recipes_cmd(as_json: bool) -> None:
    """List every recipe: name, task, plugin, expected result and hardware.

    A recipe is trmkit's own (tasks/NAME.toml, or a TRMKIT_RECIPES directory) or shipped by
    a plugin through the register_recipes hook; `trmkit train --recipe NAME` trains it."""
    from trmkit.recipes import recipe_rows

    rows = recipe_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no recipes found")
        return
    for row in rows:
        plugin = row["plugin"] or "no installed plugin"
        click.echo(f"{row['name']}  (task {row['task'] or '?'}, plugin {plugin})")
        if row.get("error"):
            click.echo(f"    error:    {row['error']}")
        for key in ("expected", "hardware"):
            if row[key]:
                click.echo(f"    {key + ':':<9} {_short(row[key])}")


COMMANDS = (recipes_cmd,)
