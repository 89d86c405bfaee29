"""The import graph of `trmkit/` flows one way: no module imports from a layer above its own.

Every import counts, also a function-local (lazy) one and one under ``TYPE_CHECKING``: a lazy
import is still a dependency, it only moves the cost. The table below is the architecture
(docs/architecture.md draws it); a new module must be placed in it, and an import that
points upward is fixed by moving code, not by moving the module up the table.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trmkit"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # top: what a user runs
    ("interface", ("trmkit.cli", "trmkit.commands", "trmkit.api")),
    ("training", ("trmkit.training", "trmkit.comparison")),
    ("inference", ("trmkit.evaluation", "trmkit.solve", "trmkit.inference", "trmkit.interop")),
    (
        "services",
        (
            "trmkit.checkpoint",
            "trmkit.data",
            "trmkit.models",
            "trmkit.reports",
            "trmkit.traces",
            "trmkit.html_report",
            "trmkit.voting",
            "trmkit.grids",
            "trmkit.testing",
        ),
    ),
    # bottom: contracts and plain helpers every layer may use
    (
        "base",
        (
            "trmkit",
            "trmkit.config",
            "trmkit.recipes",
            "trmkit.plugins",
            "trmkit.hookspecs",
            "trmkit.task",
            "trmkit.batch",
            "trmkit.errors",
            "trmkit.textio",
            "trmkit.atomic",
            "trmkit.oserrors",
            "trmkit.network",
            "trmkit.threads",
            "trmkit.memory",
            "trmkit.stats",
            "trmkit.names",
        ),
    ),
)
"""(layer, module prefixes), top to bottom. ``trmkit`` itself (the package root) matches
only ``trmkit/__init__.py``; a prefix covers its submodules (``trmkit.data`` covers
``trmkit.data.store``)."""

FACADE_EDGES: frozenset[tuple[str, str]] = frozenset({("trmkit", "trmkit.api")})
"""The only allowed upward edge: the package root holds ``__version__`` (imported by every
layer) and is also the public facade ``trmkit.load`` / ``trmkit.train``, which import
`trmkit.api` inside the function, so ``import trmkit`` loads nothing below it."""

RANK = {prefix: len(LAYERS) - i for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes}
LAYER_OF = {prefix: name for name, prefixes in LAYERS for prefix in prefixes}


def layer_prefix(module: str) -> str | None:
    """The table entry that covers ``module`` (the longest matching prefix), or None."""
    if module == "trmkit":
        return "trmkit"
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        prefix = ".".join(parts[:end])
        if prefix in RANK:
            return prefix
    return None


def module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(rel[:-1] if rel[-1] == "__init__" else rel)


def imports_of(path: Path, modules: set[str], package: Path = PACKAGE) -> list[tuple[str, int]]:
    """The trmkit modules ``path`` imports (anywhere in the file) with their line numbers.
    ``from trmkit.x import y`` counts as ``trmkit.x.y`` when that is a module, else
    ``trmkit.x``; relative imports are resolved."""
    name = module_name(path, package)
    is_package = path.name == "__init__.py"
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            for alias in node.names:
                full = f"{origin}.{alias.name}"
                out.append((full if full in modules else origin, node.lineno))
    return sorted(
        {
            (target, line)
            for target, line in out
            if target == "trmkit" or target.startswith("trmkit.")
        }
    )


def violations(graph: Mapping[str, Iterable[tuple[str, int]]]) -> list[str]:
    """One line per unplaced module and per import that points to a higher layer."""
    problems = []
    for module in sorted(graph):
        mine = layer_prefix(module)
        if mine is None:
            problems.append(
                f"{module} is in no layer: add {module} to LAYERS in tests/test_layers_graph.py"
            )
            continue
        for target, line in graph[module]:
            theirs = layer_prefix(target)
            if theirs is None:
                problems.append(
                    f"{target} (imported by {module}:{line}) is in no layer: add "
                    f"{target} to LAYERS in tests/test_layers_graph.py"
                )
            elif RANK[theirs] > RANK[mine] and (mine, theirs) not in FACADE_EDGES:
                problems.append(
                    f"{module}:{line} ({LAYER_OF[mine]}) imports {target} "
                    f"({LAYER_OF[theirs]}), a layer above it"
                )
    return problems


def package_graph(package: Path = PACKAGE) -> dict[str, list[tuple[str, int]]]:
    files = sorted(package.rglob("*.py"))
    modules = {module_name(f, package) for f in files}
    return {module_name(f, package): imports_of(f, modules, package) for f in files}


def test_no_module_imports_from_a_layer_above():
    graph = package_graph()
    assert len(graph) > 50  # the scan found the package
    problems = violations(graph)
    assert not problems, "\n".join(problems)


def test_every_layer_entry_is_distinct():
    prefixes = [p for _, ps in LAYERS for p in ps]
    assert len(prefixes) == len(set(prefixes))


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        (
            {"trmkit.data.store": [("trmkit.training.trainer", 3)]},
            "trmkit.data.store:3 (services) imports trmkit.training.trainer (training), "
            "a layer above",
        ),
        (
            {"trmkit.evaluation": [("trmkit.commands.eval", 7)]},
            "trmkit.evaluation:7 (inference) imports trmkit.commands.eval (interface)",
        ),
        ({"trmkit.shiny": []}, "add trmkit.shiny to LAYERS in tests/test_layers_graph.py"),
        (
            {"trmkit.cli": [("trmkit.shiny.thing", 1)]},
            "add trmkit.shiny.thing to LAYERS in tests/test_layers_graph.py",
        ),
    ],
)
def test_checker_reports_upward_and_unplaced(graph, expected):
    problems = violations(graph)
    assert len(problems) == 1 and expected in problems[0]


def test_checker_allows_downward_same_layer_and_facade():
    assert (
        violations(
            {
                "trmkit.commands.train": [("trmkit.training.trainer", 1), ("trmkit.errors", 2)],
                "trmkit.evaluation": [("trmkit.solve", 1), ("trmkit.inference.engine", 2)],
                "trmkit.checkpoint.manifest": [("trmkit", 1)],
                "trmkit": [("trmkit.api", 12)],
            }
        )
        == []
    )


def test_lazy_and_relative_imports_are_seen(tmp_path):
    pkg = tmp_path / "trmkit"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("from . import store\n")
    (pkg / "data" / "store.py").write_text(
        "def f():\n    from trmkit.training import trainer\n    from ..evaluation import x\n"
    )
    graph = package_graph(pkg)
    assert graph["trmkit.data"] == [("trmkit.data.store", 1)]
    assert sorted(t for t, _ in graph["trmkit.data.store"]) == [
        "trmkit.evaluation",
        "trmkit.training",
    ]
    assert len(violations(graph)) == 2


# ------------------------------------------------------------------ one owner per fact


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
    ]


def test_the_trainer_is_the_loop():
    """No getattr-with-default on the recipe, no function-local imports, and the facts it
    used to own (budget formula, ignore label, manifest fields, cache) live elsewhere."""
    path = PACKAGE / "training" / "trainer.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert not [c.lineno for c in _calls(tree, "getattr")], "read recipe fields, not getattr"
    local = [
        node.lineno
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(fn)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert not local, f"function-local imports in trainer.py at lines {local}"
    text = path.read_text(encoding="utf-8")
    for fact in (
        "mean_puzzle_examples",
        "-100",
        "ModelRecord(",
        "DatasetRecord",
        "sha256",
        "def _flat",
        "def nullcontext",
        "SECTIONS",
    ):
        assert fact not in text, f"trainer.py should not hold {fact!r}"


@pytest.mark.parametrize(
    ("pattern", "owner"),
    [
        ("IGNORE_LABEL_ID = ", "batch.py"),
        ("* meta.mean_puzzle_examples /", "data/loader.py"),
        ("def rank(", "voting.py"),
        ("RESUME_MAY_CHANGE = ", "config.py"),
    ],
)
def test_one_owner(pattern, owner):
    holders = sorted(
        str(f.relative_to(PACKAGE))
        for f in PACKAGE.rglob("*.py")
        if pattern in f.read_text(encoding="utf-8")
    )
    assert holders == [owner]


def test_ignore_label_is_never_a_literal():
    literal = [
        f"{f.relative_to(PACKAGE)}:{node.lineno}"
        for f in PACKAGE.rglob("*.py")
        if f.name != "batch.py"
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8")))
        if isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and node.operand.value == 100
    ]
    assert not literal, f"use trmkit.batch.IGNORE_LABEL_ID instead of -100 at {literal}"
