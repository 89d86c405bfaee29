"""ARC codec: exact tokens, EOS placement, translation rules, crop = reference crop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trmkit.task import Example
from trmkit_arc.augment import ArcAugmenter
from trmkit_arc.codec import CANVAS, EOS, ArcCodec, crop_shapes

codec = ArcCodec()
aug = ArcAugmenter()


@st.composite
def grids(draw, max_side: int = CANVAS):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    return draw(arrays(np.int64, (h, w), elements=st.integers(0, 9)))


def _reference_crop(tokens: np.ndarray) -> np.ndarray:
    """The reference evaluator's crop, written as a plain loop (independent of the codec)."""
    grid = tokens.reshape(CANVAS, CANVAS)
    best, best_shape, width = 0, (0, 0), CANVAS
    for r in range(CANVAS):
        run = 0
        while run < width and 2 <= grid[r, run] <= 11:
            run += 1
        width = run
        if (r + 1) * width > best:
            best, best_shape = (r + 1) * width, (r + 1, width)
    return grid[: best_shape[0], : best_shape[1]].astype(np.int64) - 2


def test_constants_match_reference():
    assert (codec.seq_len, codec.vocab_size, codec.pad_id, codec.ignore_label_id) == (
        900,
        12,
        0,
        0,
    )
    assert codec.batch_encodes_puzzles is False


def test_encode_small_grid_exact_tokens():
    grid = np.array([[0, 9], [3, 1], [5, 5]])
    canvas = codec.encode(grid).reshape(CANVAS, CANVAS)
    expected = np.zeros((CANVAS, CANVAS), np.uint8)
    expected[:3, :2] = grid + 2
    expected[3, :2] = EOS  # row below over the grid's columns
    expected[:3, 2] = EOS  # column right over the grid's rows
    assert canvas.dtype == np.uint8
    np.testing.assert_array_equal(canvas, expected)
    assert canvas[3, 2] == 0  # the corner stays PAD


def test_full_width_and_height_grids_have_no_eos_outside():
    tall = np.ones((30, 4), np.int64)
    canvas = codec.encode(tall).reshape(CANVAS, CANVAS)
    assert (canvas[:, 4] == EOS).all() and (canvas[:, :4] == 3).all()
    assert canvas.sum() == 30 * 4 * 3 + 30  # no EOS row (it would be row 30)
    full = codec.encode(np.zeros((30, 30), np.int64))
    assert (full == 2).all()


@settings(max_examples=150, deadline=None)
@given(grids())
def test_decode_inverts_encode_for_every_size(grid):
    tokens = codec.encode(grid)
    np.testing.assert_array_equal(codec.decode(tokens), grid)
    np.testing.assert_array_equal(_reference_crop(tokens), grid)


@settings(max_examples=60, deadline=None)
@given(st.lists(arrays(np.uint8, (900,), elements=st.integers(0, 11)), min_size=1, max_size=4))
def test_crop_matches_reference_loop_on_arbitrary_tokens(batch):
    tokens = np.stack(batch)
    for row, grid in zip(tokens, codec.decode_batch(tokens), strict=True):
        np.testing.assert_array_equal(grid, _reference_crop(row))
    hs, ws = crop_shapes(tokens)
    assert all(h * w == _reference_crop(t).size for h, w, t in zip(hs, ws, tokens, strict=True))


def test_strict_crop_of_garbage_prefix_is_empty_decode_finds_the_corner():
    tokens = np.zeros(900, np.uint8)
    tokens[1] = 5
    assert codec.decode_batch(tokens[None])[0].shape == (0, 0)  # the evaluator's crop
    np.testing.assert_array_equal(codec.decode(tokens), [[3]])
    assert codec.decode(np.zeros(900, np.uint8)).shape == (0, 0)


def _offset(row: np.ndarray) -> tuple[int, int]:
    canvas = row.reshape(CANVAS, CANVAS)
    r, c = np.argwhere(canvas >= 2).min(axis=0)
    return int(r), int(c)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(grids(12), grids(12)), min_size=1, max_size=5), st.integers(0, 2**31))
