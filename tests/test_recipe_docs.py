"""docs/recipes.md documents every field of the recipe schema (trmkit/config.py), with its
type and the default the loader really uses."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import attrs
import pytest

from trmkit.config import SECTIONS, TEXT_FIELDS, Recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DOC = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"


def _rows() -> dict[str, list[str]]:
    """First-column field name -> the row's other cells, for every table row of the doc."""
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z0-9_.]+)`", cells[0]) if line.startswith("|") else None
        if match:
            rows[match.group(1)] = cells[1:]
    return rows


def _schema() -> list[tuple[str, object]]:
    """(documented name, default) of every field a recipe file may set (model fields are
    the registered model's and documented per model)."""
    recipe = Recipe()
    fields = [(name, getattr(recipe, name)) for name in TEXT_FIELDS]
    for section, cls in SECTIONS.items():
        instance = cls()
        fields += [(f"{section}.{f.name}", getattr(instance, f.name)) for f in attrs.fields(cls)]
    fields.append(("model.name", recipe.model.name))
    return fields


@pytest.mark.parametrize(("field", "default"), _schema(), ids=[f for f, _ in _schema()])
def test_every_recipe_field_is_documented_with_its_default(field, default):
    rows = _rows()
    assert field in rows, f"docs/recipes.md has no row for recipe field {field!r}; add one"
    kind, documented = rows[field][0], rows[field][1]
    assert kind, f"docs/recipes.md: {field} has no type"
    if field == "name":
        return  # documented as "the file's stem", which the loader fills in
    literal = re.match(r"`([^`]*)`", documented)
    if default is None:
        assert documented.startswith("none"), f"{field}: default is none, doc says {documented}"
        return
    assert literal, f"docs/recipes.md: {field} default {documented!r} is not a `literal`"
    assert tomllib.loads(f"v = {literal.group(1)}")["v"] == default, (
        f"docs/recipes.md: {field} default {literal.group(1)} differs from config.py's {default!r}"
    )


def test_the_complete_example_loads():
    from trmkit.config import recipe_from_dict

    block = re.search(r"```toml\n(.*?)```", DOC.read_text(), flags=re.S)
    assert block, "docs/recipes.md lost its complete example"
    recipe = recipe_from_dict(tomllib.loads(block.group(1)), where="docs/recipes.md")
    assert recipe.data.task == "sudoku-6x6" and recipe.train.max_steps == 624


def test_every_range_the_loader_enforces_is_documented():
    from trmkit.config import RANGES

    rows = _rows()
    for field, allowed in RANGES.items():
        assert field in rows, f"docs/recipes.md has no row for ranged field {field!r}"
        assert rows[field][0].endswith(f", {allowed.describe()}"), (
            f"docs/recipes.md: the type of {field} should end with ', {allowed.describe()}' "
            f"(config.RANGES), not {rows[field][0]!r}"
        )
