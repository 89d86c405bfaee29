"""URM (docs/methods.md, "URM: Universal Reasoning Model"): the ConvSwiGLU by hand and its
FLOP count, the truncated backpropagation through loops (calls counted with hooks), the
paper configuration's parameter count, the recipes and `trmkit model`, training with Muon,
exact resume, eval and solve, and a ConvSwiGLU width that does not fit."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from tiny_training import TINY_RECIPE, build_tiny_data, one_thread

from trmkit import plugins
from trmkit.cli import cli
from trmkit.config import load_recipe
from trmkit.models import build_model, count_parameters
from trmkit.models.blocks import BlockDims
from trmkit.models.losses import ACTStepLoss
from trmkit_methods.urm import CONV_SWIGLU, ConvSwiGLU

TINY_URM = (
    TINY_RECIPE.replace('name = "trm"', 'name = "urm"')
    .replace("l_layers = 1\n", "num_layers = 1\n")
    .replace("[optim]\n", '[optim]\nname = "muon"\n')
)
"""tiny_training's recipe (8 steps) with the urm model (H = 2, L = 2, one layer, MLP-t mixer)
and Muon."""

SMALL = dict(seq_len=4, vocab_size=6, hidden_size=16, num_heads=2, puzzle_emb_ndim=0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    before = one_thread()
    yield build_tiny_data(tmp_path_factory.mktemp("data") / "store")
    torch.set_num_threads(before)


def _silu(v: float) -> float:
    return v / (1 + math.exp(-v))


def test_conv_swiglu_by_hand():
    """One live channel: gate row (1, 0), up row (0, 1), conv taps (w0, w1) = (0.5, 2) on
    positions (i-1, i), bias 0.25, down column (1, -3); every other channel has p = 0 and
    bias 0, so silu(c) = 0 there. p_i = silu(x_i0) x_i1; c_i = 2 p_i + 0.5 p_{i-1} + 0.25."""
    dims = BlockDims(hidden=2, length=3, expansion=4.0, heads=1, eps=1e-5, prefix_len=0)
    mlp = ConvSwiGLU(dims).double()
    inter = mlp.inter
    assert inter == 256  # round(4 * 2 * 2/3) = 5, rounded up to 256
    with torch.no_grad():
        for p in mlp.parameters():
            p.zero_()
        mlp.gate_up_proj.weight[0] = torch.tensor([1.0, 0.0])  # gate of channel 0
        mlp.gate_up_proj.weight[inter] = torch.tensor([0.0, 1.0])  # up of channel 0
        mlp.dwconv.weight[0, 0] = torch.tensor([0.5, 2.0])
        mlp.dwconv.bias[0] = 0.25
        mlp.down_proj.weight[:, 0] = torch.tensor([1.0, -3.0])
    x = torch.tensor([[[1.0, 2.0], [0.0, 3.0], [-1.0, 1.0]]], dtype=torch.float64)
    p = [_silu(1.0) * 2.0, _silu(0.0) * 3.0, _silu(-1.0) * 1.0]
    c = [2 * p[0] + 0.25, 2 * p[1] + 0.5 * p[0] + 0.25, 2 * p[2] + 0.5 * p[1] + 0.25]
    want = torch.tensor([[[_silu(v), -3 * _silu(v)] for v in c]], dtype=torch.float64)
    assert torch.allclose(mlp(x), want, rtol=0, atol=1e-15)
    # causal: changing the last position leaves the first two alone
    y = x.clone()
    y[0, 2] = torch.tensor([5.0, -7.0])
    assert torch.equal(mlp(y)[0, :2], mlp(x)[0, :2])


def test_conv_swiglu_is_the_truncated_padded_conv1d():
    """Against torch's Conv1d (padding 1 both sides, the first L outputs kept), random weights."""
    torch.manual_seed(0)
    dims = BlockDims(hidden=8, length=5, expansion=2.0, heads=1, eps=1e-5, prefix_len=1)
    mlp = ConvSwiGLU(dims).double()
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    gate, up = (x @ mlp.gate_up_proj.weight.T).chunk(2, dim=-1)
    conv = F.conv1d(
        (F.silu(gate) * up).transpose(1, 2),
        mlp.dwconv.weight,
        mlp.dwconv.bias,
        padding=1,
        groups=mlp.inter,
    )[..., :5]
    want = F.silu(conv).transpose(1, 2) @ mlp.down_proj.weight.T
    assert torch.allclose(mlp(x), want, rtol=1e-12, atol=1e-12)


