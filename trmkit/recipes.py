"""Where recipes live: ``tasks/<name>.toml`` next to the package (a source checkout or an
editable install) or ``<prefix>/share/trmkit/tasks`` (where a wheel install puts the same
files, see ``[tool.setuptools.data-files]``). ``TRMKIT_RECIPES`` adds directories in front
(os.pathsep-separated). A name with a path separator or a ``.toml`` suffix is a file path."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from trmkit.errors import UnknownNameError


def recipe_dirs() -> list[Path]:
    """Directories searched for recipe names, first match wins."""
    extra = os.environ.get("TRMKIT_RECIPES", "")
    dirs = [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[1] / "tasks")
    for prefix in (sysconfig.get_path("data"), sys.prefix):
        dirs.append(Path(prefix) / "share" / "trmkit" / "tasks")
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d not in unique:
            unique.append(d)
    return unique


def available_recipes() -> list[str]:
    names: set[str] = set()
    for directory in recipe_dirs():
        names.update(p.stem for p in directory.glob("*.toml"))
    return sorted(names)


def find_recipe(name_or_path: str) -> Path:
    """Path of a recipe given by name (``sudoku-extreme-mlp``) or by file path."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or "/" in name_or_path or path.exists():
        if path.is_file():
            return path
        raise UnknownNameError(f"{name_or_path}: no such recipe file")
    for directory in recipe_dirs():
        candidate = directory / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    known = ", ".join(available_recipes()) or "none found"
    raise UnknownNameError(f"unknown recipe {name_or_path!r}; known recipes: {known}")
