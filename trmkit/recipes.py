"""Where recipes live, and the list of all of them (`trmkit recipes`).

A recipe name resolves, first match wins, to:

1. ``<dir>/<name>.toml`` in a ``TRMKIT_RECIPES`` directory (os.pathsep-separated);
2. ``tasks/<name>.toml`` next to the package (a source checkout or an editable install) or
   ``<prefix>/share/trmkit/tasks`` (where a wheel install puts the same files, see
   ``[tool.setuptools.data-files]``): trmkit's own recipes;
3. a recipe a plugin registered through the ``register_recipes`` hook (a TOML file shipped
   in its package). A plugin cannot take a name of 1 or 2: it is warned about and refused.

A name with a path separator or a ``.toml`` suffix is a file path.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path
from typing import Any

from trmkit import plugins
from trmkit.errors import UnknownNameError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def recipe_dirs() -> list[Path]:
    """Directories searched for recipe names, first match wins."""
    extra = os.environ.get("TRMKIT_RECIPES", "")
    dirs = [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[1] / "tasks")
    for prefix in (sysconfig.get_path("data"), sys.prefix):
        dirs.append(Path(prefix) / "share" / "trmkit" / "tasks")
    return list(dict.fromkeys(d for d in dirs if d.is_dir()))


def directory_recipes() -> dict[str, Path]:
    """name -> file of every recipe in `recipe_dirs` (first directory wins); only regular
    files (reading a FIFO named ``x.toml`` blocked `trmkit recipes` forever)."""
    found: dict[str, Path] = {}
    for directory in recipe_dirs():
        for path in sorted(directory.glob("*.toml")):
            if path.is_file():
                found.setdefault(path.stem, path)
    return found


def plugin_recipes() -> dict[str, plugins.RecipeSpec]:
    """Recipes registered by plugins, by name, less every recipe of a plugin that took the
    name of a recipe file (trmkit's own tasks/ and TRMKIT_RECIPES keep their names; the
    plugin is warned about and its recipes refused)."""
    files = directory_recipes()
    specs = plugins.recipe_specs()
    refused = set()
    for spec in specs.values():
        if spec.name in files:
            plugins.reject(
                spec.plugin,
                f"recipe {spec.name!r} is already the recipe file {files[spec.name]}'s; rename it",
                "had its recipes refused",
            )
            refused.add(spec.plugin)
    return {name: spec for name, spec in specs.items() if spec.plugin not in refused}


def available_recipes() -> list[str]:
    return sorted({*directory_recipes(), *plugin_recipes()})


def find_recipe(name_or_path: str) -> Path:
    """Path of a recipe given by name (``sudoku-extreme-mlp``) or by file path."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or "/" in name_or_path or path.exists():
        if path.exists():  # a directory or a FIFO: `trmkit.textio` names what it is
            return path
        raise UnknownNameError(f"{name_or_path}: no such recipe file")
    for directory in recipe_dirs():
        candidate = directory / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    spec = plugin_recipes().get(name_or_path)
    if spec is not None:
        return spec.path
    known = ", ".join(available_recipes()) or "none found"
    raise UnknownNameError(f"unknown recipe {name_or_path!r}; known recipes: {known}")


def recipe_rows() -> list[dict[str, Any]]:
    """Every recipe: name, task, plugin, description, expected, hardware, path (and "error"
    for a file that is not TOML). ``plugin`` is the plugin that registered the recipe, or
    for a recipe file the plugin whose task it trains."""
    entries = plugins.task_entries()
    owners = {key: e.plugin for e in entries.values() for key in (e.task.name, *e.aliases)}
    found: list[tuple[str, Path, str | None]] = [
        (name, path, None) for name, path in directory_recipes().items()
    ]
    found += [(s.name, s.path, s.plugin) for s in plugin_recipes().values()]
    rows = []
    for name, path, plugin in found:
        row: dict[str, Any] = {"name": name, "path": str(path)}
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raw = {}
            row["error"] = f"{path}: cannot read as TOML: {exc}"
        data = raw.get("data")
        task = data.get("task") if isinstance(data, dict) else None
        task = task if isinstance(task, str) else ""
        row["task"] = task
        row["plugin"] = plugin or owners.get(task)
        row["origin"] = "registered by plugin" if plugin else "file"
        for key in ("description", "expected", "hardware"):
            value = raw.get(key, "")
            row[key] = value if isinstance(value, str) else ""
        rows.append(row)
    return sorted(rows, key=lambda row: row["name"])
