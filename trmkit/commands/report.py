"""`trmkit report`: a run's training curves, per-step accuracy, halting histogram and a few
traces as one self-contained HTML file (docs/reports.md, "The run report")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trmkit.errors import RunDirError

EVAL_ROWS = 256
"""test rows evaluated when the run has no evaluation of its newest checkpoint."""
MAX_TRACES = 50


def read_per_step(path: Path) -> tuple[list[dict[str, Any]], list[int]] | None:
    """per_step.json's accuracy per step and halting histogram (`trmkit.evaluation`), None
    when it is missing or does not hold them."""
    from trmkit.textio import loads_json, read_text

    if not path.is_file():
        return None
    data = loads_json(read_text(path, what="per-step report"), path, error=RunDirError)
    if not isinstance(data, dict):
        return None
    per_step, histogram = data.get("per_step"), data.get("halting_histogram")
    if not isinstance(per_step, list) or not isinstance(histogram, list):
        return None
    keys = ("step", "exact_accuracy", "accuracy")
    if not all(isinstance(r, dict) and all(k in r for k in keys) for r in per_step):
        return None
    return per_step, [int(v) for v in histogram]


def traced_puzzles(task: Any, split: Any, count: int) -> list[Any]:
    """The first ``count`` test puzzles as given (their identity variant), each with its
    first example, decoded from the store split."""
    import numpy as np

    from trmkit.task import Example, RawPuzzle

    starts = np.asarray(split.puzzle_indices)
    as_given = (np.asarray(split.transforms) == task.augmenter.identity()).all(axis=1)
    ignore, pad = int(split.meta.ignore_label_id), int(task.codec.pad_id)
    puzzles: list[RawPuzzle] = []
    for p in np.flatnonzero((np.diff(starts) > 0) & as_given)[:count]:
        inputs, labels = split.rows(starts[p : p + 1])
        labels = np.where(labels == ignore, pad, labels)
        grids = [np.asarray(task.codec.decode(t[0].astype(np.int64))) for t in (inputs, labels)]
        name = split.group_names[int(split.puzzle_group[p])]
        puzzles.append(RawPuzzle(name, test=(Example(*grids),)))
    return puzzles


@click.command(name="report")
@click.argument("run", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="The HTML file to write (default: RUN/report.html).",
)
@click.option(
    "--traces",
    type=click.IntRange(min=0, max=MAX_TRACES),
    default=3,
    show_default=True,
    help="Test puzzles shown step by step.",
)
def report_cmd(run, out, traces):
    """Write RUN's report: training curves, accuracy after each supervision step, the
    halting histogram and a few test puzzles' traces, as one self-contained HTML file."""
    if not (run / "metrics.jsonl").is_file():  # a run directory is what `trmkit train` writes
        what = "is not a directory" if not run.is_dir() else "has no metrics.jsonl"
        raise RunDirError(
            f"{run}: not a run directory ({what}); give the --out directory of `trmkit train`"
        )
    out = out or run / "report.html"
    from trmkit.oserrors import check_writable_file

    check_writable_file(out, "--out")  # before the model runs
    import torch

    from trmkit import atomic
    from trmkit.checkpoint import check_task_matches, load_bundle, open_test_split
    from trmkit.evaluation import evaluate
    from trmkit.html_report import ReportData, TraceView, render_report
    from trmkit.solve import solve
    from trmkit.training.metrics_log import MetricsLog

    records = MetricsLog(run / "metrics.jsonl").read()
    bundle = load_bundle(run, device="cuda" if torch.cuda.is_available() else "cpu")
    task = bundle.task
    check_task_matches(bundle, task)
    split = open_test_split(bundle, task)
    saved = run / "eval" / f"step_{bundle.step}" / "per_step.json"
    found = read_per_step(saved)
    if found is not None:
        per_step, histogram = found
        evaluation = f"per step and halting: {saved.relative_to(run)} (the whole test split)"
    else:
        rep = evaluate(bundle.model, split, task, batch_size=EVAL_ROWS, max_examples=EVAL_ROWS)
        per_step, histogram = rep.per_step, rep.halting_histogram
        evaluation = (
            f"per step and halting: computed now on the first {int(rep.metrics['count'])} "
            f"test rows (no evaluation of step {bundle.step} in {run / 'eval'})"
        )
    views = []
    puzzles = traced_puzzles(task, split, traces)
    for a in solve(bundle, task, puzzles, trace=True) if puzzles else []:
        verdict = {True: "valid", False: "INVALID", None: ""}[a.valid]
        if a.valid is None and a.correct is not None:
            verdict = "correct" if a.correct else "WRONG"
        values = sorted({int(v) for st in a.trace for v in st.grid.reshape(-1)})
        views.append(
            TraceView(
                title=f"{a.puzzle} (query {a.query + 1}): {verdict}, {a.steps:g} steps",
                steps=a.trace,
                symbols={v: task.cell_text(v) for v in values},
            )
        )
    last: dict[str, Any] = next((r for r in reversed(records) if r.get("split") == "eval"), {})
    facts = [
        ("run", str(run)),
        ("task", task.name),
        ("architecture", bundle.manifest.model.name),
        ("parameters", f"{sum(p.numel() for p in bundle.model.parameters()):,}"),
        ("checkpoint", f"step {bundle.step} ({bundle.path.name})"),
        (
            "last evaluation",
            f"step {last['step']}: exact accuracy {last['exact_accuracy']:.4f}, token "
            f"accuracy {last['accuracy']:.4f} ({int(last.get('count', 0))} puzzles)"
            if "exact_accuracy" in last and "accuracy" in last
            else "none in metrics.jsonl",
        ),
    ]
    page = render_report(
        ReportData(
            title=f"trmkit report: {run.resolve().name}",
            facts=facts,
            records=records,
            per_step=per_step,
            histogram=histogram,
            evaluation=evaluation,
            traces=views,
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)  # checked creatable above
    atomic.write_text(out, page)
    click.echo(f"report: {out}")


COMMANDS = (report_cmd,)