def test_train_split_translates_with_one_example_at_origin(pairs, seed):
    examples = [Example(i, o) for i, o in pairs]
    rng = np.random.default_rng(seed)
    inputs, labels = codec.encode_puzzle(examples, split="train", rng=rng)
    assert inputs.shape == labels.shape == (len(pairs), 900)
    offsets = []
    for (gi, go), x, y in zip(pairs, inputs, labels, strict=True):
        r, c = _offset(x)
        assert _offset(y) == (r, c)  # input and output share the offset
        assert r + max(gi.shape[0], go.shape[0]) <= 30 and c + max(gi.shape[1], go.shape[1]) <= 30
        canvas = x.reshape(CANVAS, CANVAS)
        h, w = gi.shape
        np.testing.assert_array_equal(canvas[r : r + h, c : c + w], gi + 2)
        if r + h < CANVAS:
            assert (canvas[r + h, c : c + w] == EOS).all()
        if c + w < CANVAS:
            assert (canvas[r : r + h, c + w] == EOS).all()
        if r + h < CANVAS and c + w < CANVAS:
            assert canvas[r + h, c + w] == 0
        assert np.count_nonzero(canvas) == h * w + (w if r + h < 30 else 0) + (
            h if c + w < 30 else 0
        )
        np.testing.assert_array_equal(codec.decode(x), gi)
        np.testing.assert_array_equal(codec.decode(y), go)
        offsets.append((r, c))
    assert (0, 0) in offsets


def test_train_offsets_vary_and_test_split_never_translates():
    examples = [Example(np.ones((3, 3), np.int64), np.ones((2, 2), np.int64))] * 4
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        inputs, _ = codec.encode_puzzle(examples, split="train", rng=rng)
        seen.update(_offset(x) for x in inputs)
        test_in, test_lab = codec.encode_puzzle(examples, split="test", rng=rng)
        assert all(_offset(x) == (0, 0) for x in test_in)
        assert all(_offset(y) == (0, 0) for y in test_lab)
    assert len(seen) > 20


def test_encode_variants_equals_per_variant_encoding():
    rng = np.random.default_rng(3)
    examples = [
        Example(rng.integers(0, 10, (3, 5)), rng.integers(0, 10, (4, 2))),
        Example(rng.integers(0, 10, (6, 6)), rng.integers(0, 10, (1, 7))),
    ]
    transforms = np.stack([aug.identity(), *[_random_transform(rng) for _ in range(30)]])
    inputs, labels = codec.encode_variants(examples, transforms, aug, split="test", rng=rng)
    assert inputs.shape == (31, 2, 900)
    for v, t in enumerate(transforms):
        moved = [Example(aug.apply(t, e.input), aug.apply(t, e.output)) for e in examples]
        x, y = codec.encode_puzzle(moved, split="test", rng=rng)
        np.testing.assert_array_equal(inputs[v], x)
        np.testing.assert_array_equal(labels[v], y)
    tin, tlab = codec.encode_variants(examples, transforms, aug, split="train", rng=rng)
    for v, t in enumerate(transforms):
        origin = 0
        for k, e in enumerate(examples):
            r, c = _offset(tin[v, k])
            assert _offset(tlab[v, k]) == (r, c)
            origin += (r, c) == (0, 0)
            grid = aug.apply(t, e.input)
            canvas = tin[v, k].reshape(30, 30)
            np.testing.assert_array_equal(
                canvas[r : r + grid.shape[0], c : c + grid.shape[1]], grid + 2
            )
        assert origin >= 1


def _random_transform(rng):
    return np.concatenate([[rng.integers(0, 8)], [0], rng.permutation(np.arange(1, 10))])


def test_bad_grids_refused():
    for bad in (np.zeros((31, 2), np.int64), np.zeros((0, 3), np.int64), np.full((2, 2), 10)):
        with pytest.raises(ValueError):
            codec.encode(bad)