def test_conv_swiglu_flops_and_memory_by_hand():
    d = BlockDims(hidden=16, length=5, expansion=4.0, heads=2, eps=1e-5, prefix_len=1)
    # I = round(4 * 16 * 2/3) = 43 -> 256. gate/up 2*5*16*512 + down 2*5*256*16 = 6*5*16*256
    # = 122880; the conv: 2 multiply-adds per output = 4 FLOPs x 5*256 outputs = 5120
    assert CONV_SWIGLU.flops(d) == 122880 + 5120
    # input 16 + gate/up 512 + product, shifted product, conv output, SiLU output 4*256
    assert CONV_SWIGLU.activation_floats(d) == 5 * (16 + 512 + 4 * 256)
    assert plugins.component("mlp", "conv_swiglu", "model.mlp").component is CONV_SWIGLU


def test_truncated_backprop_through_loops():
    """H = 3, L = 2: 4 stack calls without a graph, then 2 in it; every call gets the same
    input embedding; gradients reach the parameters only through the last 2 calls."""
    torch.manual_seed(0)
    model = build_model("urm", {**SMALL, "h_cycles": 3, "l_cycles": 2, "num_layers": 1})
    net = model.core.net
    assert [(n, a, b) for n, a, b in model.core.stack_calls()] == [(net, 4, 2)]
    calls = []

    def hook(module, args, out):
        calls.append((torch.is_grad_enabled(), args[1], out))
        if out.requires_grad:
            out.retain_grad()

    handle = net.register_forward_hook(hook)
    batch = {
        "inputs": torch.randint(1, 6, (2, 4)),
        "labels": torch.randint(1, 6, (2, 4)),
        "puzzle_identifiers": torch.zeros(2, dtype=torch.int32),
    }
    result = model(model.initial_carry(batch), batch)
    handle.remove()
    assert [grad for grad, _, _ in calls] == [False] * 4 + [True] * 2
    injection = calls[0][1]
    assert injection is not None and all(inj is injection for _, inj, _ in calls)
    result.loss.backward()
    assert [out.requires_grad for _, _, out in calls] == [False] * 4 + [True] * 2
    assert all(out.grad is not None and out.grad.abs().sum() > 0 for _, _, out in calls[4:])
    flops = model.step_flops(1)
    per_call = net.flops
    heads = model.core.heads.flops
    assert flops.forward == 6 * per_call + heads
    assert flops.backward == 2 * (2 * per_call + heads)


def test_loss_has_no_continue_term():
    registered = plugins.component("step_loss", "act_no_continue", "model.step_loss").component
    assert registered == ACTStepLoss(halt_loss=True, continue_loss=False)
    torch.manual_seed(0)
    model = build_model("urm", {**SMALL, "act_continue": True, "l_cycles": 1, "num_layers": 1})
    batch = {
        "inputs": torch.randint(1, 6, (2, 4)),
        "labels": torch.randint(1, 6, (2, 4)),
        "puzzle_identifiers": torch.zeros(2, dtype=torch.int32),
    }
    result = model(model.initial_carry(batch), batch)
    m = result.metrics
    assert m["q_continue_loss"].item() == 0.0
    assert result.loss.item() == pytest.approx((m["lm_loss"] + 0.5 * m["q_halt_loss"]).item())


def test_paper_configuration_has_about_14m_parameters():
    """D = 512, 8 heads, expansion 4, 4 layers, ARC's 900 tokens and vocabulary 12. Per block:
    attention qkv 512*1536 + out 512*512 = 1,048,576; ConvSwiGLU (I = round(4*512*2/3) = 1365
    -> 1536) gate/up 512*3072 + down 1536*512 + conv 1536*2 + bias 1536 = 2,363,904; so
    3,412,480 per block, 13,649,920 for 4; tokens 12*512 + lm_head 512*12 + q_head 512*2 + 2
    = 13,314. The puzzle table and the initial latent are buffers, not counted."""
    recipe = load_recipe("arc-agi-1-urm")
    cfg = recipe.model_config(seq_len=900, vocab_size=12, num_puzzle_identifiers=1)
    with torch.device("meta"):
        model = build_model("urm", cfg)
    assert count_parameters(model) == 4 * (1_048_576 + 2_363_904) + 13_314 == 13_663_234
    assert (cfg.h_cycles, cfg.l_cycles, cfg.num_layers, cfg.hidden_size) == (2, 6, 4, 512)
    assert (cfg.halt_max_steps, cfg.mlp, cfg.step_loss, model.core.config.prefix_len) == (
        16,
        "conv_swiglu",
        "act_no_continue",
        1,
    )


