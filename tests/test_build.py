"""The generic builder, exercised with the toy plugin (no built-in task needed)."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from trmkit.data.build import build_dataset
from trmkit.data.store import open_store
from trmkit.errors import PluginError, UnknownNameError


def _arrays(path):
    store = open_store(path)
    out = {}
    for name in store.splits:
        split = store[name]
        inputs, labels = split.load()
        out[name] = {
            "inputs": inputs,
            "labels": labels,
            "ids": split.puzzle_identifiers,
            "pi": split.puzzle_indices,
            "gi": split.group_indices,
            "transforms": split.transforms,
            "names": split.group_names,
        }
    return out


def _same(a, b):
    assert a.keys() == b.keys()
    for split in a:
        for key in a[split]:
            assert np.array_equal(np.asarray(a[split][key]), np.asarray(b[split][key])), key


def test_same_seed_same_bytes_and_fast_path_agrees(tmp_path, toy):
    opts = {"count": "30"}
    build_dataset(toy.make_task(), tmp_path / "a", seed=7, options=opts, progress=False)
    build_dataset(toy.make_task(), tmp_path / "b", seed=7, options=opts, progress=False)
    build_dataset(toy.make_task(fast=True), tmp_path / "c", seed=7, options=opts, progress=False)
    build_dataset(toy.make_task(), tmp_path / "d", seed=8, options=opts, progress=False)
    a = _arrays(tmp_path / "a")
    _same(a, _arrays(tmp_path / "b"))
    _same(a, _arrays(tmp_path / "c"))
    other = _arrays(tmp_path / "d")
    assert not np.array_equal(a["train"]["transforms"], other["train"]["transforms"])


def test_every_row_inverts_to_its_raw_puzzle(tmp_path, toy):
    task = toy.make_task()
    summary = build_dataset(task, tmp_path / "s", num_aug=5, progress=False)
    raw = toy.generate(toy.SourceRequest(None, 0, {}))
    by_name = {p.name: p for p in raw.puzzles}
    store = open_store(tmp_path / "s")
    for name in store.splits:
        split = store[name]
        inputs, labels = split.load()
        for p in range(split.meta.total_puzzles):
            group = split.group_names[split.puzzle_group[p]]
            examples = getattr(by_name[group], name)
            transform = split.transforms[p]
            for e, row in enumerate(range(split.puzzle_indices[p], split.puzzle_indices[p + 1])):
                grid_in = task.augmenter.invert(transform, task.codec.decode(inputs[row]))
                grid_out = task.augmenter.invert(transform, task.codec.decode(labels[row]))
                assert np.array_equal(grid_in, examples[e].input)
                assert np.array_equal(grid_out, examples[e].output)
    assert summary.splits["train"].examples == store["train"].meta.total_examples


def test_per_variant_ids_shared_across_splits(tmp_path, toy_task):
    build_dataset(toy_task, tmp_path / "s", num_aug=4, progress=False)
    store = open_store(tmp_path / "s")
    train, test = store["train"], store["test"]
    assert train.meta.num_puzzle_identifiers == test.meta.num_puzzle_identifiers
    assert train.meta.num_puzzle_identifiers == len(store.identifiers())
    ids = np.concatenate([train.puzzle_identifiers, test.puzzle_identifiers])
    assert train.puzzle_identifiers.min() >= 1
    assert ids.max() == train.meta.num_puzzle_identifiers - 1
    # a test-only puzzle has no examples to train a row from: the blank id, no table entry
    test_only = [g for g, name in enumerate(test.group_names) if name not in train.group_names]
    assert test_only, "the toy source makes test-only puzzles"
    for g in test_only:
        rows = slice(test.group_indices[g], test.group_indices[g + 1])
        assert not test.puzzle_identifiers[rows].any()
        assert test.group_names[g] not in store.identifiers()
    assert len(set(train.puzzle_identifiers.tolist())) == train.meta.total_puzzles
    both = set(train.group_names) & set(test.group_names)
    assert both, "the toy source makes puzzles with both train and test examples"
    for name in both:
        g_train, g_test = train.group_names.index(name), test.group_names.index(name)
        sl_train = slice(train.group_indices[g_train], train.group_indices[g_train + 1])
        sl_test = slice(test.group_indices[g_test], test.group_indices[g_test + 1])
        assert np.array_equal(train.puzzle_identifiers[sl_train], test.puzzle_identifiers[sl_test])
        assert np.array_equal(train.transforms[sl_train], test.transforms[sl_test])
        assert len(train.puzzle_identifiers[sl_train]) == 5  # identity + 4 drawn
    names = store.identifiers()
    assert names[0] == "<blank>"
    assert names[train.puzzle_identifiers[0]] == train.group_names[0]  # identity variant


def test_shared_ids_and_test_only_puzzles_not_augmented(tmp_path, toy):
    task = toy.make_task(puzzle_ids="shared")
    build_dataset(task, tmp_path / "s", num_aug=3, progress=False)
    store = open_store(tmp_path / "s")
    for name in store.splits:
        assert store[name].meta.num_puzzle_identifiers == 1
        assert not store[name].puzzle_identifiers.any()
    test = store["test"]
    sizes = np.diff(test.group_indices)
    train_names = set(store["train"].group_names)
    for g, name in enumerate(test.group_names):
        assert sizes[g] == (4 if name in train_names else 1)
    build_dataset(toy.make_task(augment_test=True), tmp_path / "t", num_aug=3, progress=False)
    assert (np.diff(open_store(tmp_path / "t")["test"].group_indices) == 4).all()


def test_subsample_and_strict(tmp_path, toy_task):
    opts = {"count": "40"}
    raw = [p for p in _raw(toy_task, opts)]
    trainable = [p.name for p in raw if p.train]
    test_only = [p.name for p in raw if not p.train]
    build_dataset(toy_task, tmp_path / "s", subsample=5, options=opts, progress=False, seed=3)
    store = open_store(tmp_path / "s")
    kept = store["train"].group_names
    assert len(kept) == 5 and set(kept) <= set(trainable)
    assert kept == [n for n in trainable if n in kept]  # order kept
    assert set(test_only) <= set(store["test"].group_names)
    build_dataset(toy_task, tmp_path / "t", subsample=5, options=opts, progress=False, seed=3)
    assert open_store(tmp_path / "t")["train"].group_names == kept
    build_dataset(toy_task, tmp_path / "u", strict=True, options=opts, progress=False)
    strict = open_store(tmp_path / "u")
    assert not set(strict["train"].group_names) & set(strict["test"].group_names)
    assert strict.attrs["strict"] is True
    # the held-out puzzles are never trained on: blank ids, so adapt sees them as new
    assert not strict["test"].puzzle_identifiers.any()
    trained = set(strict["train"].group_names)
    names = strict.identifiers()
    assert names[0] == "<blank>" and len(names) == 1 + strict["train"].meta.total_puzzles
    assert all(name.split("|||")[0] in trained for name in names[1:])


def _raw(task, options):
    from trmkit.task import SourceRequest

    return task.sources["gen"].load(SourceRequest(None, 0, options)).puzzles


def test_unknown_option_lists_accepted(tmp_path, toy_task):
    with pytest.raises(UnknownNameError, match="no option 'colour'.*count"):
        build_dataset(toy_task, tmp_path / "s", options={"colour": "red"}, progress=False)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (lambda n: (np.zeros((n, 24), np.uint8),) * 2, "expected uint8"),
        (lambda n: (np.full((n, 25), 9, np.uint8),) * 2, "outside the vocabulary"),
        (lambda n: (np.zeros((n, 25), np.float32),) * 2, "expected uint8"),
    ],
)
def test_misbehaving_codec_is_named(tmp_path, toy, result, message):
    class Bad(toy.ToyCodec):
        def encode_puzzle(self, examples, *, split, rng):
            return result(len(examples))

    task = attrs.evolve(toy.make_task(), codec=Bad())
    with pytest.raises(PluginError, match=f"task 'toy-flip'.*{message}"):
        build_dataset(task, tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_encode_variants_bool_tensor_is_refused(tmp_path, toy):
    """The dtype check sees what encode_variants returned: a torch bool tensor is refused as
    bool, not turned into uint8 0/1 tokens by ``np.reshape`` (torch's __array_wrap__)."""
    import torch

    class Bad(toy.ToyCodec):
        def encode_variants(self, examples, transforms, augmenter, *, split, rng):
            shape = (len(transforms), len(examples), self.seq_len)
            return torch.zeros(shape, dtype=torch.bool), torch.zeros(shape, dtype=torch.bool)

    task = attrs.evolve(toy.make_task(), codec=Bad())
    with pytest.raises(PluginError, match=r"encode_variants \(train\) gave bool\[.*expected uint8"):
        build_dataset(task, tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("drawn", "message"),
    [
        ([np.zeros(2, np.int64)], r"draw\(\) for 'toy000'.*transform_size 5"),
        # not a list at all: these were a TypeError traceback from the builder's len()
        (None, r"draw\(\) for 'toy000' returned NoneType, not a list of transforms"),
        (iter([]), r"draw\(\) for 'toy000' returned list_iterator, not a list of transforms"),
    ],
)
def test_bad_transforms_are_named(tmp_path, toy, drawn, message):
    class Bad(toy.ToyAugmenter):
        def draw(self, puzzle, num_aug, rng):
            return drawn

    task = attrs.evolve(toy.make_task(), augmenter=Bad())
    with pytest.raises(PluginError, match=message):
        build_dataset(task, tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_fast_path_falls_back_when_encode_batch_disagrees(tmp_path, toy):
    class Shifty(toy.FastToyCodec):
        """encode_batch that ignores a split-dependent placement done by encode_puzzle."""

        def encode_puzzle(self, examples, *, split, rng):
            inputs, labels = super().encode_puzzle(examples, split=split, rng=rng)
            if split == "train":
                inputs = np.roll(inputs, 1, axis=1)
            return inputs, labels

    plain = attrs.evolve(toy.make_task(), codec=Shifty())
    build_dataset(plain, tmp_path / "s", progress=False)
    train = open_store(tmp_path / "s")["train"]
    expected = np.roll(
        toy.ToyCodec().encode(
            toy.ToyAugmenter().apply(
                train.transforms[0], np.asarray(_raw(plain, {})[0].train[0].input)
            )
        ),
        1,
    )
    assert np.array_equal(train.load()[0][0], expected)


class _WrongInvert:
    """The maze's dihedral augmenter with an invert that applies again (wrong for the
    rotations by 90 and 270 degrees only, as hand-written inverses often are)."""

    transform_size = 1

    def __init__(self, inner):
        self.inner = inner

    def identity(self):
        return self.inner.identity()

    def draw(self, puzzle, num_aug, rng):
        return self.inner.draw(puzzle, num_aug, rng)

    def apply(self, transform, grid):
        return self.inner.apply(transform, grid)

    def invert(self, transform, grid):
        return self.inner.apply(transform, grid)


class _ShiftedIdentity(_WrongInvert):
    def identity(self):
        return np.array([4])  # a flip, not the identity


@pytest.mark.parametrize(
    ("augmenter", "expected"),
    [
        (_WrongInvert, r"augmenter.invert does not undo apply for transform \[[13]\] on a 11x11 "),
        (_ShiftedIdentity, r"augmenter.apply with identity\(\) \[4\] changes a 11x11 grid"),
    ],
)
def test_build_refuses_transforms_that_do_not_invert(tmp_path, augmenter, expected):
    from click.testing import CliRunner

    from trmkit import plugins
    from trmkit.cli import cli
    from trmkit.hookspecs import hookimpl

    maze = plugins.get_task("maze-11x11")
    broken = attrs.evolve(maze, name="bad-maze", augmenter=augmenter(maze.augmenter))

    class Plugin:
        @staticmethod
        @hookimpl
        def register_tasks(register):
            register(broken)

    plugins.pm.register(Plugin, name="bad-maze-plugin")
    plugins.reset()
    try:
        out = tmp_path / "store"
        args = ["build", "--task", "bad-maze", "--out", str(out), "-o", "count=3"]
        result = CliRunner().invoke(cli, [*args, "-o", "test_count=1"])
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            "Error: plugin 'bad-maze-plugin', task 'bad-maze': "
        ), result.output
        import re

        assert re.search(expected, lines[0]) and "nothing was written" in lines[0]
        assert not out.exists()
    finally:
        plugins.pm.unregister(name="bad-maze-plugin")
        plugins.reset()
    # without registration the task is still named
    with pytest.raises(PluginError, match="^task 'bad-maze': augmenter"):
        build_dataset(broken, tmp_path / "direct", num_aug=7, options={"count": "2"})
    assert not (tmp_path / "direct").exists()
