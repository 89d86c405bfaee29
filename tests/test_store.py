"""The Zarr store: round trips, atomic writes, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trmkit.data import store as store_mod
from trmkit.data.build import build_dataset
from trmkit.data.store import FORMAT_VERSION, StoreWriter, open_store
from trmkit.errors import StoreError

COMMON = {
    "vocab_size": 7,
    "pad_id": 0,
    "ignore_label_id": 0,
    "blank_identifier_id": 0,
    "num_puzzle_identifiers": 5,
}


@st.composite
def split_contents(draw):
    """Random groups of puzzles of examples, cut into random append blocks."""
    seq_len = draw(st.integers(1, 12))
    k = draw(st.integers(1, 3))
    groups = draw(st.lists(st.lists(st.integers(0, 4), min_size=1, max_size=4), max_size=8))
    names = draw(st.lists(st.text(max_size=6), min_size=len(groups), max_size=len(groups)))
    rows = sum(sum(g) for g in groups)
    seed = draw(st.integers(0, 2**16))
    cuts = sorted(draw(st.sets(st.integers(0, len(groups)), max_size=3)) | {0, len(groups)})
    return seq_len, k, groups, names, rows, seed, cuts


@settings(max_examples=10, deadline=None)
@given(split_contents())
def test_round_trip_is_exact(contents):
    seq_len, k, groups, names, rows, seed, cuts = contents
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, 7, size=(rows, seq_len), dtype=np.uint8)
    labels = rng.integers(0, 7, size=(rows, seq_len), dtype=np.uint8)
    sizes = np.array([s for g in groups for s in g], dtype=np.int64)
    ids = rng.integers(0, 5, size=len(sizes))
    transforms = rng.integers(-3, 9, size=(len(sizes), k))
    group_sizes = np.array([len(g) for g in groups], dtype=np.int64)
    puzzle_at = np.concatenate([[0], np.cumsum(group_sizes)])
    row_at = np.concatenate([[0], np.cumsum(sizes)])
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.object(store_mod, "CHUNK_BYTES", 16),
        mock.patch.object(store_mod, "SHARD_CHUNKS", 2),
    ):
        out = Path(tmp) / "store"
        with StoreWriter(out) as writer:
            split = writer.split("train", seq_len=seq_len, transform_size=k)
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                p0, p1 = puzzle_at[a], puzzle_at[b]
                r0, r1 = row_at[p0], row_at[p1]
                split.append(
                    inputs[r0:r1],
                    labels[r0:r1],
                    puzzle_sizes=sizes[p0:p1],
                    puzzle_ids=ids[p0:p1],
                    transforms=transforms[p0:p1],
                    group_sizes=group_sizes[a:b],
                    group_names=names[a:b],
                )
            writer.commit({"task": "t", "task_version": "1"}, COMMON, ["<blank>", "é", "x"])
        store = open_store(out, "t")
        reader = store["train"]
        assert np.array_equal(reader.load()[0], inputs)
        assert np.array_equal(reader.labels[:], labels)
        assert np.array_equal(reader.puzzle_indices, row_at)
        assert np.array_equal(reader.group_indices, puzzle_at)
        assert np.array_equal(reader.puzzle_identifiers, ids)
        assert np.array_equal(reader.transforms, transforms)
        assert reader.group_names == names
        assert store.identifiers() == ["<blank>", "é", "x"]
        assert reader.meta.total_examples == rows and reader.meta.total_groups == len(groups)
        assert reader.meta.num_puzzle_identifiers == 5
        order = rng.permutation(rows)
        reader._ram = None  # the per-batch selection path must give the same rows
        assert np.array_equal(reader.rows(order)[0], inputs[order])


def _built(tmp_path: Path, toy_task, name: str = "store") -> Path:
    out = tmp_path / name
    build_dataset(toy_task, out, progress=False)
    return out


def test_open_refuses_missing_and_foreign(tmp_path):
    with pytest.raises(StoreError, match="no such dataset store"):
        open_store(tmp_path / "nothing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a trmkit dataset store"):
        open_store(tmp_path / "plain")


def test_open_refuses_other_task_version_and_format(tmp_path, toy_task):
    out = _built(tmp_path, toy_task)
    assert open_store(out, toy_task).task_name == "toy-flip"
    with pytest.raises(StoreError, match="holds task 'toy-flip', not 'sudoku'"):
        open_store(out, "sudoku")
    import attrs

    with pytest.raises(StoreError, match="version"):
        open_store(out, attrs.evolve(toy_task, version="2"))
    meta_path = out / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["trmkit_format"] = FORMAT_VERSION + 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=f"format version {FORMAT_VERSION + 1}") as info:
        open_store(out)
    assert "trmkit build --task NAME" in str(info.value) and "\n" not in str(info.value)


def test_unfinished_writer_is_not_a_store(tmp_path):
    out = tmp_path / "store"
    writer = StoreWriter(out)
    writer.split("train", seq_len=3, transform_size=1).append(
        np.zeros((2, 3), np.uint8),
        np.zeros((2, 3), np.uint8),
        puzzle_sizes=[2],
        puzzle_ids=[0],
        transforms=[[0]],
        group_sizes=[1],
        group_names=["g"],
    )
    assert not out.exists()
    with pytest.raises(StoreError, match="incomplete store"):
        open_store(writer.tmp)
    writer.abort()
    assert not writer.tmp.exists()


def test_exception_mid_build_leaves_nothing(tmp_path, toy):
    task = toy.make_task()

    class Exploding(toy.ToyCodec):
        calls = 0

        def encode_puzzle(self, examples, *, split, rng):
            Exploding.calls += 1
            if Exploding.calls > 5:
                raise RuntimeError("injected failure")
            return super().encode_puzzle(examples, split=split, rng=rng)

    import attrs

    out = tmp_path / "store"
    with pytest.raises(RuntimeError, match="injected"):
        build_dataset(attrs.evolve(task, codec=Exploding()), out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_out_needs_force_and_force_replaces_only_stores(tmp_path, toy_task):
    out = _built(tmp_path, toy_task)
    with pytest.raises(StoreError, match="already exists; pass --force"):
        build_dataset(toy_task, out, progress=False)
    build_dataset(toy_task, out, progress=False, force=True, seed=5)
    assert open_store(out).attrs["seed"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not a trmkit dataset store"):
        build_dataset(toy_task, precious, progress=False, force=True)
    assert (precious / "notes.txt").read_text() == "keep me"


KILLED_BUILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import attrs
    sys.path.insert(0, sys.argv[1])
    import trmkit_toy
    from trmkit.data.build import build_dataset

    class Slow(trmkit_toy.ToyCodec):
        calls = 0
        def encode_puzzle(self, examples, *, split, rng):
            Slow.calls += 1
            if Slow.calls == 20:
                Path(sys.argv[3]).write_text("writing")
                time.sleep(60)
            return super().encode_puzzle(examples, split=split, rng=rng)

    task = attrs.evolve(trmkit_toy.make_task(), codec=Slow())
    build_dataset(task, sys.argv[2], options={"count": "40"}, progress=False)
    """
)


def test_build_killed_midway_leaves_nothing_openable(tmp_path, toy_task, monkeypatch):
    # small encode blocks, so the kill lands after several flushes to the writer
    out, marker = tmp_path / "store", tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    script = KILLED_BUILD.replace(
        "from trmkit.data.build import build_dataset",
        "from trmkit.data import build as b\n"
        "b.BLOCK_TOKENS = 50\n"
        "from trmkit.data.build import build_dataset",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            str(Path(__file__).parent / "toy_plugin"),
            str(out),
            str(marker),
        ],
        env=env,
    )
    try:
        deadline = time.time() + 60
        while not marker.exists():
            assert proc.poll() is None, "the build script ended before the kill"
            assert time.time() < deadline, "the build never reached the kill point"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith("store.tmp-")]
    assert leftovers, "the killed build should have been writing under a temporary name"
    with pytest.raises(StoreError, match="incomplete store"):
        open_store(leftovers[0])
    with pytest.raises(StoreError, match="no such dataset store"):
        open_store(out)
    # the next build removes the dead build's temporary directory
    build_dataset(toy_task, out, progress=False)
    assert open_store(out).task_name == "toy-flip"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marker", "store"]
