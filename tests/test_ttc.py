"""Test-time compute (trmkit.inference): S = 1 equals the plain evaluation, seeds are
deterministic, augmented samples are inverted before they vote, each halting policy and
selection rule does what docs/test-time-compute.md says, and bad options are one line."""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tiny_training import build_tiny_data, one_thread, tiny_trainer

from trmkit import load, plugins
from trmkit.cli import cli
from trmkit.data.loader import EvalLoader
from trmkit.data.store import open_store
from trmkit.errors import OptionError
from trmkit.evaluation import evaluate
from trmkit.inference.engine import Record, RowBatch, check_policy, decide, record, stop_steps
from trmkit.inference.policy import HaltPolicy, InferencePolicy
from trmkit.inference.samples import INVALID, draw_transforms, to_row_frame
from trmkit.inference.sweep import default_grid, run_sweep
from trmkit.models.protocol import StepResult
from trmkit.models.rollout import inference_depth, rollout
from trmkit.solve import solve


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    before = one_thread()
    tmp = tmp_path_factory.mktemp("ttc")
    data = build_tiny_data(tmp / "data")
    tiny_trainer(tmp, data, overrides=["train.epochs=3"]).run()
    yield tmp / "run", data
    torch.set_num_threads(before)


def _split(run):
    run_dir, data = run
    bundle = load(run_dir)
    task = plugins.get_task("sudoku-4x4")
    return bundle, task, open_store(data, task).split("test")


# ----------------------------------------------------------------- S = 1 is the plain path
def test_one_sample_equals_a_direct_rollout(run):
    bundle, task, split = _split(run)
    model = bundle.model.eval()
    k = 5
    exact = np.zeros(k)
    count = 0
    with inference_depth(model, k):
        for batch in EvalLoader(split, 16):
            steps = []
            model_batch = {
                key: torch.as_tensor(batch[key])
                for key in ("inputs", "labels", "puzzle_identifiers")
            }
            rollout(model, model_batch, k, on_step=lambda v, out=steps: out.append(v.preds.numpy()))
            labels = np.asarray(batch["labels"])
            keep = np.asarray(batch["puzzle_index"]) >= 0
            count += int(keep.sum())
            mask = labels != -100
            for s, preds in enumerate(steps):
                exact[s] += int((((preds == labels) | ~mask).all(-1) & keep).sum())
    report = evaluate(model, split, task, batch_size=10, policy=InferencePolicy(steps=k))
    assert report.metrics["count"] == count
    assert [r["exact_accuracy"] for r in report.per_step] == pytest.approx(list(exact / count))
    assert report.metrics["forward_passes"] == pytest.approx(k)
    # S = 1 ignores the selection rule, and the default policy is the old call
    for select in ("q", "converged", "valid"):
        other = evaluate(
            model, split, task, batch_size=10, policy=InferencePolicy(steps=k, select=select)
        )
        assert other.metrics["exact_accuracy"] == report.metrics["exact_accuracy"]
    old_style = evaluate(model, split, task, batch_size=10, steps=k)
    assert old_style.metrics == report.metrics | {"seconds": old_style.metrics["seconds"]}


