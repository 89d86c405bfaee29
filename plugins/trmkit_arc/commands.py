"""`trmkit score`: the ARC Prize score of a submission file, registered by this plugin.

It lives here, not among trmkit's built-in commands, because both of its inputs are ARC's:
the submission format is the ARC Prize's and the solutions come in ARC's published layouts,
which this plugin reads (`trmkit_arc.files`); trmkit itself writes submissions for any
grid task (`trmkit solve --submission`, `trmkit.inference.submission`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command(name="score")
@click.argument("submission", type=click.Path(path_type=Path))
@click.argument("solutions", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--per-task", is_flag=True, help="Also print each task's pass@1 and pass@2.")
def score_cmd(submission, solutions, as_json, per_task):
    """Score SUBMISSION (ARC Prize format) against SOLUTIONS (a Kaggle solutions file, or
    ARC task files with test outputs): pass@1 and pass@2 per test input, averaged per task."""
    from trmkit_arc.submission import score_files

    score = score_files(submission, solutions)
    if as_json:
        click.echo(json.dumps(score.to_json(), indent=2))
        return
    if per_task:
        for task, (one, two) in score.per_task.items():
            click.echo(f"{task:24} pass@1 {one:.3f}  pass@2 {two:.3f}")
    solved2 = sum(b for _, b in score.per_task.values())
    click.echo(
        f"pass@1 {score.pass_at_1:.4f}, pass@2 {score.pass_at_2:.4f} ({solved2:g} of "
        f"{score.tasks} tasks' worth of {score.test_inputs} test inputs)"
    )


COMMANDS = (score_cmd,)
