"""CSV sources of the sudoku and maze tasks: real shared data, bad input, hub failures."""

from __future__ import annotations

import builtins
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from trmkit.errors import SourceError
from trmkit.plugins import get_task
from trmkit.task import SourceRequest
from trmkit_maze.grid import path_checks
from trmkit_sudoku.solver import GEOMETRIES, consistent, valid_solutions

DATA = Path(__file__).parents[2] / "shared" / "data"
SUDOKU_1K = DATA / "sudoku-extreme" / "train-1k.csv.gz"
MAZE_DIR = DATA / "maze-30x30-hard-1k"
needs_data = pytest.mark.skipif(
    not SUDOKU_1K.exists() or not MAZE_DIR.exists(), reason="shared data not present"
)

HEADER = "source,question,answer,rating\n"
Q = "...7.2..5....95.8.19..8..67..4...6....79...2.26...1......5......39.....8....784.."
A = "846712935372695184195483267984237651517964823263851749728549316439126578651378492"


def load(task: str, path: Path, **options: str):
    return get_task(task).sources["csv"].load(SourceRequest(path, 0, options))


@needs_data
def test_real_sudoku_file_is_train_split():
    data = load("sudoku", SUDOKU_1K)
    assert len(data.puzzles) == 1000
    assert all(p.train and not p.test for p in data.puzzles)
    first = data.puzzles[0]
    assert first.name == "train-2" and first.meta == {"rating": None, "source": "", "line": 2}
    grids = np.stack([p.train[0].output for p in data.puzzles])
    puzzles = np.stack([p.train[0].input for p in data.puzzles])
    assert valid_solutions(grids, GEOMETRIES[9]).all() and consistent(puzzles, grids).all()
    assert list(data.files) == ["train-1k.csv.gz"] and len(data.files["train-1k.csv.gz"]) == 64


@needs_data
def test_real_maze_directory_and_subsample():
    data = load("maze", MAZE_DIR)
    train = [p for p in data.puzzles if p.train]
    test = [p for p in data.puzzles if p.test]
    assert (len(train), len(test)) == (1000, 500)
    for p in train[:3] + test[:3]:
        ex = (p.train or p.test)[0]
        assert ex.input.shape == (30, 30)
        assert path_checks(ex.input, ex.output) == (True, True)
    sub = load("maze", MAZE_DIR, subsample="10")
    assert sum(1 for p in sub.puzzles if p.train) == 10
    assert sum(1 for p in sub.puzzles if p.test) == 500


def write(path: Path, rows: list[str], gz: bool = False) -> Path:
    text = HEADER + "".join(row + "\n" for row in rows)
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def test_directory_splits_ratings_and_min_rating(tmp_path: Path):
    write(tmp_path / "train.csv.gz", [f"a,{Q},{A},5", f"b,{Q},{A},", f"c,{Q},{A},0"], gz=True)
    write(tmp_path / "test.csv", [f"d,{Q},{A},7"])
    data = load("sudoku", tmp_path)
    assert [p.name for p in data.puzzles] == ["train-2", "train-3", "train-4", "test-2"]
    assert [p.meta["rating"] for p in data.puzzles] == [5.0, None, 0.0, 7.0]
    assert data.puzzles[3].test and not data.puzzles[3].train
    kept = load("sudoku", tmp_path, min_rating="5")
    assert [p.name for p in kept.puzzles] == ["train-2", "test-2"]
    alone = load("sudoku", tmp_path / "test.csv")  # a single file named *test*
    assert alone.puzzles[0].test


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (f"x,{Q},{A}", "line 3: expected 4 columns"),
        (f"x,{Q[:-1]},{A},", "line 3: question has 80 characters, expected 81"),
        (f"x,{Q[:5]}x{Q[6:]},{A},", "line 3: question has illegal character 'x' at position 5"),
        (f"x,{Q},{A[:-1]}.,", "line 3: answer has illegal character '.'"),
        (f"x,{Q},{A[:3]}1{A[4:]},", "line 3: answer contradicts its givens at row 1, column 4"),
        (f"x,{Q},{A[1:]}8,", "line 3: answer contradicts its givens"),
        (f"x,{Q},{A},abc", "line 3: rating 'abc' is not a number"),
    ],
)
def test_bad_sudoku_rows_name_file_and_line(tmp_path: Path, row: str, message: str):
    file = write(tmp_path / "train.csv", [f"ok,{Q},{A},1", row])
    with pytest.raises(SourceError, match=message) as info:
        load("sudoku", file)
    assert str(file) in str(info.value)