def test_noise_leaves_sample_zero_exact_and_is_seeded(run):
    bundle, task, split = _split(run)
    model = bundle.model.eval()
    batch = next(iter(EvalLoader(split, 8)))
    rows = RowBatch(
        np.asarray(batch["inputs"]),
        np.asarray(batch["puzzle_identifiers"]),
        np.asarray(batch["example_index"]),
    )
    plain = record(model, rows, InferencePolicy(), task, depth=3)

    def noisy(seed):
        return record(
            model,
            rows,
            InferencePolicy(samples=3, augment=False, noise=0.5, seed=seed),
            task,
            depth=3,
        )

    a, b, c = noisy(1), noisy(1), noisy(2)
    np.testing.assert_array_equal(a.preds[:, 0], plain.preds[:, 0])
    np.testing.assert_allclose(a.q[:, 0], plain.q[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(a.q, b.q)  # same seed, same trajectories
    assert not np.array_equal(a.q[:, 1:], c.q[:, 1:])  # another seed, other noise
    assert not np.allclose(a.q[:, 1], a.q[:, 0])  # the noise reaches the recursion
    # the model is exact again afterwards
    again = record(model, rows, InferencePolicy(), task, depth=3)
    np.testing.assert_array_equal(again.q, plain.q)


def test_sampled_evaluation_is_deterministic(run):
    bundle, task, split = _split(run)
    policy = InferencePolicy(samples=4, noise=0.2, seed=3, select="vote")
    one = evaluate(bundle.model, split, task, batch_size=16, policy=policy).metrics
    two = evaluate(bundle.model, split, task, batch_size=16, policy=policy).metrics
    for key in ("exact_accuracy", "accuracy", "forward_passes", "valid_solution_rate"):
        assert one[key] == two[key]
    assert one["forward_passes"] == pytest.approx(4 * 3)


# ------------------------------------------------------------------ augmentation inversion
class _EchoModel(torch.nn.Module):
    """Predicts its own input tokens, with q = 0.1 x step: an 'answer' that is equivariant
    under every augmentation, so mapped back every sample must agree with sample 0."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.halt_max_steps = 3

    def set_halt_max_steps(self, steps):
        self.halt_max_steps = steps

    def initial_carry(self, batch):
        return 0

    def forward(self, carry, batch):
        q = torch.full((batch["inputs"].shape[0],), 0.1 * (carry + 1))
        return StepResult(
            carry + 1,
            torch.zeros(()),
            {},
            {"preds": batch["inputs"].long(), "q_halt_logits": q},
            torch.tensor(False),
        )


def test_augmented_samples_are_inverted_before_they_vote(run):
    _, task, split = _split(run)
    batch = next(iter(EvalLoader(split, 8)))
    inputs = np.asarray(batch["inputs"])
    rows = RowBatch(inputs, np.zeros(len(inputs), np.int64), np.arange(len(inputs)))
    rec = record(_EchoModel(), rows, InferencePolicy(samples=4, select="vote"), task, depth=2)
    # the raw (sample-frame) inputs differ from the row's, the mapped-back answers do not
    for s in range(4):
        np.testing.assert_array_equal(rec.preds[-1, s], inputs)
    d = decide(rec, HaltPolicy(), "vote")
    assert (d.votes == 4).all()
    np.testing.assert_array_equal(d.preds, inputs)


def test_to_row_frame_inverts_sudoku_transforms(run):
    _, task, split = _split(run)
    labels = np.asarray(next(iter(EvalLoader(split, 8)))["labels"])
    grids = [np.asarray(task.codec.decode(row)) for row in labels]
    t = draw_transforms(task.augmenter, grids, np.arange(len(grids)), 3, seed=0)
    for j in range(3):
        moved = np.stack(
            [task.codec.encode(task.augmenter.apply(t[j, b], g)) for b, g in enumerate(grids)]
        )
        assert not np.array_equal(moved, labels)
        np.testing.assert_array_equal(to_row_frame(task.codec, task.augmenter, t[j], moved), labels)


@pytest.mark.parametrize("task_name", ["sudoku-4x4", "sudoku-6x6", "maze-11x11"])
def test_sample_draws_are_nested_distinct_and_not_identity(task_name):
    """The sweep replays `--samples S` as the first S of a larger recording: the first S - 1
    transforms of a row must not depend on how many are drawn."""
    from trmkit.testing import sample_puzzles

    task = plugins.get_task(task_name)
    grids = [np.asarray(ex.input) for p in sample_puzzles(task, 4) for ex in (*p.train, *p.test)][
        :4
    ]
    keys = np.arange(len(grids)) * 7 + 3
    small = draw_transforms(task.augmenter, grids, keys, 3, seed=5)
    large = draw_transforms(task.augmenter, grids, keys, 15, seed=5)
    np.testing.assert_array_equal(small, large[:3])
    identity = np.asarray(task.augmenter.identity())
    for b in range(len(grids)):
        firsts = [tuple(t) for t in large[:6, b]]
        assert len(set(firsts)) == 6 and identity.tolist() not in [list(t) for t in firsts]


# ------------------------------------------------------------ halting policies, selections
def _record(answers: list[list[int]], q: list[list[float]]) -> Record:
    """A record of one row: answers[k][s] is a 1-token answer, q[k][s] its logit."""
    preds = np.array(answers, dtype=np.int16)[:, :, None, None]
    qq = np.array(q, dtype=np.float32)[:, :, None]
    same = np.zeros(qq.shape, dtype=bool)
    same[1:] = (preds[1:] == preds[:-1]).all(-1)
    return Record(preds=preds, q=qq, same=same, inputs=np.zeros((1, 1)), seconds=0.0)


def test_halting_policies():
    # one sample over 5 steps: answers 1 2 2 2 3, q fires first at step 2
    rec = _record([[1], [2], [2], [2], [3]], [[-1], [0.5], [-2], [3], [4]])
    fixed, q, conv1, conv2 = (
        HaltPolicy(),
        HaltPolicy("q"),
        HaltPolicy.parse("converged:1"),
        HaltPolicy.parse("converged"),
    )
    assert stop_steps(rec, fixed, 5, 1)[0].tolist() == [[5]]
    assert stop_steps(rec, fixed, 3, 1)[0].tolist() == [[3]]
    assert stop_steps(rec, q, 5, 1)[0].tolist() == [[2]]
    assert stop_steps(rec, conv1, 5, 1)[0].tolist() == [[3]]  # 2 == 2 at step 3
    assert stop_steps(rec, conv2, 5, 1)[0].tolist() == [[4]]  # 2 == 2 == 2 at step 4
    assert decide(rec, conv2, "q").preds.tolist() == [[2]]
    never = _record([[1], [2], [3]], [[-1], [-1], [-1]])
    assert stop_steps(never, q, 3, 1)[0].tolist() == [[3]]  # never fires: the depth
    assert stop_steps(never, conv1, 3, 1)[0].tolist() == [[3]]


def test_selection_rules():
    # 4 samples, 2 steps; final answers 7, 7, 5, 9 with confidences rising to sample 3
    rec = _record([[7, 1, 5, 9], [7, 7, 5, 9]], [[0, 0, 0, 0], [0.0, 1.0, 2.0, 3.0]])
    assert decide(rec, HaltPolicy(), "q").preds.tolist() == [[9]]
    assert decide(rec, HaltPolicy(), "vote").preds.tolist() == [[7]]
    # converged: samples 0, 2 and 3 have kept their answer, 3 is the most confident
    assert decide(rec, HaltPolicy(), "converged").preds.tolist() == [[9]]
    # valid: only 5 passes the checker, although it has one vote
    d = decide(rec, HaltPolicy(), "valid", checker=lambda row, a: int(a[0]) == 5)
    assert d.preds.tolist() == [[5]]
    # no answer passes: falls back to the vote
    assert decide(rec, HaltPolicy(), "valid", checker=lambda row, a: False).preds.tolist() == [[7]]
    # a vote tie goes to the higher mean confidence: 5,5 (conf 2, 2) beats 7,7 (0, 1)
    tie = _record([[7, 7, 5, 5]], [[0.0, 1.0, 2.0, 2.0]])
    assert decide(tie, HaltPolicy(), "vote").preds.tolist() == [[5]]
    # undecodable answers never win a vote
    bad = _record([[INVALID, INVALID, 4]], [[5.0, 5.0, -3.0]])
    assert decide(bad, HaltPolicy(), "vote").preds.tolist() == [[4]]
    # fewer samples and less depth replay a prefix of the record
    assert decide(rec, HaltPolicy(), "q", samples=2, depth=1).preds.tolist() == [[7]]


def test_checkers_of_the_builtin_tasks(run):
    _, task, split = _split(run)
    batch = next(iter(EvalLoader(split, 4)))
    for inp, lab in zip(np.asarray(batch["inputs"]), np.asarray(batch["labels"]), strict=True):
        puzzle, answer = task.codec.decode(inp), task.codec.decode(lab)
        assert task.evaluator.check_answer(puzzle, answer)
        broken = answer.copy()
        broken[0, 0] = broken[0, 1]
        assert not task.evaluator.check_answer(puzzle, broken)
    maze = plugins.get_task("maze")
    from trmkit_maze.grid import shortest_path

    grid = np.full((5, 5), 1)
    grid[0, 0], grid[4, 4] = 2, 3
    solved = shortest_path(grid)
    assert maze.evaluator.check_answer(grid, solved)
    longer = solved.copy()
    longer[2, 0] = 4 if longer[2, 0] == 1 else 1  # a stray or a missing path cell
    assert not maze.evaluator.check_answer(grid, longer)


# ------------------------------------------------------------------------------ the sweep
def test_sweep_points_match_plain_evaluation(run, tmp_path):
    bundle, task, split = _split(run)
    grid = attrs.evolve(
        default_grid(bundle.model, task, False, depths=(1, 3), samples=(1, 2)), sources=("augment",)
    )
    report = run_sweep(bundle.model, split, task, grid, batch_size=16)
    plain = evaluate(bundle.model, split, task, batch_size=16).metrics
    assert report.baseline()["exact_accuracy"] == pytest.approx(plain["exact_accuracy"])
    assert report.baseline()["forward_passes"] == pytest.approx(3)
    sampled = evaluate(
        bundle.model, split, task, batch_size=16, policy=InferencePolicy(samples=2, select="q")
    ).metrics
    point = next(
        p
        for p in report.points
        if p["samples"] == 2 and p["depth"] == 3 and p["halt"] == "fixed" and p["select"] == "q"
    )
    assert point["exact_accuracy"] == pytest.approx(sampled["exact_accuracy"])
    written = report.write(tmp_path)
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["baseline"]["samples"] == 1 and len(data["points"]) == len(report.points)
    assert written[0].name == "sweep.json"


def test_depth_only_sweep_records_once(run, monkeypatch):
    """With one sample every diversity source runs the same exact trajectory."""
    import trmkit.inference.sweep as sweep_mod

    bundle, task, split = _split(run)
    calls = []
    real = sweep_mod.record
    monkeypatch.setattr(sweep_mod, "record", lambda *a, **k: calls.append(1) or real(*a, **k))
    grid = attrs.evolve(
        default_grid(bundle.model, task, False, depths=(1, 2), samples=(1,)),
        sources=("augment", "noise"),
    )
    report = run_sweep(bundle.model, split, task, grid, batch_size=1024)
    assert len(calls) == 1 and report.config["sources"] == ["augment"]
    assert {p["depth"] for p in report.points} == {1, 2}


def test_solve_with_samples(run):
    bundle, task, _ = _split(run)
    puzzles = task.parse_puzzles("1..4.3....2..1..")
    [plain] = solve(bundle, task, puzzles)
    [same] = solve(bundle, task, puzzles, policy=InferencePolicy(samples=1, select="q"))
    np.testing.assert_array_equal(plain.grid, same.grid)
    [wide] = solve(
        bundle,
        task,
        puzzles,
        policy=InferencePolicy(samples=4, select="valid", halt=HaltPolicy("converged")),
    )
    assert wide.grid.shape == (4, 4) and 1 <= wide.steps <= 3


# ---------------------------------------------------------------------------- bad options
@pytest.mark.parametrize(
    "args, needle",
    [
        (["--samples", "0"], "--samples 0"),
        (["--samples", "-3"], "--samples -3"),
        (["--steps", "0"], "--steps 0"),
        (["--noise", "nan"], "--noise nan"),
        (["--noise", "inf"], "--noise inf"),
        (["--noise", "-1"], "--noise -1"),
        (["--halt", "converged:0"], "patience"),
        (["--halt", "soon"], "--halt 'soon'"),
        (["--halt", "q:3"], "only converged"),
        (["--samples", "4", "--no-augment"], "--noise SIGMA"),
    ],
)
def test_bad_options_are_one_line(run, tmp_path, args, needle):
    run_dir, _ = run
    for command in (
        ["eval", str(run_dir), "--out", str(tmp_path / "ev")],
        ["solve", str(run_dir), "1..4.3....2..1.."],
    ):
        result = CliRunner().invoke(cli, [*command, *args])
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "ev").exists()


def test_sweep_sources_bad_name_is_one_line(run, tmp_path):
    run_dir, _ = run
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(run_dir),
            "--out",
            str(tmp_path / "ev"),
            "--sweep",
            "--sweep-sources",
            "dropout",
        ],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "--sweep-sources 'dropout'" in lines[0], result.output
    assert not (tmp_path / "ev").exists()


def test_select_valid_needs_a_checker(run):
    bundle, task, _ = _split(run)

    class Plain:
        def start(self, context):
            raise AssertionError

    unchecked = attrs.evolve(task, evaluator=Plain())
    with pytest.raises(OptionError, match="declares no answer checker"):
        check_policy(InferencePolicy(select="valid"), bundle.model, unchecked, False)
    check_policy(InferencePolicy(select="valid"), bundle.model, task, False)
    with pytest.raises(OptionError, match="per-variant puzzle ids"):
        check_policy(InferencePolicy(samples=2), bundle.model, task, True)
    with pytest.raises(OptionError, match="cannot perturb"):
        check_policy(InferencePolicy(noise=0.1), _EchoModel(), task, False)


def test_pareto_front_keeps_only_points_nothing_beats():
    from trmkit.reports import pareto_front

    pts = [
        {"forward_passes": f, "exact_accuracy": a}
        for f, a in [(8, 0.94), (1, 0.68), (4, 0.94), (16, 0.99), (2, 0.90), (32, 0.99), (16, 0.5)]
    ]
    front = pareto_front(pts)
    assert [(p["forward_passes"], p["exact_accuracy"]) for p in front] == [
        (1, 0.68),
        (2, 0.90),
        (4, 0.94),
        (16, 0.99),
    ]
