"""`trmkit adapt`: test-time training of new puzzles into a copy of a checkpoint
(`trmkit.training.adapt`); `adapt_for_solve` is `trmkit solve --adapt`."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from trmkit.cli import command_task
from trmkit.commands.checkpoint import CHECKPOINT
from trmkit.errors import CheckpointError


def read_task_files(task, specs) -> list:
    """The puzzles of every TASKS argument (a file or inline text), each checked for what
    adapting needs; an error names the file."""
    from trmkit.solve import read_puzzles
    from trmkit.training.adapt import check_puzzles

    puzzles = []
    for spec in specs:
        found = read_puzzles(task, spec)
        where = spec if len(spec) < 200 and not spec.lstrip().startswith("{") else "task text"
        check_puzzles(task, found, where)
        puzzles.extend(found)
    return puzzles


def report(result, echo) -> None:
    known = f"; already in the table, kept as they were: {', '.join(result.known)}"
    echo(
        f"adapted {len(result.tasks)} task(s) ({result.rows} embedding rows) in "
        f"{result.steps} steps, {result.seconds:.1f} s; loss per example "
        f"{result.loss_first:.4f} -> {result.loss_last:.4f}" + (known if result.known else "")
    )


def adapt_for_solve(bundle, task, puzzles, steps: int, num_aug: int, seed: int):
    """`trmkit solve --adapt N`: the adapted bundle in memory and its puzzle-id table
    (`adapt` checks that the checkpoint can adapt and that the puzzles fit)."""
    from trmkit.training.adapt import adapt

    echo = functools.partial(click.echo, err=True)
    result = adapt(
        bundle,
        task,
        puzzles,
        steps=steps,
        num_aug=num_aug,
        seed=seed,
        device=next(bundle.model.parameters()).device,
        progress=True,
        echo=echo,
    )
    report(result, echo)
    return result.bundle()


@click.command(name="adapt")
@click.argument("checkpoint", type=CHECKPOINT)
@click.argument("tasks", nargs=-1, required=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="The new bundle (a directory), whose puzzle-id table knows the new tasks.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Optimizer steps (default 100, or as many as --minutes allows).",
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this much wall-clock time (with --steps: whichever comes first).",
)
@click.option(
    "--scope",
    type=click.Choice(("embeddings", "full")),
    default="embeddings",
    show_default=True,
    help="Train only the new puzzle-embedding rows, or them and every weight.",
)
@click.option(
    "--num-aug",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Augmented variants per task (each its own embedding row), besides the original.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Rows per step (default: the recipe's global batch, at most the demonstration rows).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of everything.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def adapt_cmd(
    checkpoint, tasks, out, steps, minutes, scope, num_aug, batch_size, seed, force, no_progress
):
    """Fit new puzzle-embedding rows (or the whole model) for TASKS (ARC task files) on
    their demonstration pairs and augmentations; write the adapted bundle to --out."""
    from trmkit.threads import configure_threads

    configure_threads()
    import torch

    from trmkit.checkpoint import check_task_matches, load_bundle
    from trmkit.oserrors import check_writable_dir
    from trmkit.training.adapt import adapt, check_adaptable

    if out.exists() and not force:
        raise CheckpointError(f"{out}: exists; pass --force to replace it or choose another --out")
    check_writable_dir(out.parent, "directory of --out")
    bundle = load_bundle(checkpoint, device="cpu")
    task = command_task(bundle.task_name).for_store(bundle.manifest.dataset.store)
    check_task_matches(bundle, task)
    check_adaptable(bundle, task)
    puzzles = read_task_files(task, tasks)
    result = adapt(
        bundle,
        task,
        puzzles,
        steps=steps,
        minutes=minutes,
        scope=scope,
        num_aug=num_aug,
        seed=seed,
        batch_size=batch_size,
        device="cuda" if torch.cuda.is_available() else "cpu",
        progress=not no_progress,
        echo=lambda line: click.echo(line, err=True),
    )
    written = result.write(out, force=force)
    report(result, click.echo)
    click.echo(f"bundle: {written}")


COMMANDS = (adapt_cmd,)
