"""Every built-in task passes the conformance kit, and the kit catches broken tasks."""

from __future__ import annotations

import itertools
import re

import attrs
import numpy as np
import pytest

from trmkit import plugins
from trmkit.testing import (
    CHECKS,
    ConformanceError,
    GridSpec,
    Subject,
    TaskConformance,
    check_task,
    sample_puzzles,
)

BUILTIN = ["sudoku-4x4", "sudoku-6x6", "sudoku-extreme", "maze-11x11", "maze-hard", "arc-agi-1"]


class TestSudoku4x4(TaskConformance):
    task = plugins.get_task("sudoku-4x4")


class TestSudokuExtreme(TaskConformance):
    task = plugins.get_task("sudoku-extreme")


class TestMaze11(TaskConformance):
    task = plugins.get_task("maze-11x11")


class TestMazeHard(TaskConformance):
    task = plugins.get_task("maze-hard")


class TestArc1(TaskConformance):
    task = plugins.get_task("arc-agi-1")
    max_examples = 10


@pytest.mark.parametrize("name", ["sudoku-6x6", "sudoku-easy", "maze-15x15", "arc-agi-2"])
def test_other_builtin_tasks_pass_check_task(name):
    check_task(plugins.get_task(name), max_examples=5)


# --------------------------------------------------------------------------- broken tasks


@pytest.fixture(scope="module")
def maze():
    task = plugins.get_task("maze-11x11")
    return task, sample_puzzles(task, count=4)


def _broken(task, field, **methods):
    """``task`` with its codec/augmenter/evaluator wrapped and some methods replaced."""
    inner = getattr(task, field)

    class Wrapped:
        def __getattr__(self, name):
            return getattr(inner, name)

    wrapped = Wrapped()
    for name, fn in methods.items():
        setattr(wrapped, name, fn)
    return attrs.evolve(task, **{field: wrapped})


def test_wrong_invert_is_caught(maze):
    task, puzzles = maze
    aug = task.augmenter
    bad = _broken(task, "augmenter", invert=lambda t, g: aug.apply(t, g))
    with pytest.raises(ConformanceError, match=r"'maze-11x11', invert: .*invert must undo"):
        check_task(bad, puzzles, checks=["invert"])


def test_wrong_identity_is_caught(maze):
    task, puzzles = maze
    bad = _broken(task, "augmenter", identity=lambda: np.array([1]))
    with pytest.raises(ConformanceError, match="identity: apply"):
        check_task(bad, puzzles, checks=["identity"])


def test_identity_in_draw_and_duplicates_are_caught(maze):
    task, puzzles = maze
    with_identity = _broken(task, "augmenter", draw=lambda p, k, rng: [np.array([0])])
    with pytest.raises(ConformanceError, match="draw returned the identity"):
        check_task(with_identity, puzzles, checks=["draw"])
    twice = _broken(task, "augmenter", draw=lambda p, k, rng: [np.array([1])] * k)
    with pytest.raises(ConformanceError, match="twice"):
        check_task(twice, puzzles, checks=["draw"])


def test_unseeded_draw_is_caught(maze):
    task, puzzles = maze
    calls = itertools.count()  # state outside the rng: two calls never agree
    unseeded = _broken(task, "augmenter", draw=lambda p, k, rng: [np.array([1 + next(calls) % 7])])
    with pytest.raises(ConformanceError, match="same seed"):
        check_task(unseeded, puzzles, checks=["draw"])


def test_batch_disagreeing_with_scalar_is_caught(maze):
    task, puzzles = maze
    aug = task.augmenter
    bad = _broken(task, "augmenter", invert_batch=lambda ts, gs: np.asarray(gs)[:, ::-1])
    bad = attrs.evolve(
        bad,
        augmenter=type(
            "A",
            (),
            {
                "transform_size": 1,
                "identity": staticmethod(aug.identity),
                "draw": staticmethod(aug.draw),
                "apply": staticmethod(aug.apply),
                "invert": staticmethod(aug.invert),
                "apply_batch": staticmethod(aug.apply_batch),
                "invert_batch": staticmethod(lambda ts, gs: np.asarray(gs)[:, ::-1]),
            },
        )(),
    )
    with pytest.raises(ConformanceError, match="invert_batch"):
        check_task(bad, puzzles, checks=["augmenter_batch"])


def test_codec_that_does_not_round_trip_is_caught(maze):
    task, puzzles = maze
    codec = task.codec
    bad = _broken(task, "codec", decode=lambda tokens: codec.decode(tokens).T)
    with pytest.raises(ConformanceError, match=r"codec: decode\(encode\(g\)\) != g"):
        check_task(bad, puzzles, checks=["codec"])


def test_evaluator_that_ignores_predictions_is_caught(maze):
    task, puzzles = maze

    class Run:
        def update(self, batch):
            pass

        def finish(self):
            return {"exact_accuracy": 1.0}

    class Lenient:
        def start(self, context):
            return Run()

    with pytest.raises(ConformanceError, match="one wrong token in every row still score"):
        check_task(attrs.evolve(task, evaluator=Lenient()), puzzles, checks=["evaluator"])
    with pytest.raises(ConformanceError, match="no 'solved' metric"):
        check_task(task, puzzles, checks=["evaluator"], headline="solved")


def test_parse_render_mismatch_is_caught(maze):
    task, puzzles = maze
    bad = attrs.evolve(task, format_puzzle=lambda p: "#")
    with pytest.raises(
        ConformanceError, match="parse: parse_puzzles cannot read what format_puzzle"
    ):
        check_task(bad, puzzles, checks=["parse"])


