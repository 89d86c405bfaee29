"""The extension points TRM's successors need, used from outside trmkit (docs/engine.md,
"Extension points"): an optimiser and a per-step loss registered by a plugin, a schedule by
training progress (with exact resume), and a core's per-row auxiliary outputs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tiny_training import build_tiny_data, one_thread, tiny_model_config, tiny_trainer

from trmkit import plugins
from trmkit.batch import IGNORE_LABEL_ID
from trmkit.config import OptimSection, load_recipe
from trmkit.errors import ConfigError, UnknownNameError
from trmkit.hookspecs import hookimpl
from trmkit.models import build_model
from trmkit.models.act import ACTModel
from trmkit.models.losses import ACTStepLoss, StepView
from trmkit.models.protocol import ProgressAware
from trmkit.models.schedule import schedule_pieces
from trmkit.models.trm import TRMConfig, TRMCore
from trmkit.training.optim import SparseSignSGD, build_optimizers


class HalvingLoss(ACTStepLoss):
    """Step t weighted 0.5^(t-1), no halting loss (a DIS-like method)."""

    def weight(self, view: StepView) -> torch.Tensor:
        return 0.5 ** (view.steps.to(torch.float32) - 1)


class PlainSGD:
    def build(self, named, optim):
        return [torch.optim.SGD([p for _, p in named], lr=0.0)]


class _MethodPlugin:
    @staticmethod
    @hookimpl
    def register_components(register):
        register("step_loss", "halving", HalvingLoss(halt_loss=False, continue_loss=False))
        register("optimizer", "plain_sgd", PlainSGD())


@pytest.fixture
def method_plugin():
    plugins.pm.register(_MethodPlugin, name="method-test")
    plugins.reset()
    yield
    plugins.pm.unregister(name="method-test")
    plugins.reset()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    before = one_thread()
    yield build_tiny_data(tmp_path_factory.mktemp("data") / "store")
    torch.set_num_threads(before)


def _batch(seed: int = 0, rows: int = 3, length: int = 16, vocab: int = 6):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(1, vocab, (rows, length), generator=g)
    labels[0, :4] = IGNORE_LABEL_ID
    return {
        "inputs": torch.randint(1, vocab, (rows, length), generator=g),
        "labels": labels,
        "puzzle_identifiers": torch.zeros(rows, dtype=torch.int32),
    }


def _stablemax_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row: mean over valid tokens of -log(s(x_label) / sum s(x)), by the formula."""
    x = logits.double()
    s = torch.where(x >= 0, x + 1.0, 1.0 / (1.0 - x))
    out = []
    for row in range(labels.shape[0]):
        terms = [
            -math.log(s[row, i, labels[row, i]].item() / s[row, i].sum().item())
            for i in range(labels.shape[1])
            if labels[row, i] != IGNORE_LABEL_ID
        ]
        out.append(sum(terms) / len(terms))
    return torch.tensor(out, dtype=torch.float64)


def test_plugin_step_loss_weights_steps_and_drops_halting(method_plugin):
    torch.manual_seed(0)
    cfg = tiny_model_config(seq_len=16, vocab_size=6, halt_max_steps=3, step_loss="halving")
    model = build_model("trm", cfg).eval()
    batch = _batch()
    carry = model.initial_carry(batch)
    for step in (1, 2):
        result = model(carry, batch)
        carry = result.carry
        nll = _stablemax_nll(result.outputs["logits"], batch["labels"])
        expected = 0.5 ** (step - 1) * nll.sum().item()
        assert result.loss.item() == pytest.approx(expected, rel=1e-5)
        assert result.metrics["q_halt_loss"].item() == 0.0
        assert result.metrics["lm_loss"].item() == pytest.approx(expected, rel=1e-5)


def test_unknown_step_loss_names_the_field():
    cfg = tiny_model_config(seq_len=16, vocab_size=6, step_loss="nope")
    with pytest.raises(UnknownNameError, match=r"model.step_loss: unknown step_loss 'nope'"):
        build_model("trm", cfg)


def test_plugin_optimizer_by_name_keeps_the_sparse_table(method_plugin):
    torch.manual_seed(0)
    model = build_model("trm", tiny_model_config(seq_len=16, vocab_size=6))
    dense, sparse = build_optimizers(model, OptimSection(name="plain_sgd", lr=0.5))
    assert type(dense) is torch.optim.SGD and isinstance(sparse, SparseSignSGD)
    assert dense.param_groups[0]["base_lr"] == 0.5
    with pytest.raises(UnknownNameError, match=r"optim.name: unknown optimizer 'x'; known: .*"):
        build_optimizers(model, OptimSection(name="x"))


