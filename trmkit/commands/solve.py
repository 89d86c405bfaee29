"""`trmkit solve`: print the answer to a puzzle (sudoku string/file, maze file, ARC JSON)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from trmkit.commands.checkpoint import CHECKPOINT
from trmkit.commands.inference_options import inference_options, policy_from
from trmkit.task import MAX_NUM_AUG


@click.command(name="solve")
@click.argument("checkpoint", type=CHECKPOINT)
@click.argument("puzzle")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--trace",
    is_flag=True,
    help="Show the answer after every supervision step, its confidence, the givens and the "
    "cells that changed (and save trace PNGs).",
)
@inference_options
@click.option(
    "--num-aug",
    type=click.IntRange(min=0, max=MAX_NUM_AUG),
    default=8,
    show_default=True,
    help="Variants drawn for a per-variant-id task missing from the checkpoint.",
)
@click.option(
    "--trace-dir",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where --trace writes its PNGs.",
)
@click.option(
    "--adapt",
    "adapt_steps",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="First adapt to the puzzles' tasks for N steps (trmkit adapt, in memory).",
)
@click.option(
    "--submission",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the answers as an ARC Prize submission (two attempts per test input).",
)
def solve_cmd(
    checkpoint, puzzle, as_json, trace, num_aug, trace_dir, adapt_steps, submission, **options
):
    """Solve PUZZLE with CHECKPOINT (a step_<N> bundle or a run directory)."""
    policy = policy_from(options)
    import torch

    from trmkit.checkpoint import check_task_matches, load_bundle
    from trmkit.names import safe_file_name
    from trmkit.oserrors import check_writable_dir, check_writable_file
    from trmkit.reports import plot_trace
    from trmkit.solve import read_puzzles, solve
    from trmkit.textio import printable
    from trmkit.traces import colour_wanted, render_trace_text

    colour = colour_wanted(sys.stdout)  # docs/reports.md, "Traces"
    if trace:
        check_writable_dir(trace_dir, "--trace-dir")  # before the model runs
    if submission is not None:
        check_writable_file(submission, "submission file")
    bundle = load_bundle(checkpoint, device="cuda" if torch.cuda.is_available() else "cpu")
    task = bundle.task
    check_task_matches(bundle, task)  # a checkpoint/task mismatch before the puzzle is read
    puzzles = read_puzzles(task, puzzle)
    table = None
    if adapt_steps is not None:
        from trmkit.commands.adapt import adapt_for_solve

        bundle, table = adapt_for_solve(bundle, task, puzzles, adapt_steps, num_aug, policy.seed)
    answers = solve(
        bundle,
        task,
        puzzles,
        trace=trace,
        num_aug=num_aug,
        seed=policy.seed,
        policy=policy,
        table=table,
    )
    if submission is not None:
        from trmkit.inference.submission import submission_of, write_submission

        write_submission(submission, submission_of(puzzles, answers))
        click.echo(f"submission: {submission}", err=True)
    if as_json:
        click.echo(json.dumps([a.to_json(task) for a in answers], indent=2))
    for a in answers:
        if trace:
            # a puzzle id may hold '/' or be too long for a file name (docs/errors.md)
            pngs = trace_dir / f"trace-{safe_file_name(a.puzzle)}-{a.query + 1}.png"
            if not as_json:
                click.echo(render_trace_text(a.trace, task.cell_text, colour=colour))
            trace_dir.mkdir(parents=True, exist_ok=True)
            title = f"{printable(a.puzzle)[:80]} (query {a.query + 1})"
            if plot_trace(a.trace, title, pngs, task.cell_text):
                click.echo(f"trace: {printable(pngs)}", err=True)
            else:
                click.echo("note: matplotlib not installed: no trace PNG", err=True)
        if as_json:
            continue
        name = printable(a.puzzle)
        title = name if len(name) < 60 else name[:57] + "..."
        click.echo(f"== {title} (query {a.query + 1})")
        click.echo(task.render(a.grid))
        extra = f", {a.votes}/{a.variants} votes" if a.variants > 1 else ""
        verdict = _verdict(a.valid, a.correct)
        click.echo(f"confidence {a.confidence:.3f}, {a.steps:g} steps{extra}{verdict}")
        if a.note:
            click.echo(f"note: {printable(a.note)}")


def _verdict(valid: bool | None, correct: bool | None) -> str:
    """The task's checker decides where it has one (a puzzle may have several solutions);
    the given solution only where there is no checker, or to say a valid answer differs."""
    if valid is None:
        return "" if correct is None else (", correct" if correct else ", WRONG")
    if not valid:
        return ", INVALID"
    return ", VALID (not the given solution)" if correct is False else ", VALID"


COMMANDS = (solve_cmd,)
