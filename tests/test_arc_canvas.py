"""The ARC build option ``canvas`` (docs/tasks-arc.md, "A smaller canvas"): the default build
is bit-identical to the official 30x30 layout, a small canvas sets the sequence length, the
store and the checkpoint record it, and `solve`, `eval`, `adapt` and `trmkit.load` read it
back from the bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tiny_training import one_thread

from trmkit import plugins
from trmkit.cli import cli
from trmkit.data.store import open_store
from trmkit.errors import TrmkitError
from trmkit.task import TASK_OPTIONS_KEY

FLIP = {  # mirror left-right
    "train": [
        {"input": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "output": [[0, 0, 1], [0, 1, 0], [1, 0, 0]]},
        {"input": [[2, 2, 0], [0, 0, 0], [0, 0, 0]], "output": [[0, 2, 2], [0, 0, 0], [0, 0, 0]]},
    ],
    "test": [
        {"input": [[3, 0, 0], [3, 0, 0], [0, 0, 0]], "output": [[0, 0, 3], [0, 0, 3], [0, 0, 0]]}
    ],
}
FILL = {  # copy the first row down
    "train": [
        {"input": [[1, 2, 3], [0, 0, 0], [0, 0, 0]], "output": [[1, 2, 3], [1, 2, 3], [1, 2, 3]]}
    ],
    "test": [
        {"input": [[4, 5, 6], [0, 0, 0], [0, 0, 0]], "output": [[4, 5, 6], [4, 5, 6], [4, 5, 6]]}
    ],
}
DEFAULT_CONTENT = "34316dcdbe5d1a30d298175aab32ea3fe389e79eba06a4c9e15ee07f5d1c25fa"
"""content_sha256 of the default build below, as written by trmkit before the canvas option
existed (commit 8d01985): the default canvas must stay the official layout, bit for bit."""

RECIPE = """
name = "tiny-arc"
[data]
task = "arc-agi-1"
num_aug = 3
seed = 1
[model]
name = "trm"
mixer = "mlp_t"
pos_encodings = "none"
hidden_size = 16
num_heads = 2
h_cycles = 1
l_cycles = 1
l_layers = 1
puzzle_emb_ndim = 16
puzzle_emb_len = 1
halt_max_steps = 2
[optim]
global_batch_size = 4
lr = 1e-3
warmup_steps = 1
puzzle_emb_lr = 1e-2
[train]
epochs = 2
eval_interval = 2
"""


def _run(*args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("arc-canvas") / "tasks"
    folder.mkdir()
    (folder / "flip.json").write_text(json.dumps(FLIP))
    (folder / "fill.json").write_text(json.dumps(FILL))
    return folder


def _build(tasks: Path, out: Path, *options: str) -> Path:
    opts = [x for o in options for x in ("-o", o)]
    _run(
        "build",
        "--task",
        "arc1",
        "--source",
        tasks,
        "--out",
        out,
        "--num-aug",
        3,
        "--seed",
        1,
        "--no-progress",
        *opts,
    )
    return out


def test_default_canvas_is_the_official_layout_bit_for_bit(tasks: Path, tmp_path: Path):
    default = open_store(_build(tasks, tmp_path / "default"))
    explicit = open_store(_build(tasks, tmp_path / "explicit", "canvas=30"))
    assert default.attrs["content_sha256"] == explicit.attrs["content_sha256"] == DEFAULT_CONTENT
    assert default.attrs["seq_len"] == 900 and TASK_OPTIONS_KEY not in default.attrs
    task = plugins.get_task("arc1")
    assert task.for_store(default.attrs) is task


def test_small_canvas_store_records_it_and_decodes(tasks: Path, tmp_path: Path):
    store = open_store(_build(tasks, tmp_path / "c5", "canvas=5"))
    assert store.attrs["seq_len"] == 25
    assert json.loads(store.attrs[TASK_OPTIONS_KEY]) == {"canvas": "5"}
    task = plugins.get_task("arc1").for_store(store.attrs)
    assert task.codec.seq_len == 25 and task.name == "arc-agi-1"
    split = store.split("test")
    inputs = np.asarray(split.inputs[:])
    assert inputs.shape == (8, 25)
    grids = {tuple(map(tuple, task.codec.decode(row))) for row in inputs}
    assert tuple(map(tuple, FILL["test"][0]["input"])) in grids  # the identity variant


def test_bundle_carries_the_canvas_to_solve_eval_adapt_and_load(tasks: Path, tmp_path: Path):
    before = one_thread()
    try:
        import torch

        data = _build(tasks, tmp_path / "c4", "canvas=4")
        recipe = tmp_path / "tiny.toml"
        recipe.write_text(RECIPE)
        run = tmp_path / "run"
        _run(
            "train",
            "--recipe",
            recipe,
            "--data",
            data,
            "--out",
            run,
            "--max-steps",
            2,
            "--no-progress",
            "--no-preflight",
        )
        (bundle,) = sorted((run / "checkpoints").iterdir())
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["dataset"]["seq_len"] == 16
        assert json.loads(manifest["dataset"]["store"][TASK_OPTIONS_KEY]) == {"canvas": "4"}
        out = _run("solve", bundle, tasks / "flip.json", "--submission", tmp_path / "sub.json")
        assert "flip" in out
        submission = json.loads((tmp_path / "sub.json").read_text())
        assert sorted(submission) == ["flip"] and len(submission["flip"]) == 1
        _run("eval", bundle, "--out", tmp_path / "eval")
        metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
        assert metrics["ARC/test_inputs"] == 2
        _run(
            "adapt",
            bundle,
            tasks / "flip.json",
            "--out",
            tmp_path / "adapted",
            "--steps",
            2,
            "--num-aug",
            1,
            "--no-progress",
        )
        _run("solve", tmp_path / "adapted", tasks / "flip.json")
        from trmkit import load

        assert load(bundle).task.codec.seq_len == 16
        big = tmp_path / "big.json"
        big.write_text(json.dumps({"train": FILL["train"], "test": [{"input": [[1] * 5]}]}))
        result = CliRunner().invoke(cli, ["solve", str(bundle), str(big)])
        assert result.exit_code == 1
        assert "grid 1x5 is larger than the 4x4 canvas (build option canvas=4)" in result.output
    finally:
        torch.set_num_threads(before)


def test_damaged_task_options_record_is_one_line():
    from trmkit.errors import ConfigError

    task = plugins.get_task("arc1")
    assert task.for_store({TASK_OPTIONS_KEY: '{"canvas": "9"}'}).codec.seq_len == 81
    for bad in ("{not json", "[1, 2]", 7):
        with pytest.raises(ConfigError, match="task_options .*not a JSON table of build options"):
            task.for_store({TASK_OPTIONS_KEY: bad})
    with pytest.raises(TrmkitError, match="option canvas='99': expected an integer 1..30"):
        task.for_store({TASK_OPTIONS_KEY: '{"canvas": "99"}'})


def test_model_command_and_preflight_see_the_recipes_canvas():
    """`trmkit model --recipe arc-quick` (data option canvas=11) sizes the model for 121
    tokens, not 900, and so does the preflight's estimate."""
    from trmkit.config import load_recipe
    from trmkit.training.preflight import model_config

    assert "sequence: 121 tokens, vocab 12" in _run("model", "--recipe", "arc-quick")
    recipe = load_recipe("arc-quick")
    task = plugins.get_task(recipe.data.task).with_options(recipe.data.options)
    assert model_config(recipe, task).seq_len == 121
