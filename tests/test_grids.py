"""trmkit.grids: the public helpers a grid-task plugin is built from."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from trmkit.errors import SourceError
from trmkit.grids import (
    AccuracyEvaluator,
    DihedralAugmenter,
    OffsetCodec,
    generator_source,
)
from trmkit.task import BuildDefaults, Example, SourceRequest, Task
from trmkit.testing import check_task


def _life_step(grid: np.ndarray) -> np.ndarray:
    """One Game-of-Life step on a torus (dihedral-equivariant)."""
    neighbours = sum(
        np.roll(np.roll(grid, dr, 0), dc, 1) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc
    )
    return ((neighbours == 3) | ((grid == 1) & (neighbours == 2))).astype(np.int64)


def _make(rng: np.random.Generator, options) -> Example:
    side = options["side"]
    grid = (rng.random((side, side)) < 0.35).astype(np.int64)
    return Example(grid, _life_step(grid))


def _task(side: int = 6) -> Task:
    return Task(
        name="life-step",
        description="one Game-of-Life step",
        codec=OffsetCodec(side, side, 2),
        augmenter=DihedralAugmenter(),
        evaluator=AccuracyEvaluator(),
        sources={
            "generate": generator_source(
                _make, count=40, test_count=8, options={"side": (side, "rows and columns")}
            )
        },
        defaults=BuildDefaults(source="generate", num_aug=3),
    )


def test_a_task_built_from_the_helpers_passes_the_conformance_kit():
    check_task(_task(), max_examples=10)


def test_generator_source_is_seeded_disjoint_and_hashed():
    source = _task().sources["generate"]
    assert source.kind == "generator"
    assert {"count", "test_count", "side"} <= set(source.options)
    first = source.load(SourceRequest(None, 3, {"count": "12", "test_count": "4"}))
    again = source.load(SourceRequest(None, 3, {"count": "12", "test_count": "4"}))
    other = source.load(SourceRequest(None, 4, {"count": "12", "test_count": "4"}))
    assert [p.name for p in first.puzzles][:2] == ["train-000000", "train-000001"]
    assert sum(bool(p.train) for p in first.puzzles) == 12
    assert sum(bool(p.test) for p in first.puzzles) == 4
    grids = [e.input.tobytes() for p in first.puzzles for e in (*p.train, *p.test)]
    assert len(set(grids)) == len(grids)  # the test split repeats no training puzzle
    assert first.files == again.files != other.files
    assert all(
        np.array_equal(
            a.train[0].input if a.train else a.test[0].input,
            b.train[0].input if b.train else b.test[0].input,
        )
        for a, b in zip(first.puzzles, again.puzzles, strict=True)
    )


def test_generator_source_refuses_a_generator_that_repeats_itself():
    def same(rng, options):
        return Example(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64))

    source = generator_source(same, count=3, test_count=0)
    with pytest.raises(SourceError, match="made only 1 distinct train puzzles"):
        source.load(SourceRequest(None, 0, {}))
    with pytest.raises(SourceError, match="expected an integer"):
        source.load(SourceRequest(None, 0, {"count": "many"}))


def test_generator_source_names_a_maker_that_returns_the_wrong_type():
    source = generator_source(lambda rng, options: np.zeros((2, 2)), count=1, test_count=0)
    with pytest.raises(TypeError, match="must return a trmkit.task.Example"):
        source.load(SourceRequest(None, 0, {}))


def test_dihedral_augmenter_batch_agrees_with_scalar():
    aug = DihedralAugmenter()
    rng = np.random.default_rng(0)
    grids = rng.integers(0, 5, size=(8, 4, 4))
    transforms = np.arange(8).reshape(8, 1)
    batched = aug.apply_batch(transforms, grids)
    for t, g, b in zip(transforms, grids, batched, strict=True):
        assert np.array_equal(aug.apply(t, g), b)
        assert np.array_equal(aug.invert(t, b), g)
    assert np.array_equal(aug.invert_batch(transforms, batched), grids)


def test_importing_the_helpers_loads_no_training_code():
    code = (
        "import sys, trmkit.grids\n"
        "heavy = [m for m in sys.modules if m.startswith(('torch', 'trmkit.training', "
        "'trmkit.commands', 'trmkit.models', 'accelerate'))]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
