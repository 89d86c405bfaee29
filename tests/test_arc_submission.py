"""ARC Prize submissions: `trmkit solve --submission` writes every task and test input with
two attempts; `trmkit score` counts pass@1 and pass@2 per test input, averaged per task, as
the ARC Prize does (checked against hand counts and against `trmkit eval`'s own ARC/pass@K
metrics); bad submissions and solutions are one line naming the file, exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np
import pytest
from click.testing import CliRunner

from trmkit.cli import cli
from trmkit.errors import SubmissionError
from trmkit.inference.submission import check_submission, submission_of
from trmkit.task import Example, RawPuzzle
from trmkit_arc.submission import read_solutions, score_files, score_submission

A = [[1, 2], [3, 4]]
B1, B2 = [[5]], [[6, 6], [0, 6]]
C = [[7, 7, 7]]
SOLUTIONS = {"a": [A], "b": [B1, B2], "c": [C]}
WRONG = [[9]]


def _hand_submission():
    return {
        # a: only the second attempt is right -> pass@1 0, pass@2 1
        "a": [{"attempt_1": [[1, 2, 3, 4]], "attempt_2": A}],
        # b: input 1 right at once, input 2 never -> 0.5 and 0.5
        "b": [
            {"attempt_1": B1, "attempt_2": WRONG},
            {"attempt_1": WRONG, "attempt_2": [[6, 6], [6, 0]]},
        ],
        # c: same cells, other shape -> 0, 0
        "c": [{"attempt_1": [[7], [7], [7]], "attempt_2": [[7], [7], [7]]}],
    }


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_score_matches_hand_counts(tmp_path):
    solutions = {k: [np.array(g) for g in v] for k, v in SOLUTIONS.items()}
    score = score_submission(_hand_submission(), solutions, "s.json")
    assert score.pass_at_1 == pytest.approx((0 + 0.5 + 0) / 3)
    assert score.pass_at_2 == pytest.approx((1 + 0.5 + 0) / 3)
    assert score.tasks == 3 and score.test_inputs == 4
    assert score.per_task == {"a": (0.0, 1.0), "b": (0.5, 0.5), "c": (0.0, 0.0)}
    sub = _write(tmp_path / "submission.json", _hand_submission())
    sol = _write(tmp_path / "solutions.json", SOLUTIONS)
    result = CliRunner().invoke(cli, ["score", str(sub), str(sol), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["pass@1"] == pytest.approx(1 / 6) and data["pass@2"] == pytest.approx(0.5)


def test_solutions_in_every_layout_agree(tmp_path):
    kaggle = _write(tmp_path / "arc-agi_evaluation_solutions.json", SOLUTIONS)
    tasks = {
        k: {
            "train": [{"input": [[0]], "output": [[1]]}],
            "test": [{"input": [[0]], "output": g} for g in v],
        }
        for k, v in SOLUTIONS.items()
    }
    task_dict = _write(tmp_path / "tasks.json", tasks)
    folder = tmp_path / "folder"
    folder.mkdir()
    for k, t in tasks.items():
        _write(folder / f"{k}.json", t)
    layouts = [read_solutions(p) for p in (kaggle, task_dict, folder)]
    for other in layouts[1:]:
        assert list(other) == list(layouts[0])
        for k in other:
            assert all(np.array_equal(x, y) for x, y in zip(other[k], layouts[0][k], strict=True))


def test_eval_metrics_are_the_score_of_its_submission(tmp_path):
    """`trmkit eval`'s ARC/pass@1 and ARC/pass@2 equal the ARC Prize score of the
    submission.json the same evaluation writes (a case where the two differ)."""
    from test_arc_eval import A_OUT, B_OUT, _run

    metrics = _run(tmp_path, b_wrong_q=0.9, b_right_q=0.1).finish()
    assert metrics["ARC/pass@1"] == pytest.approx(0.25)
    assert metrics["ARC/pass@2"] == pytest.approx(0.75)
    solutions = _write(
        tmp_path / "solutions.json",
        {"taskA": [g.tolist() for g in A_OUT], "taskB": [B_OUT.tolist()]},
    )
    score = score_files(tmp_path / "submission.json", solutions)
    assert score.pass_at_1 == pytest.approx(metrics["ARC/pass@1"])
    assert score.pass_at_2 == pytest.approx(metrics["ARC/pass@2"])


def test_submission_of_holds_every_task_and_test_input():
    @attrs.define
    class Ans:
        puzzle: str
        query: int
        grid: np.ndarray
        attempts: list

    puzzles = [
        RawPuzzle("t1", train=[Example([[1]], [[1]])], test=[Example([[1]], [[1]])] * 2),
        RawPuzzle("t2", train=[Example([[1]], [[1]])], test=[Example([[1]], [[1]])]),
    ]
    answers = [
        Ans("t1", 0, np.array([[3]]), [np.array([[3]]), np.array([[4, 4]])]),
        Ans("t2", 0, np.zeros((0, 0), int), [np.zeros((0, 0), int)]),  # an empty crop
    ]
    sub = check_submission(submission_of(puzzles, answers), "x")
    assert sub == {
        "t1": [
            {"attempt_1": [[3]], "attempt_2": [[4, 4]]},
            {"attempt_1": [[0]], "attempt_2": [[0]]},  # no answer: present anyway
        ],
        "t2": [{"attempt_1": [[0]], "attempt_2": [[0]]}],
    }
    with pytest.raises(SubmissionError, match="given twice"):
        submission_of([puzzles[0], puzzles[0]], answers)


def _missing_task(sub):
    del sub["b"]
    return "submission.json: task b is missing"


def _missing_attempt(sub):
    del sub["b"][1]["attempt_2"]
    return "submission.json: task b, test input 2: attempt_2 is missing"


def _short(sub):
    sub["b"].pop()
    return "submission.json: task b has 1 test inputs, the solutions 2"


def _extra(sub):
    sub["zzz"] = sub["a"]
    return "submission.json: task zzz is not in the solutions"


def _colour(sub):
    sub["a"][0]["attempt_1"] = [[10]]
    return "submission.json: task a, test input 1 attempt_1: row 0 holds 10"


def _ragged(sub):
    sub["c"][0]["attempt_2"] = [[1, 2], [3]]
    return "submission.json: task c, test input 1 attempt_2: ragged grid"


def _not_json(sub):
    return None


@pytest.mark.parametrize(
    "damage", [_missing_task, _missing_attempt, _short, _extra, _colour, _ragged, _not_json]
)
def test_bad_submission_is_one_line(tmp_path, damage):
    sub = _hand_submission()
    culprit = damage(sub)
    path = tmp_path / "submission.json"
    if culprit is None:
        path.write_text('{"a": [')
        culprit = "submission.json: not a readable submission file"
    else:
        _write(path, sub)
    sol = _write(tmp_path / "solutions.json", SOLUTIONS)
    result = CliRunner().invoke(cli, ["score", str(path), str(sol)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert culprit in lines[0], lines[0]


def test_solutions_without_outputs_are_refused(tmp_path):
    task = {"train": [{"input": [[0]], "output": [[1]]}], "test": [{"input": [[0]]}]}
    sol = _write(tmp_path / "hidden.json", task)
    sub = _write(tmp_path / "s.json", {"hidden": [{"attempt_1": [[1]], "attempt_2": [[1]]}]})
    result = CliRunner().invoke(cli, ["score", str(sub), str(sol)])
    assert result.exit_code == 1
    assert "hidden.json: task hidden test input 1 has no output" in result.output


def test_solve_submission_left_out_when_solve_fails(tmp_path, monkeypatch):
    """A bad task file: one line, and no submission file (nor anything else) written."""
    from test_adapt import _tiny_arc_bundle

    bundle = _tiny_arc_bundle(tmp_path / "bundle")
    bad = _write(tmp_path / "bad.json", {"train": [], "test": [{"input": [[1]]}]})
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(
        cli, ["solve", str(bundle), str(bad), "--submission", str(tmp_path / "sub.json")]
    )
    assert result.exit_code == 1
    assert "bad.json: task bad: no demonstration pairs" in result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
