"""Registers the maze tasks: the paper's Maze-Hard and two CPU-sized variants.

maze-hard (alias maze): 30x30, tokens "# SGo" -> 1..5, vocab 6, seq_len 900; the real CSV
  data or the hub download for paper runs; default source the offline generator (shortest
  path > 110 cells). Default num_aug 7 = all 8 dihedral copies (paper).
maze-15x15 (alias maze-small, seq_len 225) and maze-11x11 (alias maze-tiny, seq_len 121):
  generated mazes whose shortest path is at least side * 11/3 cells long, the 30x30
  ratio (110 / 30) scaled down, for quick CPU recipes.
"""

from __future__ import annotations

from trmkit.grids.codec import OffsetCodec
from trmkit.hookspecs import hookimpl
from trmkit.task import BuildDefaults, Task
from trmkit_maze import source
from trmkit_maze.augment import DihedralAugmenter
from trmkit_maze.evaluate import MazeEvaluator

HARD_MIN_PATH = 111  # Maze-Hard: shortest path longer than 110 cells


CPU_RECIPE = "maze-quick"
"""what `trmkit train` suggests when a recipe of these tasks would take over a day here
(docs/training.md, "Preflight")."""


def min_path_for(side: int) -> int:
    """Minimum path cells for a generated side x side maze: 110/30 per unit of side, + 1."""
    return side * 110 // 30 + 1


def make_task(
    name: str,
    description: str,
    side: int,
    *,
    min_path: int,
    recipe: str | None = None,
    hub: bool = False,
) -> Task:
    sources = {
        "generate": source.generator_source(
            side, count=1000, test_count=1000, min_path=min_path, braid=0.05
        ),
        **source.csv_sources(side, name, hub),
    }
    return Task(
        name=name,
        description=description,
        codec=OffsetCodec(side, side, 5),
        augmenter=DihedralAugmenter(),
        evaluator=MazeEvaluator(),
        sources=sources,
        defaults=BuildDefaults(
            source="generate",
            num_aug=7,
            recipe=recipe,
            official_total_puzzles="groups",
            cpu_recipe=CPU_RECIPE,
        ),
        path_source="csv",
        render=source.render,
        parse_puzzles=source.parse_puzzles(side),
        givens=source.givens,
        cell_text=source.cell_text,
    )


def builtin_tasks() -> list[tuple[Task, tuple[str, ...]]]:
    return [
        (
            make_task(
                "maze-hard",
                "Maze-Hard 30x30 (HRM/TRM): find the shortest S->G path; 8 dihedral copies",
                30,
                min_path=HARD_MIN_PATH,
                recipe="maze-hard",
                hub=True,
            ),
            ("maze",),
        ),
        (
            make_task(
                "maze-15x15",
                "generated 15x15 mazes (quick CPU recipe)",
                15,
                min_path=min_path_for(15),
            ),
            ("maze-small",),
        ),
        (
            make_task(
                "maze-11x11",
                "generated 11x11 mazes (quickest CPU recipe)",
                11,
                min_path=min_path_for(11),
                recipe=CPU_RECIPE,
            ),
            ("maze-tiny",),
        ),
    ]


@hookimpl
def register_tasks(register):
    for task, aliases in builtin_tasks():
        register(task, aliases=aliases)