def test_invalid_sudoku_answer(tmp_path: Path):
    blank = "." * 81
    bad = A[:9] + A[:9] + A[18:]  # second row repeats the first: columns break
    file = write(tmp_path / "train.csv", [f"x,{blank},{bad},"])
    with pytest.raises(SourceError, match="line 2: answer is not a valid sudoku"):
        load("sudoku", file)


def test_bad_header_and_empty_dir(tmp_path: Path):
    file = tmp_path / "train.csv"
    file.write_text(f"question,answer\n{Q},{A}\n")
    with pytest.raises(SourceError, match="line 1: header"):
        load("sudoku", file)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no train.csv or test.csv"):
        load("sudoku", empty)


def test_bad_maze_answer(tmp_path: Path):
    maze = ("S" + " " * 28 + "G") + "#" * 870
    good = ("S" + "o" * 28 + "G") + "#" * 870
    moved_wall = good[:100] + " " + good[101:]
    file = write(tmp_path / "train.csv", [f",{maze},{good},", f",{maze},{moved_wall},"])
    with pytest.raises(
        SourceError, match="line 3: answer differs from the question at row 4, column 11"
    ):
        load("maze", file)
    two_starts = write(tmp_path / "t2.csv", [f",{maze.replace('G', 'S')},{good},"])
    with pytest.raises(SourceError, match="line 2: question has 2 S cells"):
        load("maze", two_starts)
    assert len(load("maze", write(tmp_path / "t3.csv", [f",{maze},{good},"])).puzzles) == 1


@needs_data
def test_copy_of_shared_dir_as_source(tmp_path: Path):
    shutil.copy(SUDOKU_1K, tmp_path / "train.csv.gz")
    data = load("sudoku", tmp_path, subsample="5")
    assert len(data.puzzles) == 5 and all(p.train for p in data.puzzles)


