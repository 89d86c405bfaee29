"""The training loop: a few steps then eval, and exact resume (bit-equal on CPU)."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_training import build_tiny_data, one_thread, tiny_trainer

from trmkit.checkpoint import latest_checkpoint, list_checkpoints, load_bundle
from trmkit.checkpoint.state import read_safetensors
from trmkit.training.rng import rng_state


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    before = one_thread()
    yield build_tiny_data(tmp_path_factory.mktemp("data") / "store")
    torch.set_num_threads(before)


def test_train_few_steps_then_eval(tmp_path, data):
    trainer = tiny_trainer(tmp_path, data)
    assert trainer.total_steps == 8  # int(2 epochs * 64 groups * 1 example / 16)
    assert trainer.eval_every == 4
    result = trainer.run()
    assert result.step == 8
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    train = [r for r in records if r["split"] == "train"]
    evals = [r for r in records if r["split"] == "eval"]
    assert [r["step"] for r in train] == list(range(1, 9))
    assert [r["step"] for r in evals] == [4, 8]
    # warmup 2 then constant: the lr of step 1 is base/2 (the official warmup is linear)
    assert train[0]["lr"] == pytest.approx(5e-4) and train[3]["lr"] == pytest.approx(1e-3)
    assert all(r["lm_loss"] > 0 for r in train)
    assert evals[-1]["count"] == 32
    assert 0.0 <= evals[-1]["accuracy"] <= 1.0
    assert [s for s, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [4, 8]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["recipe"]["model"]["hidden_size"] == 32 and config["total_steps"] == 8
    model, manifest = load_bundle(tmp_path / "run")
    assert manifest.step == 8 and manifest.task.name == "sudoku-4x4"
    assert manifest.dataset.vocab_size == 6 and manifest.dataset.seq_len == 16
    # the bundle loads the EMA weights by default, the raw ones on request
    ema = read_safetensors(latest_checkpoint(tmp_path / "run" / "checkpoints") / "ema.safetensors")
    name = next(iter(ema))
    assert torch.equal(model.state_dict()[name], ema[name])
    raw, _ = load_bundle(tmp_path / "run", weights="raw")
    assert not torch.equal(raw.state_dict()[name], ema[name])


def test_evaluation_does_not_perturb_training(tmp_path, data):
    """Evaluations (EMA swap, RNG save/restore) leave the training trajectory unchanged."""
    with_eval = tiny_trainer(tmp_path, data, run="a")
    with_eval.run()
    without = tiny_trainer(tmp_path, data, run="b", overrides=["train.eval_interval=0"])
    without.run()
    for (k, v), (k2, v2) in zip(
        with_eval.model.state_dict().items(), without.model.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(v, v2), k


def _losses(run_dir):
    return [
        (r["step"], r["lm_loss"], r["q_halt_loss"])
        for r in map(json.loads, (run_dir / "metrics.jsonl").open())
        if r["split"] == "train"
    ]


def test_resume_is_exact(tmp_path, data):
    """8 steps straight == 4 steps, stop, resume in a fresh trainer, 4 more steps."""
    straight = tiny_trainer(tmp_path, data, run="straight")
    straight.run()
    rng_straight = rng_state()

    first = tiny_trainer(tmp_path, data, run="resumed")
    first.run(until=4)
    assert first.step == 4
    del first
    second = tiny_trainer(tmp_path, data, run="resumed", resume=True)
    assert second.step == 4 and second.carry is not None
    second.run()
    rng_resumed = rng_state()

    # the random streams (ACT exploration) continue where they were
    assert torch.equal(rng_straight["torch"], rng_resumed["torch"])
    assert rng_straight["python"] == rng_resumed["python"]
    assert (rng_straight["numpy"][1] == rng_resumed["numpy"][1]).all()
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "straight")
    a = read_safetensors(tmp_path / "straight" / "checkpoints" / "step_8" / "model.safetensors")
    b = read_safetensors(tmp_path / "resumed" / "checkpoints" / "step_8" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for opt_a, opt_b in zip(straight.optimizers, second.optimizers, strict=True):
        for sa, sb in zip(opt_a.state.values(), opt_b.state.values(), strict=True):
            for key in sa:
                assert torch.equal(torch.as_tensor(sa[key]), torch.as_tensor(sb[key])), key
    for key, value in straight.ema.shadow.items():
        assert torch.equal(value, second.ema.shadow[key]), key


def test_existing_run_needs_resume(tmp_path, data):
    from trmkit.errors import TrmkitError

    tiny_trainer(tmp_path, data).run(until=4)
    with pytest.raises(TrmkitError, match="--resume"):
        tiny_trainer(tmp_path, data)


def test_resume_without_checkpoint_is_an_error(tmp_path, data):
    from trmkit.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        tiny_trainer(tmp_path, data, resume=True)


def test_resume_with_another_recipe_is_an_error(tmp_path, data):
    from trmkit.errors import ConfigError

    tiny_trainer(tmp_path, data).run(until=4)
    with pytest.raises(ConfigError, match="optim.lr is 0.002"):
        tiny_trainer(tmp_path, data, resume=True, overrides=["optim.lr=2e-3"])


def test_resume_is_exact_with_adamw(tmp_path, data):
    """AdamW (optim.name) with a no-decay group checkpoints and resumes bit-exactly."""
    opts = ["optim.name=adamw", 'optim.no_decay=["bias"]']
    straight = tiny_trainer(tmp_path, data, run="straight", overrides=opts)
    straight.run()
    first = tiny_trainer(tmp_path, data, run="resumed", overrides=opts)
    first.run(until=4)
    del first
    second = tiny_trainer(tmp_path, data, run="resumed", overrides=opts, resume=True)
    second.run()
    assert type(second.optimizers[0]) is torch.optim.AdamW
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "straight")
    for opt_a, opt_b in zip(straight.optimizers, second.optimizers, strict=True):
        assert len(opt_a.state) == len(opt_b.state)
        for sa, sb in zip(opt_a.state.values(), opt_b.state.values(), strict=True):
            for key in sa:
                assert torch.equal(torch.as_tensor(sa[key]), torch.as_tensor(sb[key])), key


def test_time_budget_ends_the_run_evaluated_and_checkpointed(tmp_path, data):
    """train.max_minutes: the first step past the budget is the last (evaluated, saved,
    a stop record); compare counts such a run as finished there."""
    from trmkit.comparison.runner import end_step, run_state

    # 1e-6 minutes (60 us) are spent by the first step
    trainer = tiny_trainer(tmp_path, data, overrides=["train.max_minutes=1e-6"])
    result = trainer.run()
    assert result.step == 1 < result.total_steps == 8
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert records[-1] == {"step": 1, "split": "stop", "minutes": 1e-6}
    assert any(r["split"] == "eval" and r["step"] == 1 for r in records)
    assert (tmp_path / "run" / "checkpoints" / "step_1").is_dir()
    assert end_step(tmp_path / "run") == 1
    assert run_state(tmp_path / "run") == ("finished", 1)


def test_time_budget_spent_by_rank_zero_clock():
    from trmkit.config import TrainSection
    from trmkit.training.intervals import TimeBudget

    now = [100.0]
    budget = TimeBudget.from_recipe(TrainSection(max_minutes=0.5), clock=lambda: now[0])
    now[0] = 129.9
    assert not budget.spent(torch.device("cpu"))
    now[0] = 130.0
    assert budget.spent(torch.device("cpu"))
    assert not TimeBudget.from_recipe(TrainSection(), clock=lambda: now[0]).spent(
        torch.device("cpu")
    )
