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
CANVASES = (CANVAS, 7)  # the official canvas and a small one (build option canvas=7)


@st.composite
def grids(draw, max_side: int = CANVAS):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    return draw(arrays(np.int64, (h, w), elements=st.integers(0, 9)))


def _reference_crop(tokens: np.ndarray) -> np.ndarray:
    """The reference evaluator's crop, written as a plain loop (independent of the codec)."""
    side = int(round(len(tokens) ** 0.5))
    grid = tokens.reshape(side, side)
    best, best_shape, width = 0, (0, 0), side
    for r in range(side):
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


def test_canvas_sets_the_sequence_length_and_the_default_is_official():
    assert ArcCodec(11).seq_len == 121 and ArcCodec(11).canvas == 11
    assert ArcCodec().seq_len == 900 and ArcCodec().canvas == CANVAS
    small = ArcCodec(7).encode(np.array([[0, 9], [3, 1], [5, 5]]))
    np.testing.assert_array_equal(
        small.reshape(7, 7)[:4, :3],
        codec.encode(np.array([[0, 9], [3, 1], [5, 5]])).reshape(CANVAS, CANVAS)[:4, :3],
    )
    assert np.count_nonzero(small) == 6 + 2 + 3
    for bad in (0, 31):
        with pytest.raises(ValueError, match="canvas side must be 1..30"):
            ArcCodec(bad)


def test_grid_larger_than_the_canvas_names_the_option():
    with pytest.raises(
        ValueError,
        match=r"grid 8x3 is larger than the 7x7 canvas \(build option "
        r"canvas=7\)",
    ):
        ArcCodec(7).encode(np.zeros((8, 3), np.int64))
    ArcCodec(7).encode(np.zeros((7, 7), np.int64))  # a grid filling the canvas fits (no EOS)


@pytest.mark.parametrize("side", CANVASES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_decode_inverts_encode_for_every_size(side, data):
    grid = data.draw(grids(side))
    small = ArcCodec(side)
    tokens = small.encode(grid)
    assert tokens.shape == (side * side,)
    np.testing.assert_array_equal(small.decode(tokens), grid)
    np.testing.assert_array_equal(codec.decode(tokens), grid)  # any codec reads any canvas
    np.testing.assert_array_equal(_reference_crop(tokens), grid)


@pytest.mark.parametrize("side", CANVASES)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_augment_encode_decode_invert_is_exact(side, data):
    """The evaluator's path on a small canvas: an augmented grid encoded, decoded (the strict
    crop) and mapped back through the inverse transform is the grid again."""
    grid = data.draw(grids(side))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    small = ArcCodec(side)
    transforms = np.stack([_random_transform(rng) for _ in range(4)])
    for t in transforms:
        (crop,) = small.decode_batch(small.encode(aug.apply(t, grid))[None])
        np.testing.assert_array_equal(aug.invert(t, crop), grid)


@pytest.mark.parametrize("side", CANVASES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_crop_matches_reference_loop_on_arbitrary_tokens(side, data):
    rows = arrays(np.uint8, (side * side,), elements=st.integers(0, 11))
    tokens = np.stack(data.draw(st.lists(rows, min_size=1, max_size=4)))
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
    side = int(round(len(row) ** 0.5))
    canvas = row.reshape(side, side)
    r, c = np.argwhere(canvas >= 2).min(axis=0)
    return int(r), int(c)


@pytest.mark.parametrize("side", CANVASES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_train_split_translates_with_one_example_at_origin(side, data):
    small = min(side, 12)
    pairs = data.draw(st.lists(st.tuples(grids(small), grids(small)), min_size=1, max_size=5))
    seed = data.draw(st.integers(0, 2**31))
    examples = [Example(i, o) for i, o in pairs]
    rng = np.random.default_rng(seed)
    coder = ArcCodec(side)
    inputs, labels = coder.encode_puzzle(examples, split="train", rng=rng)
    assert inputs.shape == labels.shape == (len(pairs), side * side)
    offsets = []
    for (gi, go), x, y in zip(pairs, inputs, labels, strict=True):
        r, c = _offset(x)
        assert _offset(y) == (r, c)  # input and output share the offset
        assert r + max(gi.shape[0], go.shape[0]) <= side
        assert c + max(gi.shape[1], go.shape[1]) <= side
        canvas = x.reshape(side, side)
        h, w = gi.shape
        np.testing.assert_array_equal(canvas[r : r + h, c : c + w], gi + 2)
        if r + h < side:
            assert (canvas[r + h, c : c + w] == EOS).all()
        if c + w < side:
            assert (canvas[r : r + h, c + w] == EOS).all()
        if r + h < side and c + w < side:
            assert canvas[r + h, c + w] == 0
        assert np.count_nonzero(canvas) == h * w + (w if r + h < side else 0) + (
            h if c + w < side else 0
        )
        np.testing.assert_array_equal(coder.decode(x), gi)
        np.testing.assert_array_equal(coder.decode(y), go)
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


@pytest.mark.parametrize("side", (CANVAS, 8, 7))
def test_encode_variants_equals_per_variant_encoding(side):
    rng = np.random.default_rng(3)
    codec = ArcCodec(side)
    examples = [
        Example(rng.integers(0, 10, (3, 5)), rng.integers(0, 10, (4, 2))),
        Example(rng.integers(0, 10, (6, 6)), rng.integers(0, 10, (1, 7))),
    ]
    transforms = np.stack([aug.identity(), *[_random_transform(rng) for _ in range(30)]])
    inputs, labels = codec.encode_variants(examples, transforms, aug, split="test", rng=rng)
    assert inputs.shape == (31, 2, side * side)
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
            canvas = tin[v, k].reshape(side, side)
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
