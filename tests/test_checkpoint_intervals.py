"""Checkpoints have their own interval (steps and wall-clock minutes), independent of
evaluation, so a killed run loses at most one interval."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_training import build_tiny_data, one_thread, tiny_trainer

from trmkit.checkpoint import list_checkpoints
from trmkit.config import TrainSection, load_recipe
from trmkit.errors import ConfigError
from trmkit.training.intervals import CheckpointClock


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    before = one_thread()
    yield build_tiny_data(tmp_path_factory.mktemp("data") / "store")
    torch.set_num_threads(before)


def _steps(trainer):
    return [step for step, _ in list_checkpoints(trainer.ckpt_root)]


NO_EVAL = ["train.eval_interval=0", "train.checkpoint_every_minutes=0", "train.checkpoint_keep=20"]


def test_step_interval_without_evaluation(tmp_path, data):
    trainer = tiny_trainer(tmp_path, data, overrides=[*NO_EVAL, "train.checkpoint_every_steps=3"])
    trainer.run()
    assert _steps(trainer) == [3, 6, 8]  # the last step always writes one
    records = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").open()]
    # checkpoints did not evaluate: only the final evaluation ran
    assert [r["step"] for r in records if r["split"] == "eval"] == [8]


def test_checkpoints_independent_of_evaluation(tmp_path, data):
    trainer = tiny_trainer(
        tmp_path,
        data,
        overrides=[
            "train.checkpoint_every_eval=false",
            "train.checkpoint_every_minutes=0",
            "train.checkpoint_every_steps=3",
            "train.log_every=4",
        ],
    )
    trainer.run()
    assert _steps(trainer) == [3, 6, 8]  # not at the evaluation of step 4
    records = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").open()]
    assert [r["step"] for r in records if r["split"] == "eval"] == [4, 8]
    # log windows close at every checkpoint, so a run resumed from one logs the same lines
    assert [r["step"] for r in records if r["split"] == "train"] == [3, 4, 6, 8]


def test_minutes_interval_follows_the_wall_clock(tmp_path, data):
    trainer = tiny_trainer(
        tmp_path,
        data,
        overrides=[
            "train.eval_interval=0",
            "train.checkpoint_keep=20",
            "train.checkpoint_every_minutes=2",
        ],
    )
    now = [0.0]

    def clock():
        now[0] += 60.0  # every reading is one minute later
        return now[0]

    trainer.checkpoints.clock = clock
    trainer.run()
    # marked at run start (2 min); step 1 reads 3 min (1 elapsed), step 2 reads 4 min: due,
    # marked again at 5 min; and so on: every second step
    assert _steps(trainer) == [2, 4, 6, 8]


def test_off_means_only_the_last_step(tmp_path, data):
    trainer = tiny_trainer(tmp_path, data, overrides=NO_EVAL)
    trainer.run()
    assert _steps(trainer) == [8]


def test_a_kill_loses_at_most_one_interval(tmp_path, data):
    """Stopped after step 7 (as if killed), the run resumes from step 6 and ends as an
    uninterrupted one."""
    overrides = [*NO_EVAL, "train.checkpoint_every_steps=2"]
    straight = tiny_trainer(tmp_path, data, run="straight", overrides=overrides)
    straight.run()
    killed = tiny_trainer(tmp_path, data, run="killed", overrides=overrides)
    killed.run(until=7)
    assert _steps(killed) == [2, 4, 6]
    resumed = tiny_trainer(tmp_path, data, run="killed", overrides=overrides, resume=True)
    assert resumed.step == 6 and 7 - resumed.step <= 2
    resumed.run()
    for (k, a), (_, b) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k


def test_intervals_may_change_on_resume(tmp_path, data):
    tiny_trainer(tmp_path, data, overrides=[*NO_EVAL, "train.checkpoint_every_steps=2"]).run(
        until=4
    )
    resumed = tiny_trainer(
        tmp_path, data, resume=True, overrides=[*NO_EVAL, "train.checkpoint_every_steps=3"]
    )
    resumed.run()
    assert _steps(resumed) == [2, 4, 6, 8]


def test_recipe_fields_are_typed_and_documented(tmp_path):
    from tiny_training import write_recipe

    recipe = load_recipe(
        write_recipe(tmp_path),
        ["train.checkpoint_every_steps=100", "train.checkpoint_every_minutes=2.5"],
    )
    assert recipe.train.checkpoint_every_steps == 100
    assert recipe.train.checkpoint_every_minutes == 2.5
    assert TrainSection().checkpoint_every_steps == 0
    assert TrainSection().checkpoint_every_minutes == 5.0
    with pytest.raises(ConfigError, match="train.checkpoint_every_steps: expected an integer"):
        load_recipe(write_recipe(tmp_path), ["train.checkpoint_every_steps=often"])
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "training.md").read_text()
    assert "checkpoint_every_steps" in doc and "checkpoint_every_minutes" in doc


@pytest.mark.parametrize(
    ("field", "value"), [("checkpoint_every_steps", -1), ("checkpoint_every_minutes", -0.5)]
)
def test_negative_intervals_are_one_line_errors(field, value):
    with pytest.raises(ConfigError, match=f"train.{field} is {value}; use"):
        CheckpointClock.from_recipe(TrainSection(**{field: value}))


class _Meta:
    total_groups = 64
    mean_puzzle_examples = 1.0


@pytest.mark.parametrize(
    ("train", "max_steps", "total", "eval_every"),
    [
        (TrainSection(epochs=2, eval_interval=1), None, 8, 4),
        (TrainSection(epochs=2, eval_interval=0), None, 8, 0),
        (TrainSection(epochs=2, max_steps=5), None, 5, 4 * 5000),
        (TrainSection(epochs=2, max_steps=5), 3, 3, 4 * 5000),  # --max-steps wins
        (TrainSection(epochs=2, max_steps=0, eval_interval=1), None, 8, 4),  # 0: use epochs
    ],
)
def test_step_plan(train, max_steps, total, eval_every):
    from trmkit.training.intervals import StepPlan

    plan = StepPlan.resolve(_Meta(), 16, train, max_steps)
    assert (plan.total_steps, plan.eval_every, plan.steps_per_epoch) == (total, eval_every, 4)


def test_a_zero_budget_is_a_one_line_error():
    from trmkit.training.intervals import StepPlan

    with pytest.raises(ConfigError, match="the step budget is 0 .*raise train.epochs"):
        StepPlan.resolve(_Meta(), 16, TrainSection(epochs=0))


_TWO_PROCESS_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from tiny_training import tiny_trainer
trainer = tiny_trainer(Path({tmp!r}), Path({data!r}), overrides=[
    "train.eval_interval=0", "train.checkpoint_keep=20", "train.checkpoint_every_minutes=1e-9"])
trainer.run()
"""


@pytest.mark.slow  # two interpreters and a gloo rendezvous
def test_two_processes_agree_on_time_checkpoints(tmp_path, data):
    """Rank 0's clock decides for every rank: with a near-zero interval both write every
    step (a disagreement would deadlock in the collective checkpoint write)."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "run.py"
    script.write_text(
        _TWO_PROCESS_SCRIPT.format(
            tests=str(Path(__file__).parent), tmp=str(tmp_path), data=str(data)
        )
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(port),
            str(script),
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [s for s, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == list(range(1, 9))
