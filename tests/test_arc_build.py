"""End to end: `trmkit build` of ARC from a small slice laid out like shared/data, `data info`,
and evaluation of the built test split with perfect predictions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from trmkit import plugins
from trmkit.cli import cli
from trmkit.task import EvalContext, PredictionBatch
from trmkit_arc.codec import CANVAS

DATA = Path(__file__).parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="shared data not present")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("arc-slice")
    for rel, count in (
        ("arc-agi-1/training.json.gz", 4),
        ("arc-agi-1/evaluation.json.gz", 3),
        ("conceptarc/corpus.json.gz", 2),
    ):
        with gzip.open(DATA / rel) as fh:
            tasks = dict(list(json.load(fh).items())[:count])
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(target, "wt") as fh:
            json.dump(tasks, fh)
    return root


@pytest.fixture(scope="module")
def store_path(source: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("store") / "arc1"
    result = CliRunner().invoke(
        cli,
        [
            "build",
            "--task",
            "arc1",
            "--source",
            str(source),
            "--out",
            str(out),
            "--num-aug",
            "3",
            "--seed",
            "1",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_build_layout_and_ids(store_path: Path, source: Path):
    from trmkit.data import open_store

    store = open_store(store_path)
    train, test = store["train"], store["test"]
    assert len(train.group_names) == 9 and len(test.group_names) == 3
    ids = store.identifiers()
    assert ids[0] == "<blank>" and len(ids) == 1 + 9 * 4  # every task has 4 variants here
    assert any("|||t" in name for name in ids)
    # one puzzle id per task variant, shared by both splits
    test_ids = set(test.puzzle_identifiers.tolist())
    assert test_ids <= set(train.puzzle_identifiers.tolist())
    with gzip.open(source / "arc-agi-1/evaluation.json.gz") as fh:
        evaluation = json.load(fh)
    task = plugins.get_task("arc-agi-1")
    inputs, labels = test.load()
    first = test.group_names[0]
    # test rows are canonical (0, 0) encodings; variant 0 is the original task
    for k, pair in enumerate(evaluation[first]["test"]):
        np.testing.assert_array_equal(task.codec.decode(inputs[k]), pair["input"])
        np.testing.assert_array_equal(task.codec.decode(labels[k]), pair["output"])
    # train rows decode back to the augmented grids wherever they were placed
    tr_in, tr_lab = train.load()
    canvases = tr_in.reshape(-1, CANVAS, CANVAS)
    assert (canvases[:, 0, 0] == 0).any()  # some train rows are translated
    assert tr_in.dtype == np.uint8 and tr_lab.max() <= 11


def test_data_info_shows_the_store(store_path: Path):
    result = CliRunner().invoke(cli, ["data", "info", str(store_path)])
    assert result.exit_code == 0, result.output
    assert "arc-agi-1" in result.output and "per_variant" in result.output
    assert "input:" in result.output


def test_evaluating_the_built_test_split_with_perfect_predictions(store_path: Path, tmp_path):
    from trmkit.data import open_store

    task = plugins.get_task("arc-agi-1")
    test = open_store(store_path)["test"]
    inputs, labels = test.load()
    indices = test.puzzle_indices
    puzzle_of_row = np.repeat(np.arange(len(indices) - 1), np.diff(indices))
    context = EvalContext(
        codec=task.codec,
        augmenter=task.augmenter,
        group_names=test.group_names,
        puzzle_group=test.puzzle_group,
        transforms=test.transforms,
        out_dir=tmp_path,
    )
    run = task.evaluator.start(context)
    run.update(
        PredictionBatch(
            inputs=inputs,
            labels=labels,
            predictions=labels.copy(),
            puzzle_index=puzzle_of_row,
            q_halt=np.full(len(inputs), 0.5),
        )
    )
    metrics = run.finish()
    assert metrics["ARC/pass@1"] == 1.0 and metrics["exact_accuracy"] == 1.0
    submission = json.loads((tmp_path / "submission.json").read_text())
    assert sorted(submission) == sorted(test.group_names)


def test_guard_refuses_in_the_cli(tmp_path: Path):
    result = CliRunner().invoke(
        cli,
        [
            "build",
            "--task",
            "arc2",
            "--source",
            str(DATA),
            "--out",
            str(tmp_path / "s"),
            "--num-aug",
            "0",
            "--no-progress",
            "-o",
            "subsets=arc-agi-2/training.json.gz,arc-agi-1/evaluation.json.gz",
            "-o",
            "test_set=arc-agi-1/evaluation.json.gz",
        ],
    )
    assert result.exit_code != 0
    assert "375 of the 1000 training tasks" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "s").exists()