def test_hub_without_huggingface_hub_names_local_alternative(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("huggingface_hub"):
            raise ImportError("No module named 'huggingface_hub'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(SourceError, match=r"trmkit\[hub\].*--source DIR"):
        get_task("sudoku").sources["hub"].load(SourceRequest(None, 0, {}))


def test_hub_offline_names_local_alternative(monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")

    def offline(*args, **kwargs):
        raise OSError("We have no connection")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(
        SourceError, match="maze-30x30-hard-1k.*if offline.*--task maze-hard --source DIR"
    ):
        get_task("maze").sources["hub"].load(SourceRequest(None, 0, {}))


# ----------------------------------------------------------------------------- end to end


def _check_store(store_path: Path, task_name: str, groups: int, per_group: int):
    from trmkit.data.store import open_store

    task = get_task(task_name)
    store = open_store(store_path)
    train = store["train"]
    inputs, labels = train.load()
    assert len(train.group_names) == groups
    assert len(inputs) == groups * per_group
    transforms = train.transforms
    assert transforms.shape == (groups * per_group, task.augmenter.transform_size)
    grids_in = task.codec.decode_batch(inputs)
    grids_out = task.codec.decode_batch(labels)
    back_in = task.augmenter.invert_batch(transforms, grids_in)
    back_out = task.augmenter.invert_batch(transforms, grids_out)
    first = train.group_indices[:-1]
    # every variant of a group inverts to the group's original (its first, identity row)
    originals = np.repeat(np.arange(groups) * per_group, per_group)
    assert np.array_equal(back_in, grids_in[originals])
    assert np.array_equal(back_out, grids_out[originals])
    assert (transforms[first] == task.augmenter.identity()).all()
    return grids_in, grids_out


@needs_data
def test_build_sudoku_from_shared_copy(tmp_path: Path):
    from trmkit.data.build import build_dataset

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SUDOKU_1K, src / "train.csv.gz")
    build_dataset(
        get_task("sudoku"),
        tmp_path / "store",
        source=str(src),
        num_aug=2,
        options={"subsample": "20"},
        progress=False,
    )
    puzzles, solutions = _check_store(tmp_path / "store", "sudoku", 20, 3)
    geo = GEOMETRIES[9]
    assert valid_solutions(solutions, geo).all() and consistent(puzzles, solutions).all()


def test_build_generated_maze_and_small_sudoku(tmp_path: Path):
    from trmkit.data.build import build_dataset

    build_dataset(
        get_task("maze-tiny"),
        tmp_path / "maze",
        options={"count": "4", "test_count": "2"},
        progress=False,
    )
    mazes, solved = _check_store(tmp_path / "maze", "maze-tiny", 4, 8)
    assert all(path_checks(m, s) == (True, True) for m, s in zip(mazes, solved, strict=True))
    build_dataset(
        get_task("sudoku-6x6"),
        tmp_path / "s6",
        num_aug=3,
        options={"count": "5", "test_count": "2"},
        progress=False,
    )
    puzzles, solutions = _check_store(tmp_path / "s6", "sudoku-6x6", 5, 4)
    assert valid_solutions(solutions, GEOMETRIES[6]).all()
    assert consistent(puzzles, solutions).all()


def _cli(*args: str):
    from click.testing import CliRunner

    from trmkit.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@needs_data
def test_cli_build_and_info_from_shared_copy(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SUDOKU_1K, src / "train.csv.gz")
    out = tmp_path / "store"
    result = _cli(
        "build",
        "--task",
        "sudoku",
        "--source",
        str(src),
        "--num-aug",
        "2",
        "--out",
        str(out),
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    info = _cli("data", "info", str(out))
    assert info.exit_code == 0, info.output
    assert "sudoku-extreme" in info.output and "3,000" in info.output
    assert ". . . | 7 . 2 | . . 5" in info.output  # rendered with box separators


def test_cli_build_generators_and_bad_input(tmp_path: Path):
    maze = _cli(
        "build",
        "--task",
        "maze",
        "-o",
        "count=2",
        "-o",
        "test_count=1",
        "--out",
        str(tmp_path / "maze"),
        "--no-progress",
    )
    assert maze.exit_code == 0, maze.output
    info = _cli("data", "info", str(tmp_path / "maze"))
    assert "maze-hard" in info.output and "16" in info.output  # 2 mazes x 8 dihedral copies
    sudoku = _cli(
        "build",
        "--task",
        "sudoku-4x4",
        "-o",
        "count=3",
        "-o",
        "test_count=2",
        "--out",
        str(tmp_path / "s4"),
        "--no-progress",
    )
    assert sudoku.exit_code == 0, sudoku.output
    bad = write(tmp_path / "train.csv", [f"x,{Q[:5]}x{Q[6:]},{A},"])
    failed = _cli(
        "build",
        "--task",
        "sudoku",
        "--source",
        str(bad),
        "--out",
        str(tmp_path / "bad"),
        "--no-progress",
    )
    assert failed.exit_code != 0
    assert f"{bad}, line 2: question has illegal character 'x'" in failed.output
    assert "Traceback" not in failed.output and not (tmp_path / "bad").exists()


@needs_data
def test_maze_store_labels_score_perfectly(tmp_path: Path):
    from trmkit.data.build import build_dataset
    from trmkit.data.store import open_store
    from trmkit.task import EvalContext, PredictionBatch

    task = get_task("maze")
    build_dataset(
        task,
        tmp_path / "m",
        source=str(MAZE_DIR),
        num_aug=7,
        options={"subsample": "2"},
        progress=False,
    )
    for name in ("train", "test"):
        split = open_store(tmp_path / "m")[name]
        inputs, labels = split.row_range(0, 16)
        context = EvalContext(
            codec=task.codec,
            augmenter=task.augmenter,
            group_names=split.group_names,
            puzzle_group=split.puzzle_group,
            transforms=np.asarray(split.transforms),
        )
        run = task.evaluator.start(context)
        index = np.arange(16)  # one example per puzzle
        run.update(PredictionBatch(inputs, labels, labels, index, np.zeros(16)))
        metrics = run.finish()
        assert metrics["count"] == 16
        for key in ("exact_accuracy", "token_accuracy", "valid_path_rate", "shortest_path_rate"):
            assert metrics[key] == 1.0, (name, key)