def test_recipes_keep_their_baselines_data_and_budget():
    quick, base = load_recipe("sudoku-9x9-quick-urm"), load_recipe("sudoku-9x9-quick")
    assert (quick.data, quick.optim, quick.train) == (base.data, base.optim, base.train)
    assert load_recipe("arc-agi-1-urm").data == load_recipe("arc-agi-1").data


def test_trmkit_model_for_urm():
    """sudoku-9x9-quick-urm: D = 56, 4 heads, L = 81 + 1, I = 256, 4 layers, H = L = 2.
    Parameters per block: attention 56*168 + 56*56 = 12,544, ConvSwiGLU 56*512 + 256*56 +
    256*3 = 43,776; 4 blocks 225,280 + tokens 616 + lm_head 616 + q_head 114 = 226,626.
    FLOPs per sequence: attention 2*82*56*168 + 2*82*56*56 + 4*4*82*82*14 = 3,563,392,
    ConvSwiGLU 6*82*56*256 + 4*82*256 = 7,137,280, so 42,802,688 a call; heads
    2*81*56*11 + 4*56 = 100,016; 4 calls forward, 2 in the graph backward (x2)."""
    result = CliRunner().invoke(cli, ["model", "--recipe", "sudoku-9x9-quick-urm"])
    assert result.exit_code == 0, result.output
    call, heads = 42_802_688, 100_016
    train = 128 * (4 * call + heads + 2 * (2 * call + heads))
    assert train == 43_868_358_656
    assert "trainable parameters: 226626" in result.output
    assert "FLOPs per supervision step (batch 128): train 43.87 GFLOP" in result.output
    assert "(mlp): ConvSwiGLU(" in result.output and "(0-3): 4 x Block(" in result.output


def _losses(run):
    records = map(json.loads, (run / "metrics.jsonl").open())
    return [(r["step"], r["lm_loss"], r["q_halt_loss"]) for r in records if r["split"] == "train"]


def test_train_with_muon_resume_exactly_eval_and_solve(tmp_path, data):
    from trmkit.training.trainer import Trainer

    recipe_path = tmp_path / "tiny-urm.toml"
    recipe_path.write_text(TINY_URM)

    def trainer(run, resume=False):
        recipe = load_recipe(recipe_path)
        return Trainer(recipe, run_dir=tmp_path / run, data_dir=data, progress=False, resume=resume)

    straight = trainer("straight")
    straight.run()
    assert type(straight.optimizers[0]).__name__ == "Muon"
    first = trainer("resumed")
    first.run(until=4)
    del first
    second = trainer("resumed", resume=True)
    assert second.step == 4
    second.run()
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "straight")
    a, b = straight.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for opt_a, opt_b in zip(straight.optimizers, second.optimizers, strict=True):
        for sa, sb in zip(opt_a.state.values(), opt_b.state.values(), strict=True):
            assert all(torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])) for k in sa)

    out = tmp_path / "ev"
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "resumed"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads((out / "per_step.json").read_text())["per_step"]) == 3
    result = CliRunner().invoke(
        cli, ["solve", str(tmp_path / "resumed"), "1..4.3....2..1..", "--json"]
    )
    assert result.exit_code == 0, result.output
    [answer] = json.loads(result.output)
    assert len(answer["answer"]) == 4


@pytest.mark.parametrize(
    ("recipe", "extra", "model", "width_of"),
    [
        ("sudoku-9x9-quick-urm", ["model.expansion=0.001"], "urm", "0.001 gives"),
        (
            "sudoku-9x9-quick",
            ["model.mixer=attention", "model.pos_encodings=rope", "model.mlp=conv_swiglu"]
            + ["model.expansion=0.01"],  # positive (0 is refused as such), below 0.75 / 64
            "trm",
            "0.01 gives",
        ),
    ],
)
def test_a_conv_swiglu_width_that_does_not_fit_is_refused(tmp_path, recipe, extra, model, width_of):
    out = tmp_path / "run"
    args = ["train", "--recipe", recipe, "--out", str(out)]
    for assignment in extra:
        args += ["--set", assignment]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert not out.exists()
    [line] = result.output.strip().splitlines()
    hidden = 56 if model == "urm" else 64
    assert line.endswith(
        f"model.expansion: {width_of} model.mlp 'conv_swiglu' an intermediate width of 0 at "
        f"hidden_size {hidden}; use model.expansion >= {0.75 / hidden:.3g} (model '{model}')"
    )
