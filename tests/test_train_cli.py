"""`trmkit train` on the command line: a short run, and every expected failure as one line."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from tiny_training import build_tiny_data, one_thread, write_recipe

from trmkit.cli import cli


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    before = one_thread()
    yield build_tiny_data(tmp_path_factory.mktemp("cli") / "store")
    torch.set_num_threads(before)


def _train(*args):
    return CliRunner().invoke(cli, ["train", "--no-progress", *map(str, args)])


def test_train_cli_runs_resumes_and_prints_accuracy(tmp_path, data):
    recipe = write_recipe(tmp_path)
    out = tmp_path / "run"
    result = _train("--recipe", recipe, "--data", data, "--out", out, "--max-steps", 4)
    assert result.exit_code == 0, result.output
    assert "final: exact accuracy" in result.output and "after 4 steps" in result.output
    assert (out / "checkpoints" / "step_4" / "manifest.json").exists()
    assert (out / "curves.png").exists()
    again = _train("--recipe", recipe, "--data", data, "--out", out, "--max-steps", 4)
    assert again.exit_code != 0 and "--resume" in again.output
    resumed = _train(
        "--recipe",
        recipe,
        "--data",
        data,
        "--out",
        out,
        "--max-steps",
        6,
        "--resume",
        "--set",
        "train.log_every=2",
    )
    assert resumed.exit_code == 0, resumed.output
    steps = [
        json.loads(line)["step"]
        for line in (out / "metrics.jsonl").open()
        if json.loads(line)["split"] == "train"
    ]
    assert steps == [1, 2, 3, 4, 6]


@pytest.mark.slow  # three short runs, one dataset build (~10 s)
def test_train_builds_and_caches_the_recipe_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("TRMKIT_CACHE", str(tmp_path / "cache"))
    recipe = write_recipe(tmp_path)
    result = _train("--recipe", recipe, "--out", tmp_path / "a", "--max-steps", 1)
    assert result.exit_code == 0, result.output
    [cached] = (tmp_path / "cache" / "datasets").iterdir()
    assert cached.name.startswith("sudoku-4x4-")
    stamp = (cached / "zarr.json").stat().st_mtime_ns
    result = _train("--recipe", recipe, "--out", tmp_path / "b", "--max-steps", 1)
    assert result.exit_code == 0 and "building dataset" not in result.output
    assert (cached / "zarr.json").stat().st_mtime_ns == stamp
    # another seed is another dataset
    result = _train(
        "--recipe", recipe, "--out", tmp_path / "c", "--max-steps", 1, "--set", "data.seed=1"
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "cache" / "datasets").iterdir())) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "no-such-recipe"], "unknown recipe 'no-such-recipe'"),
        (["--task", "no-such-task"], "no-such-task"),
        ([], "give --task NAME"),
        (["--recipe", "{recipe}", "--set", "optim.nope=1"], "optim.nope"),
        (["--recipe", "{recipe}", "--set", "optim.lr=fast"], "expected a number"),
        (["--recipe", "{recipe}", "--set", "model.hidden=3"], "model.hidden"),
        (["--recipe", "{recipe}", "--task", "maze"], "does not match recipe"),
        (["--recipe", "{recipe}", "--resume"], "--resume needs --out"),
        (
            ["--recipe", "{recipe}", "--data", "{tmp}/none", "--out", "{tmp}/r"],
            "no such dataset store",
        ),
        (
            ["--recipe", "{recipe}", "--data", "{data}", "--out", "{tmp}/r", "--resume"],
            "no complete checkpoint",
        ),
        (
            [
                "--recipe",
                "{recipe}",
                "--data",
                "{data}",
                "--out",
                "{tmp}/r",
                "--set",
                "optim.global_batch_size=4096",
            ],
            "too few examples",
        ),
    ],
)
def test_train_errors_are_one_line(tmp_path, data, args, message):
    recipe = write_recipe(tmp_path)
    args = [a.format(recipe=recipe, tmp=tmp_path, data=data) for a in args]
    result = _train(*args)
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_eval_and_solve_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["eval", str(tmp_path / "missing")])
    assert result.exit_code != 0 and "no such checkpoint" in result.output
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text("[]")
    result = runner.invoke(cli, ["solve", str(tmp_path / "b"), "1..4"])
    assert result.exit_code != 0 and "not a trmkit checkpoint manifest" in result.output
