"""A third-party architecture registered through `register_models`, written against the
model contract only (no trmkit base class): train, resume exactly, eval, solve and
`trmkit model` all work with it. And a factory breaking the contract is refused."""

from __future__ import annotations

import json

import attrs
import pytest
import torch
from click.testing import CliRunner
from tiny_training import build_tiny_data, one_thread, write_recipe
from torch import nn

from trmkit import load, plugins
from trmkit.cli import cli
from trmkit.errors import PluginError
from trmkit.hookspecs import hookimpl
from trmkit.models import build_model
from trmkit.models.losses import act_loss
from trmkit.models.protocol import RecursiveModel, StepFlops, StepResult


@attrs.define(kw_only=True)
class TinyConfig:
    seq_len: int = 16
    vocab_size: int = 6
    num_puzzle_identifiers: int = 1
    batch_size: int = 16
    hidden_size: int = 16
    halt_max_steps: int = 2


@attrs.define
class TinyCarry:
    h: torch.Tensor
    steps: torch.Tensor
    halted: torch.Tensor
    data: dict[str, torch.Tensor]


class TinyRecurrent(nn.Module):
    """h <- tanh(W [embed(x), h]) once per supervision step; no puzzle embedding."""

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.config = cfg
        self._depth = cfg.halt_max_steps
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.cell = nn.Linear(2 * cfg.hidden_size, cfg.hidden_size)
        self.head = nn.Linear(cfg.hidden_size, cfg.vocab_size)
        self.q = nn.Linear(cfg.hidden_size, 2)

    @property
    def puzzle_emb(self):
        return None

    @property
    def halt_max_steps(self) -> int:
        return self._depth

    def set_halt_max_steps(self, steps: int) -> None:
        self._depth = steps

    def initial_carry(self, batch):
        b, s = batch["inputs"].shape
        dev = batch["inputs"].device
        return TinyCarry(
            torch.zeros(b, s, self.config.hidden_size, device=dev),
            torch.zeros(b, dtype=torch.int32, device=dev),
            torch.ones(b, dtype=torch.bool, device=dev),
            {k: torch.zeros_like(v) for k, v in batch.items()},
        )

    def forward(self, carry: TinyCarry, batch) -> StepResult:
        rows = carry.halted
        data = {
            k: torch.where(rows.view(-1, *[1] * (v.ndim - 1)), batch[k], v)
            for k, v in carry.data.items()
        }
        h = torch.where(rows[:, None, None], 0.0, carry.h)
        h = torch.tanh(self.cell(torch.cat([self.embed(data["inputs"].long()), h], -1)))
        logits = self.head(h)
        q = self.q(h.mean(1))
        steps = torch.where(rows, 0, carry.steps) + 1
        halted = steps >= self._depth
        loss, metrics, preds = act_loss(
            logits=logits,
            labels=data["labels"],
            q_halt=q[:, 0],
            q_continue=q[:, 1],
            target_q_continue=None,
            halted=halted,
            steps=steps,
            loss_type="softmax_cross_entropy",
        )
        outputs = {
            "logits": logits,
            "preds": preds,
            "q_halt_logits": q[:, 0],
            "q_continue_logits": q[:, 1],
        }
        return StepResult(
            TinyCarry(h.detach(), steps, halted, data), loss, metrics, outputs, halted.all()
        )

    def carry_state_dict(self, carry):
        return {
            "h": carry.h,
            "steps": carry.steps,
            "halted": carry.halted,
            **{f"data.{k}": v for k, v in carry.data.items()},
        }

    def load_carry_state_dict(self, state):
        return TinyCarry(
            state["h"],
            state["steps"],
            state["halted"],
            {k[5:]: v for k, v in state.items() if k.startswith("data.")},
        )

    def carry_to(self, carry, device):
        return TinyCarry(
            carry.h.to(device),
            carry.steps.to(device),
            carry.halted.to(device),
            {k: v.to(device) for k, v in carry.data.items()},
        )

    def compile_targets(self):
        return [self.cell]

    def step_flops(self, batch: int) -> StepFlops:
        d, s = self.config.hidden_size, self.config.seq_len
        forward = 2 * batch * s * (2 * d * d + d * self.config.vocab_size)
        return StepFlops(forward=forward, backward=2 * forward, extra_forward=0)


