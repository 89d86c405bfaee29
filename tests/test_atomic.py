"""Atomic replacement (issue 11): a kill at any point of replacing a store, a checkpoint
bundle or metrics.jsonl leaves the old or the new complete artefact, and the next open
recovers a leftover backup. A kill is simulated by making ``os.replace`` raise after its
first call (between the "old out of the way" and "new into place" renames)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from trmkit import atomic
from trmkit.data.build import build_dataset
from trmkit.data.store import open_store
from trmkit.training.metrics_log import MetricsLog


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler on the way treats it as one."""


def kill_before_into_place(monkeypatch, target) -> None:
    """Raise `Killed` at the ``os.replace`` that would put the new artefact at ``target``
    (for a directory: after the old one was renamed out of the way)."""
    real = os.replace
    target = os.fspath(target)

    def replace(src, dst):
        if os.fspath(dst) == target:
            raise Killed(f"killed before os.replace({src}, {dst})")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def test_write_text_is_all_or_nothing(tmp_path, monkeypatch):
    f = tmp_path / "a.txt"
    atomic.write_text(f, "old\n")
    kill_before_into_place(monkeypatch, f)
    with pytest.raises(Killed):
        atomic.write_text(f, "new\n")
    monkeypatch.undo()
    assert f.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary left
    atomic.write_text(f, "new\n")
    assert f.read_text() == "new\n"


def test_replace_dir_recovers_from_a_kill_between_the_renames(tmp_path, monkeypatch):
    dst, src = tmp_path / "d", tmp_path / "src"
    dst.mkdir()
    (dst / "x").write_text("old")
    src.mkdir()
    (src / "x").write_text("new")
    kill_before_into_place(monkeypatch, dst)
    with pytest.raises(Killed):
        atomic.replace_dir(src, dst)
    monkeypatch.undo()
    assert not dst.exists() and atomic.backup_path(dst).is_dir()
    assert atomic.recover_dir(dst)
    assert (dst / "x").read_text() == "old" and not atomic.backup_path(dst).exists()
    atomic.replace_dir(src, dst)
    assert (dst / "x").read_text() == "new"


def test_store_replacement_killed_between_renames_still_opens(tmp_path, toy_task, monkeypatch):
    out = tmp_path / "store"
    build_dataset(toy_task, out, num_aug=1, seed=0, progress=False)
    before = open_store(out).split("train").load()[0].copy()
    kill_before_into_place(monkeypatch, out)
    with pytest.raises(Killed):
        build_dataset(toy_task, out, num_aug=3, seed=1, progress=False, force=True)
    monkeypatch.undo()
    assert not out.exists()  # the kill left only the backup
    store = open_store(out)  # ... which opening renames back
    assert np.array_equal(store.split("train").load()[0], before)
    # and a later build replaces it normally
    build_dataset(toy_task, out, num_aug=3, seed=1, progress=False, force=True)
    assert len(open_store(out).split("train").load()[0]) != len(before)


def test_store_backup_restored_by_another_rank_still_opens(tmp_path, toy_task, monkeypatch):
    """Two Accelerate ranks open a store a kill left as its backup: the rank whose rename
    loses the race (the other rank restored the backup first) opens the restored store."""
    out = tmp_path / "store"
    build_dataset(toy_task, out, num_aug=1, seed=0, progress=False)
    before = open_store(out).split("train").load()[0].copy()
    backup = atomic.backup_path(out)
    os.replace(out, backup)  # what a kill between replace_dir's two renames leaves
    real = os.replace

    def other_rank_first(src, dst):
        if os.fspath(src) == os.fspath(backup):
            real(src, dst)  # the other rank's rename lands first; ours finds no backup
            raise FileNotFoundError(2, "No such file or directory", os.fspath(src))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", other_rank_first)
    store = open_store(out)
    assert np.array_equal(store.split("train").load()[0], before)


def _bundle_at(root, step, marker):
    from trmkit import checkpoint as ckpt
    from trmkit.checkpoint import DatasetRecord, Manifest, ModelRecord, TaskRecord

    tmp = ckpt.begin_write(root, step)
    ckpt.write_manifest(
        tmp,
        Manifest(
            step=step,
            model=ModelRecord(name="trm"),
            task=TaskRecord(name="t", version="1"),
            dataset=DatasetRecord(seq_len=4, vocab_size=3),
            recipe={"marker": marker},
        ),
    )
    return ckpt.commit(root, step, keep=3)


def test_checkpoint_commit_killed_between_renames(tmp_path, monkeypatch):
    from trmkit.checkpoint import latest_checkpoint, read_manifest

    root = tmp_path / "checkpoints"
    _bundle_at(root, 4, "first")
    kill_before_into_place(monkeypatch, root / "step_4")
    with pytest.raises(Killed):
        _bundle_at(root, 4, "second")  # re-saving the same step
    monkeypatch.undo()
    latest = latest_checkpoint(root)
    assert latest is not None and latest.name == "step_4"
    assert read_manifest(latest).recipe["marker"] == "first"
    _bundle_at(root, 4, "third")
    assert read_manifest(latest_checkpoint(root)).recipe["marker"] == "third"


def test_write_bundle_force_killed_between_renames(tmp_path, monkeypatch):
    import attrs

    from trmkit.checkpoint import (
        DatasetRecord,
        Manifest,
        ModelRecord,
        TaskRecord,
        load_bundle,
        write_bundle,
    )
    from trmkit.models import build_model

    torch.manual_seed(0)
    model = build_model(
        "trm",
        dict(
            seq_len=16,
            vocab_size=6,
            hidden_size=16,
            num_heads=2,
            puzzle_emb_ndim=16,
            halt_max_steps=2,
            mixer="mlp_t",
            pos_encodings="none",
            h_cycles=1,
            l_cycles=1,
            l_layers=1,
        ),
    )
    manifest = Manifest(
        step=1,
        model=ModelRecord(name="trm", config=attrs.asdict(model.config)),
        task=TaskRecord(name="sudoku-4x4", version="1"),
        dataset=DatasetRecord(seq_len=16, vocab_size=6),
    )
    dst = write_bundle(tmp_path / "b", manifest, model.state_dict())
    kill_before_into_place(monkeypatch, dst)
    with pytest.raises(Killed):
        write_bundle(dst, attrs.evolve(manifest, step=2), model.state_dict(), force=True)
    monkeypatch.undo()
    assert load_bundle(dst).manifest.step == 1


def test_metrics_truncate_is_atomic_and_drops_a_torn_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    for step in (1, 2, 3):
        log.write({"step": step, "split": "train", "lm_loss": 1.0 / step})
    with open(path, "a") as fh:
        fh.write('{"step": 4, "split": "tr')  # a kill during an append
    text = path.read_text()
    kill_before_into_place(monkeypatch, path)
    with pytest.raises(Killed):
        log.truncate_after(2)
    monkeypatch.undo()
    assert path.read_text() == text  # the old log, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]
    capsys.readouterr()
    log.truncate_after(2)
    assert "torn last line" in capsys.readouterr().err
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]
    assert [r["step"] for r in log.read()] == [1, 2]
