"""Evaluation reports (per-step accuracy, halting histogram, adaptive) and `trmkit solve`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tiny_training import build_tiny_data, one_thread, tiny_trainer

from trmkit import load, plugins
from trmkit.checkpoint import check_task_matches
from trmkit.cli import cli
from trmkit.data.store import open_store
from trmkit.errors import CheckpointError
from trmkit.evaluation import evaluate
from trmkit.solve import solve


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    before = one_thread()
    tmp = tmp_path_factory.mktemp("evalsolve")
    data = build_tiny_data(tmp / "data")
    tiny_trainer(tmp, data, overrides=["train.epochs=3"]).run()
    yield tmp / "run", data
    torch.set_num_threads(before)


def test_eval_per_step_histogram_and_adaptive(run):
    run_dir, data = run
    bundle = load(run_dir)
    task = plugins.get_task("sudoku-4x4")
    split = open_store(data, task).split("test")
    report = evaluate(bundle.model, split, task, batch_size=10, steps=5)  # > N_sup = 3
    m = report.metrics
    assert m["count"] == 32 and report.steps == 5 and len(report.per_step) == 5
    assert sum(report.halting_histogram) == 32 and len(report.halting_histogram) == 6
    assert 1.0 <= m["adaptive_mean_steps"] <= 5.0
    # the fixed-K numbers are those of the last step, and the task's evaluator agrees
    assert m["exact_accuracy"] == report.per_step[-1]["exact_accuracy"]
    assert m["token_accuracy"] == pytest.approx(m["accuracy"])
    # evaluating 3 steps == the first 3 entries of the 5-step pass (same computation)
    short = evaluate(bundle.model, split, task, batch_size=16)
    assert short.steps == 3
    for a, b in zip(short.per_step, report.per_step[:3], strict=True):
        assert a == pytest.approx(b)
    assert bundle.model.config.halt_max_steps == 3  # restored after the 5-step pass


def test_eval_cli_writes_reports(run, tmp_path):
    run_dir, data = run
    out = tmp_path / "ev"
    result = CliRunner().invoke(
        cli, ["eval", str(run_dir), "--out", str(out), "--steps", "4", "--adaptive"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["adaptive"] is True
    assert metrics["exact_accuracy"] == metrics["adaptive_exact_accuracy"]
    per_step = json.loads((out / "per_step.json").read_text())
    assert len(per_step["per_step"]) == 4
    assert (out / "eval.png").exists()


def test_solve_api_and_cli(run, tmp_path):
    run_dir, _ = run
    bundle = load(run_dir)
    task = plugins.get_task("sudoku-4x4")
    puzzles = task.parse_puzzles("1..4.3....2..1..")
    [answer] = solve(bundle, task, puzzles, trace=True, steps=4)
    assert answer.grid.shape == (4, 4) and len(answer.trace) == 4
    # the trace's last step is the answer; each step marks what differs from the one before
    assert [st.step for st in answer.trace] == [1, 2, 3, 4]
    assert np.array_equal(answer.trace[-1].grid, answer.grid)
    assert answer.trace[-1].confidence == pytest.approx(answer.confidence)
    for before, after in zip(answer.trace, answer.trace[1:], strict=False):
        assert np.array_equal(after.changed, before.grid != after.grid)
    given = puzzles[0].test[0].input != 0
    assert all(np.array_equal(st.given, given) for st in answer.trace)
    assert answer.correct == bool(np.array_equal(answer.grid, puzzles[0].test[0].output))
    runner = CliRunner()
    result = runner.invoke(cli, ["solve", str(run_dir), "1..4.3....2..1..", "--json"])
    assert result.exit_code == 0, result.output
    [out] = json.loads(result.output)
    assert np.array(out["answer"]).shape == (4, 4) and out["steps"] == 3
    result = runner.invoke(
        cli, ["solve", str(run_dir), "1..4.3....2..1..", "--trace", "--trace-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("-- step") == 3
    assert "(x) given by the puzzle, [x] changed since the previous step" in result.output
    assert "-- step 3/3  confidence " in result.output
    assert "\x1b[" not in result.output  # not a terminal: plain marks, no ANSI
    assert list(tmp_path.glob("trace-*.png"))


def test_solve_rejects_bad_puzzles_and_foreign_checkpoints(run):
    run_dir, _ = run
    runner = CliRunner()
    for bad, why in (("1..4.3", "expected 16"), ("1..4.3....2..1.x", "illegal character")):
        result = runner.invoke(cli, ["solve", str(run_dir), bad])
        assert result.exit_code != 0 and why in result.output
        assert "Traceback" not in result.output
    bundle = load(run_dir)
    with pytest.raises(CheckpointError, match="seq_len 16 does not match"):
        check_task_matches(bundle, plugins.get_task("sudoku-6x6"))


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        # each was a traceback from float() / .items() inside trmkit, naming no plugin
        (lambda m: None, "evaluator's finish() returned NoneType, not a dict of metric name"),
        (lambda m: [1.0], "evaluator's finish() returned list, not a dict of metric name"),
        (
            lambda m: {**m, "grade": "high"},
            "evaluator's finish() metric 'grade' = 'high' is not a number",
        ),
        (
            lambda m: {**m, "grade": None},
            "evaluator's finish() metric 'grade' = None is not a number",
        ),
        (
            lambda m: {**m, 3: 1.0},
            "evaluator's finish() metric 3 = 1.0 is not a number under a str name",
        ),
    ],
)
def test_evaluator_returning_bad_metrics_is_one_line(run, finish, expected):
    import attrs

    from trmkit.errors import PluginError

    run_dir, data = run
    bundle = load(run_dir)
    task = plugins.get_task("sudoku-4x4")
    inner = task.evaluator

    class Run:
        def __init__(self, context):
            self.run = inner.start(context)

        def update(self, batch):
            self.run.update(batch)

        def finish(self):
            return finish(self.run.finish())

    class Careless:
        def start(self, context):
            return Run(context)

    careless = attrs.evolve(task, evaluator=Careless())
    split = open_store(data, task).split("test")
    with pytest.raises(PluginError, match="^" + re.escape(f"task 'sudoku-4x4': {expected}")):
        evaluate(bundle.model, split, careless, batch_size=16)
