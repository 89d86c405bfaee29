"""Checkpoint bundles: pickle-free state round trips, atomic writes, keep-K, bad bundles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_training import build_tiny_data, one_thread, tiny_trainer

from trmkit.checkpoint import bundle as ckpt
from trmkit.checkpoint.manifest import DatasetRecord, Manifest, ModelRecord, TaskRecord
from trmkit.checkpoint.state import flatten, load_tree, save_tree, unflatten
from trmkit.errors import CheckpointError

TESTS = Path(__file__).parent


# ----------------------------------------------------------------------------- state trees

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.text(max_size=5),
    st.floats(allow_nan=False, width=32),
    st.lists(st.integers(-5, 5), min_size=1, max_size=4).map(torch.tensor),
    st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=4).map(np.array),
)
trees = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3),
        st.lists(kids, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.integers(0, 9), st.text(max_size=3)), kids, max_size=3),
    ),
    max_leaves=12,
)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and list(a) == list(b)
            and all(type(k) is type(k2) for k, k2 in zip(a, b, strict=True))
            and all(_same(a[k], b[k]) for k in a)
        )
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=60, deadline=None)
@given(trees)
def test_state_tree_round_trips_through_json_and_safetensors(tmp_path_factory, tree):
    directory = tmp_path_factory.mktemp("tree")
    save_tree({"x": tree}, directory, "state")
    assert _same(load_tree(directory, "state")["x"], tree)


@attrs.define
class _Carry:
    z: torch.Tensor
    steps: torch.Tensor


def test_objects_are_rebuilt_from_a_template_never_from_the_file():
    tensors: dict = {}
    tree = flatten(_Carry(torch.ones(2), torch.tensor([3])), tensors)
    back = unflatten(tree, tensors, template=_Carry(torch.zeros(2), torch.tensor([0])))
    assert torch.equal(back.z, torch.ones(2)) and back.steps.item() == 3
    with pytest.raises(CheckpointError, match="_Carry"):
        unflatten(tree, tensors, template=None)


def test_optimizer_state_with_int_keys_round_trips(tmp_path):
    from trmkit.training.optim import AdamATan2

    p = torch.nn.Parameter(torch.randn(3))
    opt = AdamATan2([p], lr=1e-2)
    p.grad = torch.randn(3)
    opt.step()
    save_tree(opt.state_dict(), tmp_path, "opt")
    opt2 = AdamATan2([torch.nn.Parameter(p.detach().clone())], lr=1e-2)
    opt2.load_state_dict(load_tree(tmp_path, "opt"))
    restored = opt2.state_dict()["state"][0]
    for key, value in opt.state[p].items():
        assert torch.equal(torch.as_tensor(value), torch.as_tensor(restored[key]))


# ----------------------------------------------------------------------------- bundles


def _fake_bundle(root: Path, step: int) -> Path:
    tmp = ckpt.begin_write(root, step)
    ckpt.write_weights(tmp, "model", {"w": torch.full((2,), float(step))})
    ckpt.write_manifest(
        tmp,
        Manifest(
            step=step,
            model=ModelRecord(name="trm"),
            task=TaskRecord(name="t", version="1"),
            dataset=DatasetRecord(seq_len=4, vocab_size=3),
        ),
    )
    return ckpt.commit(root, step, keep=2)


def test_commit_is_atomic_and_keeps_the_last_k(tmp_path):
    for step in (1, 2, 3):
        _fake_bundle(tmp_path, step)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [2, 3]
    # a half-written directory is invisible and cleaned by the next save
    ckpt.begin_write(tmp_path, 4)
    assert ckpt.latest_checkpoint(tmp_path).name == "step_3"
    _fake_bundle(tmp_path, 5)
    assert not list(tmp_path.glob(".tmp-*"))
    assert ckpt.resolve_bundle(tmp_path).name == "step_5"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    before = one_thread()
    tmp = tmp_path_factory.mktemp("ckpt")
    data = build_tiny_data(tmp / "data")
    tiny_trainer(tmp, data).run(until=4)
    yield tmp, data
    torch.set_num_threads(before)


def _copy_bundle(src_run: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src_run / "checkpoints" / "step_4", dst)
    return dst


def test_truncated_weights_are_a_checkpoint_error(trained, tmp_path):
    bundle = _copy_bundle(trained[0] / "run", tmp_path / "b")
    data = (bundle / "model.safetensors").read_bytes()
    (bundle / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        ckpt.load_bundle(bundle)
    (bundle / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        ckpt.load_bundle(bundle)


def test_bad_manifests_are_checkpoint_errors(trained, tmp_path):
    bundle = _copy_bundle(trained[0] / "run", tmp_path / "b")
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        ckpt.load_bundle(bundle)
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format 99"):
        ckpt.load_bundle(bundle)
    bad = {
        **manifest,
        "model": {
            **manifest["model"],
            "config": {**manifest["model"]["config"], "hidden_size": 48},
        },
    }
    (bundle / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="shape"):
        ckpt.load_bundle(bundle)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        ckpt.load_bundle(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint bundle"):
        ckpt.load_bundle(tmp_path / "empty")


_KILL_SCRIPT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from tiny_training import tiny_trainer
import trmkit.checkpoint.bundle as ckpt
tmp, data, flag = Path({tmp!r}), Path({data!r}), Path({flag!r})
trainer = tiny_trainer(tmp, data)
trainer.run(until=4)
def hang(path, manifest):  # weights of step 8 are on disk, the manifest never comes
    flag.write_text("writing")
    time.sleep(120)
ckpt.write_manifest = hang
trainer.run(until=8)
"""


@pytest.mark.slow  # a subprocess that trains, ~15 s on the shared 2-core machine
def test_kill_during_checkpoint_write_keeps_previous_loadable(trained, tmp_path):
    _, data = trained
    flag = tmp_path / "flag"
    script = _KILL_SCRIPT.format(
        tests=str(TESTS), tmp=str(tmp_path), data=str(data), flag=str(flag)
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    try:
        deadline = time.time() + 120
        while not flag.exists():
            assert proc.poll() is None, "trainer exited before writing its second checkpoint"
            assert time.time() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    root = tmp_path / "run" / "checkpoints"
    [half] = root.glob(".tmp-step_8.*")
    assert (half / "model.safetensors").exists()
    assert ckpt.latest_checkpoint(root).name == "step_4"
    bundle = ckpt.load_bundle(tmp_path / "run")
    assert bundle.step == 4
    # and the run resumes from it, cleaning the half-written directory on its next save
    trainer = tiny_trainer(tmp_path, data, resume=True)
    assert trainer.step == 4
    trainer.run()
    assert not list(root.glob(".tmp-step_8*"))
    assert ckpt.latest_checkpoint(root).name == "step_8"
