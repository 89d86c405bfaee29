"""The Python API (docs/python-api.md): `trmkit.load` gives a model that solves and evaluates
exactly as `trmkit.solve.solve` / `trmkit.evaluation.evaluate` do under the same policy;
`trmkit.train` trains a recipe as `trmkit train` does and returns the run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_training import build_tiny_data, one_thread, tiny_trainer, write_recipe

import trmkit
from trmkit import plugins
from trmkit.api import LoadedModel, Run
from trmkit.checkpoint import Bundle, load_bundle
from trmkit.data.store import open_store
from trmkit.errors import CheckpointError, OptionError, PuzzleError
from trmkit.evaluation import evaluate
from trmkit.inference.policy import HaltPolicy, InferencePolicy
from trmkit.solve import read_puzzles, solve

PUZZLE = "12..34....4.4..1"
"""a 4x4 sudoku, blanked from the valid grid 1234/3412/2143/4321."""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    before = one_thread()
    tmp = tmp_path_factory.mktemp("api")
    data = build_tiny_data(tmp / "data")
    tiny_trainer(tmp, data).run()
    yield tmp / "run", data
    torch.set_num_threads(before)


def test_load_gives_the_model_its_task_and_manifest(run):
    run_dir, _ = run
    model = trmkit.load(run_dir)
    assert isinstance(model, LoadedModel) and isinstance(model, Bundle)
    assert model.task is plugins.get_task("sudoku-4x4")
    assert model.config.halt_max_steps == 3 and model.config.hidden_size == 32
    assert model.manifest.step == 8 and model.path.name == "step_8"
    assert isinstance(model.model, torch.nn.Module)
    module, manifest = model  # the tuple form `trmkit.load` always had
    assert module is model.model and manifest is model.manifest


def test_solve_text_is_trmkit_solve_of_read_puzzles(run):
    run_dir, _ = run
    model = trmkit.load(run_dir)
    options = dict(steps=5, halt="converged:1", samples=3, select="valid", seed=4)
    got = model.solve(PUZZLE, **options)
    policy = InferencePolicy(
        steps=5, halt=HaltPolicy("converged", 1), samples=3, select="valid", seed=4
    )
    bundle = load_bundle(run_dir)
    want = solve(bundle, model.task, read_puzzles(model.task, PUZZLE), seed=4, policy=policy)
    assert len(got) == len(want) == 1
    assert np.array_equal(got[0].grid, want[0].grid)
    assert (got[0].confidence, got[0].steps, got[0].valid, got[0].correct) == (
        want[0].confidence,
        want[0].steps,
        want[0].valid,
        want[0].correct,
    )
    assert got[0].puzzle == "puzzle-1" and got[0].correct is not None  # the text has a label


def test_solve_grids_and_files(run, tmp_path):
    model = trmkit.load(run[0])
    grid = np.array([[1, 2, 0, 0], [3, 4, 0, 0], [0, 0, 4, 0], [4, 0, 0, 1]])
    one = model.solve(grid)
    assert [a.puzzle for a in one] == ["grid-1"]
    assert one[0].correct is None  # no label was given: only the task's checker judges
    assert one[0].valid is bool(model.task.evaluator.check_answer(grid, one[0].grid))
    two = model.solve([grid.tolist(), grid])
    assert [a.puzzle for a in two] == ["grid-1", "grid-2"]
    assert np.array_equal(two[0].grid, one[0].grid) and np.array_equal(two[1].grid, one[0].grid)
    file = tmp_path / "p.txt"
    file.write_text(PUZZLE + "\n")
    assert np.array_equal(model.solve(file)[0].grid, model.solve(PUZZLE)[0].grid)


def test_evaluate_is_the_evaluation_of_the_trained_store(run, tmp_path):
    run_dir, data = run
    model = trmkit.load(run_dir)
    metrics = model.evaluate(steps=4, halt="q", batch_size=8, out=tmp_path / "ev")
    split = open_store(data, model.task).split("test")
    policy = InferencePolicy(steps=4, halt=HaltPolicy("q"))
    want = evaluate(model.model, split, model.task, batch_size=8, policy=policy).metrics
    assert metrics["count"] == 32 and metrics["steps"] == 4 and metrics["halt"] == "q"
    for key in ("exact_accuracy", "accuracy", "adaptive_mean_steps", "fixed_exact_accuracy"):
        assert metrics[key] == want[key]
    assert metrics["exact_accuracy_ci95_low"] <= metrics["exact_accuracy"]
    written = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert written["exact_accuracy"] == metrics["exact_accuracy"]
    # the same store given explicitly
    assert model.evaluate(data, batch_size=8)["count"] == 32


@pytest.mark.parametrize(
    ("options", "culprit"),
    [
        ({"halt": "sometimes"}, "--halt 'sometimes'"),
        ({"samples": 0}, "--samples 0"),
        ({"select": "best"}, "--select 'best'"),
        ({"steps": 0}, "--steps 0"),
        # these were tracebacks from numpy's SeedSequence
        ({"seed": -1}, "--seed -1: must be an integer from 0 to 4294967295"),
        ({"seed": "x"}, "--seed 'x': must be an integer from 0 to"),
        # these were taken silently (the command line refuses them)
        ({"num_aug": -1}, "num_aug -1: must be an integer from 0 to 100000"),
        ({"num_aug": 10**9}, "num_aug 1000000000: must be an integer from 0 to 100000"),
    ],
)
def test_bad_options_are_one_line(run, options, culprit):
    model = trmkit.load(run[0])
    with pytest.raises(OptionError) as err:
        model.solve(PUZZLE, **options)
    assert str(err.value).startswith(culprit) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("puzzles", "message"),
    [
        ([np.zeros((4, 4), int), 3.5], r"^puzzles\[1\]: a float; give puzzle text"),
        # each was a TypeError or ValueError traceback from inside trmkit.api or numpy
        (None, r"^puzzles: a NoneType; give puzzle text, a puzzle file, a RawPuzzle"),
        (42, r"^puzzles: a int; give puzzle text"),
        ([[1, 2], [3]], r"^puzzles\[0\]: not a grid of integers \(setting an array element"),
        (np.full((4, 4), "a"), r"^puzzles\[0\]: not a grid of integers \(its cells are <U1\)"),
        (np.full((4, 4), 0.5), r"^puzzles\[0\]: not a grid of integers \(its cells are float64"),
        (np.full((4, 4), np.nan), r"^puzzles\[0\]: not a grid of integers"),
    ],
)
def test_bad_puzzles_are_one_line(run, puzzles, message):
    model = trmkit.load(run[0])
    with pytest.raises(OptionError, match=message):
        model.solve(puzzles)


@pytest.mark.parametrize("shape", [(5, 5), (4, 5), (1, 16)])
def test_grid_of_another_shape_is_refused_before_augmenting(run, shape):
    """The sudoku augmenter moves cells by index: a 5x5 grid was cut to its first 16 cells
    and answered as a 4x4 sudoku, silently; the codec judges the query first."""
    model = trmkit.load(run[0])
    expected = rf"^grid-1, query 1: grid shape \({shape[0]}, {shape[1]}\) does not match"
    with pytest.raises(PuzzleError, match=expected):
        model.solve(np.zeros(shape, int))


def test_puzzle_text_errors_and_float_grids(run):
    model = trmkit.load(run[0])
    with pytest.raises(PuzzleError, match="line 1: 3 cells, expected 16"):
        model.solve("123")
    whole = np.zeros((4, 4))  # np.zeros is float64: whole numbers are a grid
    assert model.solve(whole)[0].grid.shape == (4, 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.evaluate(data=42), r"^data=42: expected a str or os.PathLike path"),
        (lambda m: m.evaluate(out=42), r"^out=42: expected a str or os.PathLike path"),
        (lambda m: m.evaluate(max_examples=-1), r"^max_examples -1: must be an integer >= 0"),
        (lambda m: m.evaluate(max_examples="9"), r"^max_examples '9': must be an integer >= 0"),
        (lambda m: trmkit.train(42), r"^recipe=42: expected a str or os.PathLike path"),
        (lambda m: trmkit.train("sudoku-quick", out=42), r"^out=42: expected a str or os."),
        (lambda m: trmkit.train("sudoku-quick", data=[]), r"^data=\[\]: expected a str or"),
        # the step budget error blamed epochs for a max_steps the caller gave
        (lambda m: trmkit.train("sudoku-quick", max_steps=-1), r"^max_steps -1: must be an int"),
        (lambda m: trmkit.train("sudoku-quick", max_steps=2.5), r"^max_steps 2.5: must be an int"),
    ],
)
def test_bad_arguments_are_one_line(run, call, message):
    with pytest.raises(OptionError, match=message):
        call(trmkit.load(run[0]))


@pytest.mark.parametrize("layout", ["empty", "junk", "missing", "file"])
def test_load_of_what_is_not_a_bundle_is_one_line(tmp_path, layout):
    path = tmp_path / "bundles" / "thing"
    if layout == "empty":
        path.mkdir(parents=True)
    elif layout == "junk":
        path.mkdir(parents=True)
        (path / "notes.txt").write_text("hello\n")
    elif layout == "file":
        path.parent.mkdir()
        path.write_text("hello\n")
    with pytest.raises(CheckpointError) as err:
        trmkit.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "step_<N>" in message  # the fix names what to give


def test_train_returns_the_run(run, tmp_path):
    _, data = run
    result = trmkit.train(
        write_recipe(tmp_path),
        out=tmp_path / "r",
        data=data,
        overrides={"train.epochs": 1, "optim.ema": False},
    )
    assert isinstance(result, Run)
    assert result.run_dir == tmp_path / "r" and result.step == 4  # 64 puzzles / batch 16
    assert result.checkpoint == tmp_path / "r" / "checkpoints" / "step_4"
    assert result.metrics["count"] == 32
    loaded = result.load()
    assert loaded.manifest.step == 4 and not loaded.manifest.ema
    assert loaded.evaluate(batch_size=16)["exact_accuracy"] == result.metrics["exact_accuracy"]


def test_train_overrides_as_list_and_their_errors(tmp_path):
    with pytest.raises(OptionError, match=r"^overrides='optim.lr=1': give a dict"):
        trmkit.train(write_recipe(tmp_path), overrides="optim.lr=1")
    from trmkit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^--set optim.nope: unknown key"):
        trmkit.train(write_recipe(tmp_path), overrides=["optim.nope=1"])


def test_metrics_json_has_one_name_per_metric(run, tmp_path):
    model = trmkit.load(run[0])
    plain = model.evaluate(batch_size=8, out=tmp_path / "plain")
    written = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert written == pytest.approx(plain)
    # the sudoku evaluator's exact_accuracy and count are trmkit's: one name each
    assert "task/exact_accuracy" not in written and "task/count" not in written
    # one trajectory of fixed depth: fixed_* is exact_accuracy / accuracy by definition
    assert "fixed_exact_accuracy" not in written and "fixed_accuracy" not in written
    assert {"exact_accuracy", "accuracy", "valid_solution_rate"} <= set(written)
    wider = model.evaluate(batch_size=8, samples=2, out=tmp_path / "wide")
    assert "fixed_exact_accuracy" in wider  # a different number now: the exact trajectory's
    assert json.loads((tmp_path / "wide" / "metrics.json").read_text()).keys() == wider.keys()


def test_one_name_per_metric_keeps_what_differs():
    from trmkit.evaluation import one_name_per_metric

    metrics = {
        "halt": "fixed",
        "samples": 1,
        "exact_accuracy": 0.5,
        "fixed_exact_accuracy": 0.5,
        "fixed_accuracy": 0.75,
        "task/exact_accuracy": 0.25,  # a plugin's own, different, exact accuracy stays
        "count": 8,
        "task/count": 8,
    }
    assert one_name_per_metric(metrics) == {
        "halt": "fixed",
        "samples": 1,
        "exact_accuracy": 0.5,
        "task/exact_accuracy": 0.25,
        "count": 8,
    }
    adaptive = {**metrics, "halt": "q"}
    assert "fixed_exact_accuracy" in one_name_per_metric(adaptive)