def test_no_decay_groups_and_muon_routing():
    torch.manual_seed(0)
    model = build_model("trm", tiny_model_config(seq_len=16, vocab_size=6))
    (adamw, _) = build_optimizers(model, OptimSection(name="adamw", no_decay=["bias"]))
    decayed, exempt = adamw.param_groups
    assert decayed["weight_decay"] == 1.0 and exempt["weight_decay"] == 0.0
    assert [p.shape for p in exempt["params"]] == [torch.Size([2])]  # the q_head bias
    muon, rest, _ = build_optimizers(model, OptimSection(name="muon"))
    names = {id(p): n for n, p in model.named_parameters()}
    on_muon = sorted(names[id(p)] for g in muon.param_groups for p in g["params"])
    assert on_muon and all(n.startswith("core.net.") for n in on_muon)
    assert all(p.ndim == 2 for g in muon.param_groups for p in g["params"])
    assert {names[id(p)] for g in rest.param_groups for p in g["params"]} >= {
        "core.heads.lm_head.weight",
        "core.heads.q_head.bias",
    }


def test_schedule_sets_the_depth_by_progress():
    cfg = TRMConfig(**tiny_model_config(schedule={"h_cycles": [[0.0, 1], [0.3, 2], [0.6, 3]]}))
    model = ACTModel(TRMCore(cfg))
    assert isinstance(model, ProgressAware)
    assert model.core.config.h_cycles == 3  # a built model is at p = 1: the final values
    model.set_progress(0.1)
    assert model.core.config.h_cycles == 1
    model.set_progress(0.9)
    assert model.core.config.h_cycles == 3
    pieces = schedule_pieces(cfg)
    shares = [(start, round(share, 9), c.h_cycles) for start, share, c in pieces]
    assert shares == [(0.0, 0.3, 1), (0.3, 0.3, 2), (0.6, 0.4, 3)]


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("{h_cycles = [[0.1, 1]]}", "must start at 0.0"),
        ("{h_cycles = [[0.0, 1], [0.0, 2]]}", "rise strictly"),
        ("{h_cycles = [[0.0, 1.5]]}", "expected an integer"),
        ("{h_cycles = [0.0, 1]}", r"expected \[\[fraction, value\]"),
        ("{depth = [[0.0, 1]]}", "model.schedule.depth: not a field"),
    ],
)
def test_schedule_errors_name_the_key(tmp_path, schedule, message):
    from tiny_training import write_recipe

    with pytest.raises(ConfigError, match=message) as info:
        load_recipe(write_recipe(tmp_path), [f"model.schedule={schedule}"])
    assert "model.schedule" in str(info.value) and "\n" not in str(info.value)


def test_unschedulable_field_is_refused_at_build():
    cfg = tiny_model_config(seq_len=16, vocab_size=6, schedule={"l_layers": [[0.0, 1]]})
    with pytest.raises(ConfigError, match="model.schedule.l_layers: not schedulable"):
        build_model("trm", cfg)


def test_schedule_follows_training_and_resumes_exactly(tmp_path, data):
    sched = ["model.schedule={h_cycles = [[0.0, 1], [0.5, 2], [0.75, 3]]}"]
    straight = tiny_trainer(tmp_path, data, run="straight", overrides=sched)
    straight.run()
    first = tiny_trainer(tmp_path, data, run="resumed", overrides=sched)
    first.run(until=4)
    del first
    second = tiny_trainer(tmp_path, data, run="resumed", overrides=sched, resume=True)
    second.run(until=5)  # step 5 runs at p = 4/8 = 0.5
    assert second.model.core.config.h_cycles == 2
    second.run()

    def losses(run):
        lines = (tmp_path / run / "metrics.jsonl").open()
        return [(r["step"], r["lm_loss"]) for r in map(json.loads, lines) if r["split"] == "train"]

    assert losses("resumed") == losses("straight")
    flat = tiny_trainer(tmp_path, data, run="flat")
    flat.run(until=2)
    assert losses("flat")[1] != losses("straight")[1]  # T = 1 early on changes the numbers


class ResidualCore(TRMCore):
    def forward(self, latents, data):
        new, logits, q_halt, q_continue = super().forward(latents, data)
        residual = (new["z"].float() - latents["z"].float()).flatten(1).norm(dim=1)
        return new, logits, q_halt, q_continue, {"z_residual": residual}


def test_core_aux_outputs_reach_the_step_result():
    torch.manual_seed(0)
    model = ACTModel(ResidualCore(TRMConfig(**tiny_model_config(seq_len=16, vocab_size=6))))
    batch = _batch()
    result = model(model.initial_carry(batch), batch)
    assert result.outputs["z_residual"].shape == (3,)
    assert result.outputs["z_residual"].dtype == torch.float32
    assert {"logits", "preds", "q_halt_logits", "q_continue_logits"} <= set(result.outputs)


def test_preflight_weighs_the_schedule():
    from trmkit.training.preflight import Machine, estimate

    machine = Machine(matmul_flops=1e9, available_bytes=None)
    base = tiny_model_config(seq_len=16, vocab_size=6)

    def flops(**fields):
        return estimate("trm", TRMConfig(**{**base, **fields}), 4, 10, machine)

    one, three = flops(h_cycles=1), flops(h_cycles=3)
    mixed = flops(schedule={"h_cycles": [[0.0, 1], [0.25, 3]]})
    assert one.step_flops < three.step_flops
    assert mixed.step_flops == round(0.25 * one.step_flops + 0.75 * three.step_flops)
    assert mixed.activation_bytes == max(one.activation_bytes, three.activation_bytes)