class TinyArchPlugin:
    @staticmethod
    @hookimpl
    def register_models(register):
        register("tiny-recurrent", TinyRecurrent, TinyConfig, "a third-party test model")
        register("not-a-model", lambda cfg: nn.Linear(2, 2), TinyConfig, "breaks the contract")


RECIPE_MODEL = """
[model]
name = "tiny-recurrent"
hidden_size = 16
halt_max_steps = 2
"""


@pytest.fixture(scope="module")
def arch(tmp_path_factory):
    before = one_thread()
    plugins.load_plugins()
    plugins.pm.register(TinyArchPlugin, name="tiny-arch")
    plugins.reset()
    tmp = tmp_path_factory.mktemp("arch")
    recipe_text = write_recipe(tmp).read_text()
    head, _, rest = recipe_text.partition("[model]")
    recipe = tmp / "tiny-arch.toml"
    recipe.write_text(head + RECIPE_MODEL + "\n[optim]" + rest.partition("[optim]")[2])
    try:
        yield tmp, recipe, build_tiny_data(tmp / "data")
    finally:
        plugins.pm.unregister(name="tiny-arch")
        plugins.reset()
        torch.set_num_threads(before)


def _train(*args):
    return CliRunner().invoke(cli, ["train", "--no-progress", *map(str, args)])


def _losses(run):
    return [
        (r["step"], r["lm_loss"])
        for r in map(json.loads, (run / "metrics.jsonl").open())
        if r["split"] == "train"
    ]


def test_contract_is_checked_when_built(arch):
    model = build_model("tiny-recurrent", {"seq_len": 16})
    assert isinstance(model, RecursiveModel)
    with pytest.raises(
        PluginError, match="plugin 'tiny-arch': model 'not-a-model' .*missing: config, puzzle_emb"
    ):
        build_model("not-a-model", {})


def test_train_resume_eval_solve_and_model_command(arch, tmp_path):
    _, recipe, data = arch
    straight = tmp_path / "straight"
    result = _train("--recipe", recipe, "--data", data, "--out", straight, "--max-steps", 6)
    assert result.exit_code == 0, result.output
    assert "final: exact accuracy" in result.output
    # stop at 4, resume to 6: the carry (the model's own state dict) makes it exact
    resumed = tmp_path / "resumed"
    assert (
        _train("--recipe", recipe, "--data", data, "--out", resumed, "--max-steps", 4).exit_code
        == 0
    )
    again = _train(
        "--recipe", recipe, "--data", data, "--out", resumed, "--max-steps", 6, "--resume"
    )
    assert again.exit_code == 0, again.output
    assert _losses(resumed) == _losses(straight)
    bundle = load(resumed)
    assert isinstance(bundle.model, TinyRecurrent) and bundle.manifest.model.name == (
        "tiny-recurrent"
    )
    # eval deeper than trained: the depth is set through the contract and restored
    out = tmp_path / "ev"
    result = CliRunner().invoke(cli, ["eval", str(resumed), "--out", str(out), "--steps", "3"])
    assert result.exit_code == 0, result.output
    assert len(json.loads((out / "per_step.json").read_text())["per_step"]) == 3
    result = CliRunner().invoke(cli, ["solve", str(resumed), "1..4.3....2..1..", "--json"])
    assert result.exit_code == 0, result.output
    [answer] = json.loads(result.output)
    assert len(answer["answer"]) == 4 and answer["steps"] == 2
    result = CliRunner().invoke(cli, ["model", "--recipe", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "trainable parameters: " in result.output
    assert "FLOPs per supervision step (batch 16)" in result.output
    assert "puzzle embedding table: none" in result.output
    # no StepMemory: the preflight's memory estimate is unknown, not a crash
    assert "activations per training step (batch 16, fp32): unknown" in result.output
