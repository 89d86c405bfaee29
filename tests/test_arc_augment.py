"""ARC augmenter: exact inverses, black fixed, reference dihedral ids, deduplicated draws."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trmkit.task import Example, RawPuzzle
from trmkit_arc.augment import DIHEDRAL_INVERSE, ArcAugmenter

aug = ArcAugmenter()


@st.composite
def grids(draw, max_side: int = 30):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    return draw(arrays(np.int64, (h, w), elements=st.integers(0, 9)))


@st.composite
def transforms(draw):
    tid = draw(st.integers(0, 7))
    perm = draw(st.permutations(list(range(1, 10))))
    return np.array([tid, 0, *perm], dtype=np.int64)


def test_identity_and_reference_ids():
    g = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(aug.apply(aug.identity(), g), g)
    cmap = np.arange(10)
    expected = [
        g,
        np.rot90(g),
        np.rot90(g, 2),
        np.rot90(g, 3),
        np.fliplr(g),
        np.flipud(g),
        g.T,
        np.fliplr(np.rot90(g)),
    ]
    for tid, want in enumerate(expected):
        np.testing.assert_array_equal(aug.apply(np.array([tid, *cmap]), g), want)
    assert DIHEDRAL_INVERSE == (0, 3, 2, 1, 4, 5, 6, 7)


@settings(max_examples=200, deadline=None)
@given(grids(), transforms())
def test_invert_undoes_apply_and_black_stays_black(grid, t):
    out = aug.apply(t, grid)
    np.testing.assert_array_equal(aug.invert(t, out), grid)
    assert ((out == 0).sum()) == ((grid == 0).sum())
    # colour map: cell values are relabelled by t[1:], black fixed
    np.testing.assert_array_equal(np.sort(out.ravel()), np.sort(t[1:][grid].ravel()))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.lists(transforms(), min_size=1, max_size=6), st.data())
def test_batch_forms_match_single_forms(side, ts, data):
    stack = np.stack(
        [data.draw(arrays(np.int64, (side, side), elements=st.integers(0, 9))) for _ in ts]
    )
    t = np.stack(ts)
    out = aug.apply_batch(t, stack)
    for i in range(len(ts)):
        np.testing.assert_array_equal(out[i], aug.apply(t[i], stack[i]))
    np.testing.assert_array_equal(aug.invert_batch(t, out), stack)


def test_variant_grids_groups_by_id():
    rng = np.random.default_rng(0)
    g = rng.integers(0, 10, (3, 7))
    t = np.stack(
        [aug.identity()]
        + [np.array([rng.integers(0, 8), 0, *rng.permutation(np.arange(1, 10))]) for _ in range(40)]
    )
    covered = []
    for rows, out in aug.variant_grids(t, g):
        for r, grid in zip(rows, out, strict=True):
            np.testing.assert_array_equal(grid, aug.apply(t[r], g))
        covered += rows.tolist()
    assert sorted(covered) == list(range(41))


def test_variant_name_is_reference_format():
    t = np.array([3, 0, 2, 1, 4, 5, 6, 7, 8, 9, 3])
    assert aug.variant_name("abc", t) == "abc|||t3|||0214567893"
    assert aug.variant_name("abc", aug.identity()) == "abc"


def _puzzle(*pairs) -> RawPuzzle:
    return RawPuzzle("p", train=[Example(i, o) for i, o in pairs[:-1]], test=[Example(*pairs[-1])])


def _content(puzzle: RawPuzzle, t) -> tuple:
    keys = [
        (
            aug.apply(t, e.input).tobytes(),
            aug.apply(t, e.input).shape,
            aug.apply(t, e.output).tobytes(),
            aug.apply(t, e.output).shape,
        )
        for e in (*puzzle.train, *puzzle.test)
    ]
    return tuple(sorted(keys))


def test_single_colour_task_caps_at_72_distinct_variants():
    rng = np.random.default_rng(0)
    g = (rng.random((5, 4)) < 0.5).astype(np.int64) * 3
    puzzle = _puzzle((g, g[::-1]), (g.T, g), (g, g))
    drawn = aug.draw(puzzle, 1000, np.random.default_rng(1))
    assert 1 <= len(drawn) <= 72 - 1  # 8 x 9 maps minus the original
    contents = {_content(puzzle, t) for t in drawn} | {_content(puzzle, aug.identity())}
    assert len(contents) == len(drawn) + 1  # all distinct, none equal to the original
    assert all(t[1] == 0 for t in drawn)


def test_symmetric_task_dedups_dihedral_duplicates():
    g = np.zeros((3, 3), np.int64)
    g[1, 1] = 5  # invariant under all 8 dihedral moves: only colour matters
    puzzle = _puzzle((g, g), (g, g))
    drawn = aug.draw(puzzle, 100, np.random.default_rng(0))
    assert len(drawn) == 8  # 9 colours for the one cell, minus the original
    assert len({_content(puzzle, t) for t in drawn}) == 8


def test_rich_task_reaches_num_aug_and_is_deterministic():
    rng = np.random.default_rng(5)
    pairs = [(rng.integers(0, 10, (6, 5)), rng.integers(0, 10, (5, 6))) for _ in range(3)]
    puzzle = _puzzle(*pairs)
    a = aug.draw(puzzle, 300, np.random.default_rng(7))
    b = aug.draw(puzzle, 300, np.random.default_rng(7))
    assert len(a) == 300
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert len({_content(puzzle, t) for t in a}) == 300
    for t in a:
        assert sorted(t[1:].tolist()) == list(range(10)) and t[1] == 0 and 0 <= t[0] < 8


def test_pair_order_does_not_matter_for_dedup():
    # two pairs that are each other's 180-degree rotation: t2 swaps them -> same content
    a = np.array([[1, 2], [0, 0]])
    b = np.rot90(a, 2)
    puzzle = _puzzle((a, a), (b, b))
    drawn = aug.draw(puzzle, 500, np.random.default_rng(0))
    identity_colours = [t for t in drawn if np.array_equal(t[1:], np.arange(10))]
    assert all(t[0] != 2 for t in identity_colours)
    contents = {_content(puzzle, t) for t in drawn} | {_content(puzzle, aug.identity())}
    assert len(contents) == len(drawn) + 1
