"""Registers the sudoku tasks: the paper's Sudoku-Extreme and small CPU-sized variants.

sudoku-extreme (alias sudoku): 9x9, vocab 11, seq_len 81, the real CSV data or the hub
  download for paper runs; the default source is the offline generator (hard = needs at
  least one solver guess).
sudoku-easy: the same 9x9 codec, generated puzzles left with 32 givens (singles-solvable
  mostly): a quick 9x9 recipe target.
sudoku-6x6 (2x3 boxes, vocab 8, seq_len 36) and sudoku-4x4 (2x2 boxes, vocab 6,
  seq_len 16): generated minimal puzzles for quick CPU recipes.
"""

from __future__ import annotations

from trmkit.grids.codec import OffsetCodec
from trmkit.hookspecs import hookimpl
from trmkit.task import BuildDefaults, Task
from trmkit_sudoku import source
from trmkit_sudoku.augment import SudokuAugmenter
from trmkit_sudoku.evaluate import SudokuEvaluator
from trmkit_sudoku.solver import GEOMETRIES, Geometry

CPU_RECIPE = "sudoku-quick"
"""what `trmkit train` suggests when a recipe of these tasks would take over a day here
(docs/training.md, "Preflight")."""


def make_task(
    name: str,
    description: str,
    geo: Geometry,
    *,
    test_count: int = 1000,
    min_rating: int = 0,
    givens: int = 0,
    num_aug: int = 1000,
    recipe: str | None = None,
    hub: bool = False,
) -> Task:
    """One sudoku task of the given box geometry (codec sized n x n, vocab n + 2)."""
    sources = {
        "generate": source.generator_source(
            geo, count=1000, test_count=test_count, min_rating=min_rating, givens=givens
        ),
        **source.csv_sources(geo, name, hub),
    }
    return Task(
        name=name,
        description=description,
        codec=OffsetCodec(geo.n, geo.n, geo.n + 1),
        augmenter=SudokuAugmenter(geo),
        evaluator=SudokuEvaluator(geo),
        sources=sources,
        defaults=BuildDefaults(
            source="generate",
            num_aug=num_aug,
            recipe=recipe,
            official_total_puzzles="groups",
            cpu_recipe=CPU_RECIPE,
        ),
        path_source="csv",
        render=source.render(geo),
        parse_puzzles=source.parse_puzzles(geo),
        format_puzzle=source.format_puzzle,
        givens=source.givens,
        cell_text=source.cell_text(geo),
    )


def builtin_tasks() -> list[tuple[Task, tuple[str, ...]]]:
    nine = GEOMETRIES[9]
    return [
        (
            make_task(
                "sudoku-extreme",
                "Sudoku-Extreme 9x9 (HRM/TRM): digit+1 tokens, 1000 shuffles per puzzle",
                nine,
                test_count=200,
                min_rating=1,
                recipe="sudoku-extreme-mlp",
                hub=True,
            ),
            ("sudoku",),
        ),
        (
            make_task(
                "sudoku-easy",
                "generated 9x9 sudokus with 32 givens (quick CPU recipe)",
                nine,
                givens=32,
                num_aug=100,
                recipe="sudoku-9x9-quick",
            ),
            (),
        ),
        (
            make_task(
                "sudoku-6x6",
                "generated 6x6 sudokus (2x3 boxes), minimal unique puzzles (quick CPU recipe)",
                GEOMETRIES[6],
                num_aug=100,
                recipe="sudoku-quick",
            ),
            (),
        ),
        (
            make_task(
                "sudoku-4x4",
                "generated 4x4 sudokus (2x2 boxes), minimal unique puzzles (smoke tests)",
                GEOMETRIES[4],
                num_aug=10,
            ),
            (),
        ),
    ]


@hookimpl
def register_tasks(register):
    for task, aliases in builtin_tasks():
        register(task, aliases=aliases)
