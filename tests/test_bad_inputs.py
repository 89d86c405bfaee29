"""The bad-input corpus (issue 11): every malformed input at an entry point of the `trmkit`
CLI is refused with exit code 1 and exactly one line that names the culprit (file or
field), never a traceback, and nothing is written or half-written.

Each case is ``setup(ctx) -> (args, culprit)``: it prepares files under ``ctx.tmp`` and
returns the command line and a substring the error line must contain. The test snapshots
every file under the test's directory before and after the command and requires them
equal (nothing created, nothing changed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
import torch
from click.testing import CliRunner

from trmkit.cli import cli

CHUNK = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfa"


@attrs.define
class Ctx:
    tmp: Path
    sudoku: Path
    """a loadable sudoku-4x4 bundle (untrained weights)."""
    arc: Path
    """a loadable arc-agi-1 bundle (untrained weights)."""

    def copy_bundle(self, which: str = "sudoku") -> Path:
        import shutil

        dst = self.tmp / f"ck-{which}"
        shutil.copytree(self.sudoku if which == "sudoku" else self.arc, dst)
        return dst

    def edit_manifest(self, change: Callable[[dict], None], which: str = "sudoku") -> Path:
        bundle = self.copy_bundle(which)
        data = json.loads((bundle / "manifest.json").read_text())
        change(data)
        (bundle / "manifest.json").write_text(json.dumps(data))
        return bundle

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path


def _bundle(out: Path, task_name: str, seq_len: int, vocab: int, num_ids: int = 1) -> Path:
    from trmkit.checkpoint import DatasetRecord, Manifest, ModelRecord, TaskRecord, write_bundle
    from trmkit.models import build_model

    torch.manual_seed(0)
    model = build_model("trm", dict(seq_len=seq_len, vocab_size=vocab, hidden_size=16,
                                    num_heads=2, puzzle_emb_ndim=16, halt_max_steps=2,
                                    mixer="mlp_t", pos_encodings="none", h_cycles=1,
                                    l_cycles=1, l_layers=1, num_puzzle_identifiers=num_ids))
    return write_bundle(out, Manifest(
        step=1, model=ModelRecord(name="trm", config=attrs.asdict(model.config)),
        task=TaskRecord(name=task_name, version="1"),
        dataset=DatasetRecord(seq_len=seq_len, vocab_size=vocab,
                              num_puzzle_identifiers=num_ids)), model.state_dict())


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("bad-input-bundles")
    yield (_bundle(tmp / "sudoku", "sudoku-4x4", 16, 6),
           _bundle(tmp / "arc", "arc-agi-1", 900, 12, num_ids=3))
    torch.set_num_threads(before)


ARC_OK = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}],
          "test": [{"input": [[1, 2]], "output": [[2, 1]]}]}

CASES: dict[str, Callable[[Ctx], tuple[list[str], str]]] = {}


def case(name: str):
    def register(fn):
        assert name not in CASES, name
        CASES[name] = fn
        return fn
    return register


# ------------------------------------------------------------------ text and JSON (textio)


@case("recipe: binary TOML")
def _(c):
    f = c.file("bin.toml", CHUNK * 4)
    return ["model", "--recipe", str(f)], "bin.toml: recipe is not UTF-8"


@case("recipe: invalid TOML")
def _(c):
    f = c.file("bad.toml", "[model\nname = 1")
    return ["model", "--recipe", str(f)], "bad.toml: not valid TOML"


@case("recipe: huge TOML")
def _(c):
    f = c.file("huge.toml", "# " + "x" * (2 << 20))
    return ["model", "--recipe", str(f)], "huge.toml: recipe is"


@case("solve: binary sudoku puzzle file")
def _(c):
    f = c.file("p.txt", CHUNK * 8)
    return ["solve", str(c.sudoku), str(f)], "p.txt: puzzle file is not UTF-8"


@case("solve: binary ARC task file")
def _(c):
    f = c.file("t.json", CHUNK * 8)
    return ["solve", str(c.arc), str(f)], "t.json"


@case("solve: ARC JSON nested 5000 deep (file)")
def _(c):
    f = c.file("deep.json", "[" * 5000 + "]" * 5000)
    return ["solve", str(c.arc), str(f)], "deep.json: puzzle file is nested 5000 levels"


@case("solve: ARC JSON nested 5000 deep (inline)")
def _(c):
    return ["solve", str(c.arc), "{\"train\": " + "[" * 5000 + "]" * 5000 + "}"], "nested"


@case("solve: ARC colour 10**30")
def _(c):
    task = {"train": [{"input": [[10**30]], "output": [[1]]}], "test": ARC_OK["test"]}
    f = c.file("big.json", json.dumps(task))
    return ["solve", str(c.arc), str(f)], "big.json"


@case("solve: ARC colour 10**30 (inline)")
def _(c):
    task = {"train": [{"input": [[10**30]], "output": [[1]]}], "test": ARC_OK["test"]}
    return ["solve", str(c.arc), json.dumps(task)], "does not fit in 64 bits"


@case("solve: ARC colour 12")
def _(c):
    task = {"train": [{"input": [[12]], "output": [[1]]}], "test": ARC_OK["test"]}
    f = c.file("c12.json", json.dumps(task))
    return ["solve", str(c.arc), str(f)], "cells must be ints 0..9"


@case("solve: ARC empty train list")
def _(c):
    f = c.file("empty.json", json.dumps({"train": [], "test": ARC_OK["test"]}))
    return ["solve", str(c.arc), str(f)], "empty.json: task empty: no demonstration"


@case("solve: ARC empty train list (inline)")
def _(c):
    return ["solve", str(c.arc), json.dumps({"train": [], "test": ARC_OK["test"]})], \
        "no demonstration"


@case("solve: ARC JSON null")
def _(c):
    f = c.file("null.json", "null")
    return ["solve", str(c.arc), str(f)], "null.json"


@case("solve: ARC float colour")
def _(c):
    task = {"train": [{"input": [[1.5]], "output": [[1]]}], "test": ARC_OK["test"]}
    return ["solve", str(c.arc), json.dumps(task)], "cells must be ints 0..9"


# ------------------------------------------------------------------------ solve arguments


@case("solve: inline ARC task longer than NAME_MAX, invalid")
def _(c):
    task = {"train": [{"input": [[1] * 30] * 10, "output": [[1] * 30] * 10}],
            "test": [{"input": [[11] * 30] * 10}]}
    text = json.dumps(task)
    assert 256 < len(text) < 4096
    return ["solve", str(c.arc), text], "cells must be ints 0..9"


@case("solve: sudoku file that does not exist")
def _(c):
    return ["solve", str(c.sudoku), str(c.tmp / "puzzles.txt")], "puzzles.txt: file not found"


@case("solve: ARC file that does not exist")
def _(c):
    return ["solve", str(c.arc), str(c.tmp / "nope" / "task.json")], \
        "task.json: file not found"


@case("solve: puzzle path is a directory")
def _(c):
    (c.tmp / "adir").mkdir()
    return ["solve", str(c.sudoku), str(c.tmp / "adir")], "adir"


@case("solve: sudoku puzzle of wrong length")
def _(c):
    return ["solve", str(c.sudoku), "1234"], "4 cells, expected 16"


@case("solve: checkpoint task changed to another task")
def _(c):
    bundle = c.edit_manifest(lambda m: m["task"].__setitem__("name", "maze-hard"))
    return ["solve", str(bundle), "1..4.3....2..1.."], "checkpoint"


@case("solve: checkpoint task unknown")
def _(c):
    bundle = c.edit_manifest(lambda m: m["task"].__setitem__("name", "no-such-task"))
    return ["solve", str(bundle), "1..4.3....2..1.."], "no-such-task"


@case("solve: checkpoint does not exist")
def _(c):
    return ["solve", str(c.tmp / "nockpt"), "1..4.3....2..1.."], "nockpt"


# ------------------------------------------------------------------------ CSV sources


@case("build: sudoku CSV with a header and no rows")
def _(c):
    f = c.file("train.csv", "source,question,answer,rating\n")
    return ["build", "--task", "sudoku-extreme", "--source", str(f), "--out",
            str(c.tmp / "out")], "train.csv"


@case("build: binary sudoku CSV")
def _(c):
    f = c.file("train.csv", CHUNK * 64)
    return ["build", "--task", "sudoku-extreme", "--source", str(f), "--out",
            str(c.tmp / "out")], "train.csv"


# ------------------------------------------------------------------------ recipe ranges


def _set(key_value: str, culprit: str):
    def setup(c):
        return ["model", "--recipe", "sudoku-quick", "--set", key_value], culprit
    return setup


for _kv, _culprit in [
    ("optim.lr=-1", "optim.lr"),
    ("optim.ema_rate=2", "optim.ema_rate"),
    ("optim.ema_rate=-0.5", "optim.ema_rate"),
    ("optim.global_batch_size=-8", "optim.global_batch_size"),
    ("optim.global_batch_size=0", "optim.global_batch_size"),
    ("optim.warmup_steps=-1", "optim.warmup_steps"),
    ("optim.beta1=1.5", "optim.beta1"),
    ("optim.beta2=-0.1", "optim.beta2"),
    ("optim.weight_decay=-1", "optim.weight_decay"),
    ("optim.lr_min_ratio=3", "optim.lr_min_ratio"),
    ("optim.puzzle_emb_lr=-1e-3", "optim.puzzle_emb_lr"),
    ("train.epochs=0", "train.epochs"),
    ("train.max_steps=-5", "train.max_steps"),
    ("train.eval_interval=-1", "train.eval_interval"),
    ("train.checkpoint_keep=-1", "train.checkpoint_keep"),
    ("train.log_every=0", "train.log_every"),
    ("train.eval_batch_size=-1", "train.eval_batch_size"),
    ("data.num_aug=-1", "data.num_aug"),
    ("data.subsample=-3", "data.subsample"),
    ("optim.lr=abc", "optim.lr"),
]:
    case(f"recipe: --set {_kv}")(_set(_kv, _culprit))


@case("recipe: TOML file with out-of-range value")
def _(c):
    from tiny_training import TINY_RECIPE

    f = c.file("neg.toml", TINY_RECIPE.replace("lr = 1e-3", "lr = -1e-3"))
    return ["model", "--recipe", str(f)], "neg.toml: optim.lr"


# ------------------------------------------------------------------------ the test


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_clean_line(name, bundles, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ctx = Ctx(tmp=tmp_path, sudoku=bundles[0], arc=bundles[1])
    args, culprit = CASES[name](ctx)
    before = _snapshot(tmp_path)
    result = CliRunner().invoke(cli, args)
    output = result.output
    assert "Traceback" not in output, output
    assert result.exit_code == 1, (result.exit_code, output, result.exception)
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert culprit in lines[0], lines[0]
    assert _snapshot(tmp_path) == before, "the command wrote or changed files"