def test_grid_spec_inferred_from_puzzles(maze):
    _task, puzzles = maze
    spec = GridSpec.infer(puzzles)
    assert spec.rows == spec.cols == (11, 11) and spec.square
    assert set(spec.values) <= set(range(5))
    assert list(CHECKS) == [
        name[len("test_") :] for name in dir(TaskConformance) if name.startswith("test_")
    ] or set(CHECKS) == {
        name[len("test_") :] for name in dir(TaskConformance) if name.startswith("test_")
    }
    assert Subject.of(_task, puzzles).spec == spec


def _checker(task, check_answer):
    """``task`` whose evaluator keeps its metrics but answers with ``check_answer``."""
    inner = task.evaluator

    class Checker:
        def start(self, context):
            return inner.start(context)

    Checker.check_answer = staticmethod(check_answer)
    return attrs.evolve(task, evaluator=Checker())


@pytest.mark.parametrize(
    ("check_answer", "expected"),
    [
        (lambda puzzle, answer: True, "check_answer accepts puzzle .* label with cell"),
        (lambda puzzle, answer: False, r"check_answer\(input, label\) is False for puzzle"),
        (lambda puzzle, answer: 1, "check_answer returned 1, not True or False"),
        (lambda puzzle, answer: answer[99, 99], "check_answer raised IndexError"),
    ],
)
def test_wrong_answer_checker_is_caught(maze, check_answer, expected):
    task, puzzles = maze
    with pytest.raises(ConformanceError, match=f"'maze-11x11', answer_checker: {expected}"):
        check_task(_checker(task, check_answer), puzzles, checks=["answer_checker"])


@pytest.mark.parametrize("name", ["sudoku-4x4", "maze-11x11"])
def test_builtin_answer_checkers_pass(name):
    task = plugins.get_task(name)
    check_task(task, checks=["answer_checker"], max_examples=10)


def test_default_recipe_that_does_not_load_is_caught(maze):
    task, puzzles = maze
    bad = attrs.evolve(task, defaults=attrs.evolve(task.defaults, recipe="no-such-recipe"))
    with pytest.raises(ConformanceError, match="recipe: defaults.recipe 'no-such-recipe' does"):
        check_task(bad, puzzles, checks=["recipe"])


# --------------------------------------------------------------------------- plugin code raising


def _boom(*args, **kwargs):
    raise ValueError("plugin bug")


@pytest.mark.parametrize(
    ("field", "method", "check"),
    [
        ("codec", "decode", "codec"),
        ("codec", "encode_puzzle", "evaluator"),
        ("augmenter", "apply", "identity"),
        ("augmenter", "draw", "draw"),
    ],
)
def test_plugin_code_that_raises_is_named_with_its_property(maze, field, method, check):
    """An exception from the task's own code is a ConformanceError naming the task, the
    property and where it raised (it was the bare exception, naming no property)."""
    task, puzzles = maze
    bad = _broken(task, field, **{method: _boom})
    expected = rf"task 'maze-11x11', {check}: _boom raised ValueError \(.*test_conformance.py:\d+\)"
    with pytest.raises(ConformanceError, match=expected + ": plugin bug; fix the task's code"):
        check_task(bad, puzzles, checks=[check])
    suite = type("TestBad", (TaskConformance,), {"task": bad, "puzzles": puzzles})
    with pytest.raises(ConformanceError, match=expected):  # the pytest form says the same
        getattr(suite(), f"test_{check}")()


@pytest.mark.parametrize("drawn", [None, 3])
def test_draw_that_returns_no_list_is_named(maze, drawn):
    task, puzzles = maze
    bad = _broken(task, "augmenter", draw=lambda p, k, rng: drawn)
    name = type(drawn).__name__
    with pytest.raises(
        ConformanceError, match=rf"'maze-11x11'.*: draw returned {name}, not a list"
    ):
        check_task(bad, puzzles, checks=["invert"])


@pytest.mark.parametrize(
    ("load", "expected"),
    [
        (lambda request: [], "its default source 'gen' returned list, not trmkit.task.RawData"),
        (lambda request: None, "its default source 'gen' returned NoneType, not trmkit.task"),
        (_boom, "its default source 'gen' raised ValueError: plugin bug; fix the source"),
    ],
)
def test_default_source_that_misbehaves_is_named(maze, load, expected):
    from trmkit.task import Source

    task, _ = maze
    bad = attrs.evolve(
        task,
        sources={"gen": Source("gen", "broken", load, kind="generator")},
        defaults=attrs.evolve(task.defaults, source="gen"),
        path_source=None,
    )
    with pytest.raises(ConformanceError, match=re.escape(f"task 'maze-11x11': {expected}")):
        sample_puzzles(bad)


def test_numpy_scalar_metrics_are_numbers(maze):
    """trmkit eval takes float(value) of every metric, so numpy scalars are numbers; the kit
    called np.float32(1.0) 'not a finite number'."""
    task, puzzles = maze
    inner = task.evaluator

    class NumpyRun:
        def __init__(self, run):
            self.run = run

        def update(self, batch):
            self.run.update(batch)

        def finish(self):
            return {k: np.float32(v) for k, v in self.run.finish().items()} | {"n": np.int64(3)}

    class NumpyEvaluator:
        def start(self, context):
            return NumpyRun(inner.start(context))

    check_task(attrs.evolve(task, evaluator=NumpyEvaluator()), puzzles, checks=["evaluator"])
