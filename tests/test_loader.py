"""Loader properties: group sampling, sharding, resume, evaluation padding."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trmkit.data.build import build_dataset
from trmkit.data.loader import EvalLoader, TrainLoader
from trmkit.data.store import open_store
from trmkit.errors import ConfigError

_STORE: dict[str, Path] = {}


@pytest.fixture(scope="module")
def store(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("loader") / "toy"
    build_dataset(toy.make_task(), out, num_aug=3, options={"count": "48"}, progress=False)
    return open_store(out)


def _take(loader, n):
    out = []
    while len(out) < n:
        got = 0
        for batch in loader:
            out.append(batch)
            got += 1
            if len(out) == n:
                break
        assert got or len(out) == n, "an iteration produced no batch"
    return out


def _equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key]), key


def _group_of_id(split):
    return {
        int(i): int(g) for i, g in zip(split.puzzle_identifiers, split.puzzle_group, strict=True)
    }


def test_batch_shapes_dtypes_and_ignore_labels(store):
    split = store["train"]
    batch = next(iter(TrainLoader(split, 16, seed=0)))
    assert set(batch) == {"inputs", "labels", "puzzle_identifiers"}
    assert batch["inputs"].shape == (16, 25) and batch["inputs"].dtype == torch.int32
    assert batch["labels"].dtype == torch.int32 and batch["puzzle_identifiers"].shape == (16,)
    labels, inputs = batch["labels"], batch["inputs"]
    assert (labels == -100).any() and not (labels == 0).any()  # PAD label 0 is ignored
    assert ((inputs == 0) == (labels == -100)).all()  # toy: same canvas for input and output


def test_each_group_once_per_epoch(store):
    split = store["train"]
    groups = split.meta.total_groups
    group_of = _group_of_id(split)
    loader = TrainLoader(split, 1, seed=3, epochs_per_iter=3)
    batches = list(loader)  # batch of 1: each group gives exactly one row per epoch
    assert len(batches) == 3 * groups
    drawn = [group_of[int(b["puzzle_identifiers"][0])] for b in batches]
    for epoch in range(3):
        assert sorted(drawn[epoch * groups : (epoch + 1) * groups]) == list(range(groups))
    assert drawn[:groups] != drawn[groups : 2 * groups]


def test_epoch_stream_takes_whole_puzzles(store):
    split = store["train"]
    loader = TrainLoader(split, 8, seed=1)
    rows, ends = loader._epoch_stream(np.random.default_rng(0))
    starts = np.concatenate([[0], ends[:-1]])
    puzzles = np.searchsorted(split.puzzle_indices, rows, side="right") - 1
    seen_groups = []
    for a, b in zip(starts, ends, strict=True):
        p = puzzles[a:b]
        assert (p == p[0]).all()
        lo, hi = split.puzzle_indices[p[0]], split.puzzle_indices[p[0] + 1]
        assert sorted(rows[a:b]) == list(range(lo, hi))  # all of its examples
        seen_groups.append(int(split.puzzle_group[p[0]]))
    assert sorted(seen_groups) == list(range(split.meta.total_groups))


def test_batches_fill_exactly_and_drop_overflow(store):
    split = store["train"]
    loader = TrainLoader(split, 7, seed=2)
    for batch in loader:
        rows_ids = batch["puzzle_identifiers"]
        assert len(rows_ids) == 7
        # a puzzle's rows are contiguous inside a batch (at most one run per puzzle)
        runs = [int(v) for i, v in enumerate(rows_ids) if i == 0 or v != rows_ids[i - 1]]
        assert len(runs) == len(set(runs))


def test_same_seed_same_batches_other_seed_differs(store):
    split = store["train"]
    a = _take(TrainLoader(split, 16, seed=5, epochs_per_iter=2), 12)
    b = _take(TrainLoader(split, 16, seed=5, epochs_per_iter=2), 12)
    c = _take(TrainLoader(split, 16, seed=6, epochs_per_iter=2), 12)
    _equal(a, b)
    assert not all(torch.equal(x["inputs"], y["inputs"]) for x, y in zip(a, c, strict=True))


def test_rank_shards_are_disjoint_slices_covering_the_global_batch(store):
    split = store["train"]
    whole = _take(TrainLoader(split, 16, seed=9), 6)
    parts = [_take(TrainLoader(split, 16, seed=9, rank=r, world_size=4), 6) for r in range(4)]
    for step, batch in enumerate(whole):
        for key in batch:
            joined = torch.cat([parts[r][step][key] for r in range(4)])
            assert torch.equal(joined, batch[key])
    with pytest.raises(ConfigError, match="not divisible"):
        TrainLoader(split, 10, seed=0, world_size=4)
    with pytest.raises(ConfigError, match="rank"):
        TrainLoader(split, 8, seed=0, rank=4, world_size=4)


def test_disk_selection_matches_ram(store):
    split_dir = store.path
    ram = _take(TrainLoader(open_store(split_dir)["train"], 16, seed=4, in_memory=True), 5)
    disk_split = open_store(split_dir)["train"]
    disk = _take(TrainLoader(disk_split, 16, seed=4, in_memory=False), 5)
    assert not disk_split.in_memory
    _equal(ram, disk)


@settings(max_examples=15, deadline=None)
@given(
    batch=st.sampled_from([1, 5, 16, 64]),
    epochs=st.integers(1, 3),
    stop=st.integers(0, 40),
    seed=st.integers(0, 1000),
)
def test_resume_yields_exactly_the_same_batches(store, batch, epochs, stop, seed):
    split = store["train"]
    reference = TrainLoader(split, batch, seed=seed, epochs_per_iter=epochs)
    expected = _take(reference, stop + 12)
    original = TrainLoader(split, batch, seed=seed, epochs_per_iter=epochs)
    _take(original, stop) if stop else None
    state = json.loads(json.dumps(original.state_dict()))
    restored = TrainLoader(split, batch, seed=seed, epochs_per_iter=epochs)
    restored.load_state_dict(state)
    _equal(_take(restored, 12), expected[stop:])
    # the continuing original and the restored copy agree on iteration boundaries too
    assert restored.iteration >= state["iteration"]


def test_resume_refuses_other_settings(store):
    split = store["train"]
    state = TrainLoader(split, 8, seed=1).state_dict()
    with pytest.raises(ConfigError, match="seed"):
        TrainLoader(split, 8, seed=2).load_state_dict(state)


def test_steps_per_epoch_is_the_reference_budget(store):
    split = store["train"]
    meta = split.meta
    loader = TrainLoader(split, 8, seed=0)
    assert loader.steps_per_epoch == pytest.approx(
        meta.total_groups * meta.mean_puzzle_examples / 8
    )


@pytest.mark.parametrize(("global_batch", "world"), [(8, 1), (8, 2), (6, 3), (1000, 4)])
def test_eval_loader_order_and_padding(store, global_batch, world):
    split = store["test"]
    n = split.meta.total_examples
    inputs, labels = split.load()
    loaders = [EvalLoader(split, global_batch, rank=r, world_size=world) for r in range(world)]
    assert len(loaders[0]) == -(-n // global_batch)
    seen = []
    for steps in zip(*loaders, strict=True):
        for batch in steps:
            local = global_batch // world
            assert batch["inputs"].shape == (local, 25)
            real = batch["example_index"] >= 0
            idx = batch["example_index"][real].numpy()
            seen.extend(idx.tolist())
            assert np.array_equal(batch["inputs"][real].numpy(), inputs[idx])
            assert (batch["inputs"][~real] == split.meta.pad_id).all()
            assert (batch["labels"][~real] == -100).all()
            assert (batch["puzzle_index"][~real] == -1).all()
            assert (batch["puzzle_identifiers"][~real] == split.meta.blank_identifier_id).all()
            pidx = batch["puzzle_index"][real].numpy()
            assert (split.puzzle_indices[pidx] <= idx).all()
            assert (idx < split.puzzle_indices[pidx + 1]).all()
            assert np.array_equal(
                batch["puzzle_identifiers"][real].numpy(), split.puzzle_identifiers[pidx]
            )
    assert seen == list(range(n))


def test_too_small_split_is_refused(toy):
    with tempfile.TemporaryDirectory() as tmp:
        build_dataset(
            toy.make_task(), Path(tmp) / "s", num_aug=0, options={"count": "2"}, progress=False
        )
        with pytest.raises(ConfigError, match="too few examples"):
            TrainLoader(open_store(Path(tmp) / "s")["train"], 768, seed=0)
