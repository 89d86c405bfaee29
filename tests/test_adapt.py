"""Test-time training (`trmkit adapt`, `trmkit solve --adapt`): a tiny ARC TRM (hidden 16,
MLP-t, untrained) and two hand-written 3x3 tasks. Adapting must add one embedding row per
variant, write a bundle whose table knows the tasks and whose answers differ, keep every
other tensor bit-identical under scope ``embeddings``, be deterministic under a seed, work
on a bundle without a puzzle-id table (as an imported official run) and refuse bad input
with one line and nothing written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from trmkit import plugins
from trmkit.checkpoint import (
    DatasetRecord,
    Manifest,
    ModelRecord,
    PuzzleIdTable,
    TaskRecord,
    load_bundle,
    read_manifest,
    read_safetensors,
    write_bundle,
)
from trmkit.cli import cli
from trmkit.errors import PuzzleError
from trmkit.inference.submission import read_submission
from trmkit.models import build_model, make_config
from trmkit.solve import read_puzzles, solve
from trmkit.training.adapt import adapt
from trmkit.training.ema import EMA

OLD_IDS = 3
TABLE_KEY = "core.encoder.puzzle_emb.weights"
FLIP = {  # mirror left-right
    "train": [
        {"input": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "output": [[0, 0, 1], [0, 1, 0], [1, 0, 0]]},
        {"input": [[2, 2, 0], [0, 0, 0], [0, 0, 0]], "output": [[0, 2, 2], [0, 0, 0], [0, 0, 0]]},
    ],
    "test": [{"input": [[3, 0, 0], [3, 0, 0], [0, 0, 0]]}],
}
FILL = {  # copy the first row down
    "train": [
        {"input": [[1, 2, 3], [0, 0, 0], [0, 0, 0]], "output": [[1, 2, 3], [1, 2, 3], [1, 2, 3]]}
    ],
    "test": [
        {"input": [[4, 5, 6], [0, 0, 0], [0, 0, 0]], "output": [[4, 5, 6], [4, 5, 6], [4, 5, 6]]},
        {"input": [[7, 0, 7], [0, 0, 0], [0, 0, 0]], "output": [[7, 0, 7], [7, 0, 7], [7, 0, 7]]},
    ],
}
RECIPE = {
    "optim": {
        "global_batch_size": 8,
        "lr": 1e-3,
        "warmup_steps": 2,
        "weight_decay": 0.1,
        "puzzle_emb_lr": 1e-2,
        "puzzle_emb_weight_decay": 0.1,
        "ema": True,
        "ema_rate": 0.9,
    }
}


def _tiny_arc_bundle(out: Path) -> Path:
    torch.manual_seed(0)
    cfg = make_config(
        "trm",
        dict(
            seq_len=900,
            vocab_size=12,
            num_puzzle_identifiers=OLD_IDS,
            batch_size=8,
            hidden_size=16,
            num_heads=2,
            expansion=1.0,
            puzzle_emb_ndim=16,
            puzzle_emb_len=1,
            pos_encodings="none",
            mixer="mlp_t",
            h_cycles=1,
            l_cycles=1,
            l_layers=1,
            halt_max_steps=2,
        ),
    )
    model = build_model("trm", cfg)
    with torch.no_grad():  # distinct trained-looking rows, so "untouched" means something
        model.puzzle_emb.weights.normal_()
    ema = {k: v + 0.01 for k, v in EMA(model, 0.9).state_dict()["shadow"].items()}
    manifest = Manifest(
        step=7,
        model=ModelRecord(name="trm", config=attrs.asdict(cfg)),
        task=TaskRecord(name="arc-agi-1", version="1"),
        dataset=DatasetRecord(seq_len=900, vocab_size=12, num_puzzle_identifiers=OLD_IDS),
        recipe=RECIPE,
    )
    return write_bundle(out, manifest, model.state_dict(), ema=ema)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("adapt")
    bundle = _tiny_arc_bundle(tmp / "base")
    (tmp / "flip.json").write_text(json.dumps(FLIP))
    (tmp / "fill.json").write_text(json.dumps(FILL))
    task = plugins.get_task("arc-agi-1")
    puzzles = [
        *read_puzzles(task, str(tmp / "flip.json")),
        *read_puzzles(task, str(tmp / "fill.json")),
    ]
    adapted = adapt(bundle, task, puzzles, steps=12, num_aug=2, seed=0)
    adapted_path = adapted.write(tmp / "adapted")
    yield {
        "tmp": tmp,
        "base": bundle,
        "task": task,
        "puzzles": puzzles,
        "result": adapted,
        "adapted": adapted_path,
    }
    torch.set_num_threads(before)


def test_adapted_bundle_knows_the_new_tasks(env):
    result, path = env["result"], env["adapted"]
    assert result.tasks == ["flip", "fill"] and result.known == []
    assert result.rows == 6 and result.steps == 12  # (identity + 2 variants) x 2 tasks
    manifest = read_manifest(path)
    assert manifest.dataset.num_puzzle_identifiers == OLD_IDS + 6
    assert manifest.model.config["num_puzzle_identifiers"] == OLD_IDS + 6
    assert manifest.dataset.store["adapt_scope"] == "embeddings"
    table = PuzzleIdTable(path, OLD_IDS + 6)
    assert sorted(table.groups) == ["fill", "flip"]
    ids = sorted(pid for name in table.groups for pid, _ in table.variants(name))
    assert ids == list(range(OLD_IDS, OLD_IDS + 6))
    for _pid, t in table.variants("flip"):  # each row records its variant's transform
        assert len(t) == env["task"].augmenter.transform_size
    assert np.array_equal(table.variants("flip")[0][1], env["task"].augmenter.identity())


def test_adapting_changes_the_answer(env):
    task, puzzles = env["task"], env["puzzles"]
    before = solve(load_bundle(env["base"]), task, puzzles, num_aug=2)
    after = solve(load_bundle(env["adapted"]), task, puzzles)
    assert all("not in the checkpoint's puzzle-id table" in a.note for a in before)
    assert all("trained variants" in a.note and a.variants == 3 for a in after)
    assert any(
        a.grid.shape != b.grid.shape or not np.array_equal(a.grid, b.grid)
        for a, b in zip(before, after, strict=True)
    )
    # the in-memory result answers as the written bundle does (solve --adapt)
    bundle, table = env["result"].bundle()
    again = solve(bundle, task, puzzles, table=table)
    for a, b in zip(after, again, strict=True):
        assert np.array_equal(a.grid, b.grid) and a.confidence == pytest.approx(b.confidence)


def test_embeddings_scope_leaves_every_other_tensor_bit_identical(env):
    base, path = env["base"], env["adapted"]
    old, new = (
        read_safetensors(base / "model.safetensors"),
        read_safetensors(path / "model.safetensors"),
    )
    assert set(old) == set(new)
    for key in old:
        if key != TABLE_KEY:
            assert torch.equal(old[key], new[key]), key
    assert torch.equal(new[TABLE_KEY][:OLD_IDS], old[TABLE_KEY])  # old rows untouched
    rows = new[TABLE_KEY][OLD_IDS:]
    assert rows.shape == (6, 16) and rows.abs().sum() > 0  # new rows, from zero, trained
    old_ema, new_ema = (
        read_safetensors(base / "ema.safetensors"),
        read_safetensors(path / "ema.safetensors"),
    )
    assert set(old_ema) == set(new_ema)
    assert all(torch.equal(old_ema[k], new_ema[k]) for k in old_ema)


def test_deterministic_under_a_seed_and_full_scope_trains_the_weights(env):
    task, puzzles, base = env["task"], env["puzzles"][:1], env["base"]
    one = adapt(base, task, puzzles, steps=6, num_aug=1, seed=3, scope="full")
    two = adapt(base, task, puzzles, steps=6, num_aug=1, seed=3, scope="full")
    other = adapt(base, task, puzzles, steps=6, num_aug=1, seed=4, scope="full")
    assert all(torch.equal(one.weights[k], two.weights[k]) for k in one.weights)
    assert all(torch.equal(one.ema[k], two.ema[k]) for k in one.ema)
    assert not torch.equal(one.weights[TABLE_KEY], other.weights[TABLE_KEY])
    old = read_safetensors(base / "model.safetensors")
    old_ema = read_safetensors(base / "ema.safetensors")
    changed = [k for k in old if k != TABLE_KEY and not torch.equal(old[k], one.weights[k])]
    assert changed, "scope full moved no weight"
    assert torch.equal(one.weights[TABLE_KEY][:OLD_IDS], old[TABLE_KEY])
    assert any(not torch.equal(old_ema[k], one.ema[k]) for k in old_ema)  # the EMA followed
    assert one.manifest.eval == {}  # the old evaluation no longer describes the weights


def test_adapting_an_adapted_bundle_keeps_its_table(env):
    """A bundle with a table gains rows; a task it knows is kept as it was. The base bundle
    has no table at all, as an imported official run (checked by the fixture itself)."""
    assert not (env["base"] / "puzzle_ids.json").exists()
    tmp, task = env["tmp"], env["task"]
    third = {"train": FILL["train"], "test": [{"input": [[1, 1, 0], [0, 0, 0], [0, 0, 0]]}]}
    (tmp / "third.json").write_text(json.dumps(third))
    puzzles = [*read_puzzles(task, str(tmp / "third.json")), env["puzzles"][0]]
    result = adapt(env["adapted"], task, puzzles, steps=2, num_aug=0, seed=0)
    assert result.tasks == ["third"] and result.known == ["flip"] and result.rows == 1
    path = result.write(tmp / "adapted-twice")
    before = PuzzleIdTable(env["adapted"])
    after = PuzzleIdTable(path, OLD_IDS + 7)
    for name in ("flip", "fill"):
        assert [p for p, _ in after.variants(name)] == [p for p, _ in before.variants(name)]
    assert [p for p, _ in after.variants("third")] == [OLD_IDS + 6]


# --------------------------------------------------------------------------- the CLI


def _invoke(args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        os.chdir(old)


def test_cli_adapt_then_solve_with_a_submission(env, tmp_path):
    base, tmp = env["base"], env["tmp"]
    out = tmp_path / "b"
    r = _invoke(
        [
            "adapt",
            base,
            tmp / "flip.json",
            tmp / "fill.json",
            "--out",
            out,
            "--steps",
            "4",
            "--num-aug",
            "1",
            "--no-progress",
        ],
        tmp_path,
    )
    assert r.exit_code == 0, r.output
    assert "adapted 2 task(s) (4 embedding rows) in 4 steps" in r.output
    assert sorted(PuzzleIdTable(out).groups) == ["fill", "flip"]
    sub = tmp_path / "submission.json"
    r = _invoke(
        ["solve", base, tmp / "fill.json", "--adapt", "3", "--num-aug", "1", "--submission", sub],
        tmp_path,
    )
    assert r.exit_code == 0, r.output
    assert "2 trained variants of 'fill' vote" in r.output
    data = read_submission(sub)  # validates: every attempt a grid
    assert list(data) == ["fill"] and len(data["fill"]) == 2
    assert all(set(e) == {"attempt_1", "attempt_2"} for e in data["fill"])
    r = _invoke(["score", sub, tmp / "fill.json"], tmp_path)
    assert r.exit_code == 0 and "pass@1" in r.output and "pass@2" in r.output, r.output


def _sudoku_bundle(out: Path) -> Path:
    cfg = make_config(
        "trm",
        dict(
            seq_len=16,
            vocab_size=6,
            hidden_size=16,
            num_heads=2,
            h_cycles=1,
            l_cycles=1,
            l_layers=1,
            puzzle_emb_ndim=16,
            puzzle_emb_len=1,
        ),
    )
    manifest = Manifest(
        step=1,
        model=ModelRecord(name="trm", config=attrs.asdict(cfg)),
        task=TaskRecord(name="sudoku-4x4", version=plugins.get_task("sudoku-4x4").version),
        dataset=DatasetRecord(seq_len=16, vocab_size=6),
    )
    return write_bundle(out, manifest, build_model("trm", cfg).state_dict())


def _bad(tmp: Path, name: str, task: dict) -> Path:
    path = tmp / name
    path.write_text(json.dumps(task))
    return path


@pytest.mark.parametrize(
    "case",
    ["no demonstrations", "test input too large", "colour out of range", "no puzzle ids"],
)
def test_cli_adapt_bad_input_is_one_line_and_writes_nothing(env, tmp_path, case):
    inputs = tmp_path / "in"
    inputs.mkdir()
    checkpoint = env["base"]
    if case == "no demonstrations":
        task_file = _bad(inputs, "nodemo.json", {"train": [], "test": FLIP["test"]})
        culprit = "nodemo.json: task nodemo: no demonstration pairs"
    elif case == "test input too large":
        big = {"train": FLIP["train"], "test": [{"input": [[1] * 31] * 31}]}
        task_file = _bad(inputs, "big.json", big)
        culprit = "big.json: task big test pair 0 input: grid is 31x31"
    elif case == "colour out of range":
        bad = {"train": [{"input": [[10]], "output": [[1]]}], "test": FLIP["test"]}
        task_file = _bad(inputs, "colour.json", bad)
        culprit = "colour.json: task colour train pair 0 input: row 0 holds 10"
    else:
        checkpoint = _sudoku_bundle(inputs / "sudoku")
        task_file = env["tmp"] / "flip.json"
        culprit = "its puzzles share one embedding row (no puzzle identifiers)"
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    r = _invoke(["adapt", checkpoint, task_file, "--out", out, "--steps", "2"], tmp_path)
    assert r.exit_code == 1, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    assert culprit in lines[0], lines[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_task_given_twice_is_refused_before_training(env):
    flip, fill = env["puzzles"]
    with pytest.raises(PuzzleError, match=r"^task 'fill' is given twice; every task needs"):
        adapt(env["base"], env["task"], [flip, fill, fill, flip], steps=1)


def test_adapted_bundle_still_evaluates_on_the_base_store(env):
    """The base model's store has fewer ids than the adapted bundle: accepted for an adapted
    bundle (its old rows are unchanged), refused for any other."""
    from types import SimpleNamespace

    from trmkit.checkpoint import check_store_matches
    from trmkit.errors import CheckpointError

    meta = SimpleNamespace(seq_len=900, vocab_size=12, num_puzzle_identifiers=OLD_IDS)
    check_store_matches(read_manifest(env["adapted"]), meta, "store")
    base = attrs.evolve(read_manifest(env["base"]))
    base.dataset.num_puzzle_identifiers = OLD_IDS + 6
    with pytest.raises(CheckpointError, match="num_puzzle_identifiers 3 does not match"):
        check_store_matches(base, meta, "store")
