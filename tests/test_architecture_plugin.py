"""An architecture and a channel MLP added from a plugin, with no edit to trmkit: the toy
core gets its FLOPs, the preflight memory estimate and `trmkit model` output from what it
declares (`stack_calls`); the ReLU MLP is one `register_components` call, trains in a TRM
chosen by ``model.mlp`` and its FLOPs are counted. Numbers are computed by hand."""

from __future__ import annotations

import attrs
import pytest
import torch
from click.testing import CliRunner
from tiny_training import one_thread, write_recipe
from torch import nn

from trmkit import plugins
from trmkit.cli import cli
from trmkit.errors import PluginError, UnknownNameError
from trmkit.hookspecs import hookimpl
from trmkit.memory import gib
from trmkit.models import build_model
from trmkit.models.act import ACTModel
from trmkit.models.blocks import MLPSpec
from trmkit.models.core import CoreConfig, RecursiveCore, register_init
from trmkit.training import preflight as pf


@attrs.define(kw_only=True)
class ToyConfig(CoreConfig):
    calls: int = 3


class ToyCore(RecursiveCore):
    """y <- net(y, x) ``calls`` times a step, only the last call with gradients."""

    latent_names = ("y",)

    def __init__(self, cfg: ToyConfig) -> None:
        super().__init__(cfg)
        self.net = self.stack(1)
        register_init(self, "y", (cfg.hidden_size,))

    def recurse(self, latents, x, rope):
        y = latents["y"]
        with torch.no_grad():
            for _ in range(self.config.calls - 1):
                y = self.net(y, x, rope)
        y = self.net(y, x, rope)
        return {"y": y}, y

    def stack_calls(self):
        return [(self.net, self.config.calls - 1, 1)]


class ReluMLP(nn.Module):
    def __init__(self, hidden: int, inter: int) -> None:
        super().__init__()
        self.up = nn.Linear(hidden, inter, bias=False)
        self.down = nn.Linear(inter, hidden, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(h)))


RELU = MLPSpec(
    build=lambda d: ReluMLP(d.hidden, 2 * d.hidden),
    flops=lambda d: 4 * d.length * d.hidden * 2 * d.hidden,
    activation_floats=lambda d: d.length * (d.hidden + 2 * 2 * d.hidden),
)


class ArchPlugin:
    @staticmethod
    @hookimpl
    def register_models(register):
        register("toy-arch", lambda cfg: ACTModel(ToyCore(cfg)), ToyConfig, "a toy core")

    @staticmethod
    @hookimpl
    def register_components(register):
        register("mlp", "relu_mlp", RELU, "ReLU MLP of width 2D")
        register("mixer", "not_a_mixer", object(), "breaks the MixerSpec contract")


@pytest.fixture(scope="module", autouse=True)
def arch():
    before = one_thread()
    plugins.load_plugins()
    plugins.pm.register(ArchPlugin, name="arch-plugin")
    plugins.reset()
    try:
        yield
    finally:
        plugins.pm.unregister(name="arch-plugin")
        plugins.reset()
        torch.set_num_threads(before)


TOY = {"seq_len": 4, "vocab_size": 6, "hidden_size": 16, "num_heads": 2, "puzzle_emb_ndim": 0}
# per sequence (L = 4, D = 16, 2 heads of 8, SwiGLU width round(4 * 16 * 2/3) -> 256):
#   attention 2*4*16*48 + 2*4*16*16 + 4*2*4*4*8 = 6144 + 2048 + 1024 = 9216
#   SwiGLU    6*4*16*256 = 98304; heads 2*4*16*6 + 4*16 = 832
#   forward  3 calls: 3*(9216 + 98304) + 832 = 323392; backward 2*(107520 + 832) = 216704
#   saved    norms 5*4*16 + attention 5*4*16 + SwiGLU 4*(16 + 3*256) + heads 3*4*6 = 3848
TOY_FORWARD, TOY_BACKWARD, TOY_FLOATS = 323392, 216704, 3848


def test_toy_architecture_counts_its_own_flops_and_memory():
    with torch.device("meta"):
        model = build_model("toy-arch", TOY)
    flops = model.step_flops(3)
    assert (flops.forward, flops.backward, flops.extra_forward) == (
        3 * TOY_FORWARD,
        3 * TOY_BACKWARD,
        0,
    )
    est = pf.estimate("toy-arch", model.config, 3, 10, pf.Machine(1e9, None))
    assert est.step_flops == 3 * (TOY_FORWARD + TOY_BACKWARD)
    assert est.activation_bytes == int(1.25 * 4 * 3 * TOY_FLOATS)  # slack x fp32 bytes
    assert est.sequence_bytes == int(1.25 * 4 * TOY_FLOATS)


def test_toy_architecture_in_trmkit_model(tmp_path):
    recipe = write_recipe(tmp_path).read_text()
    head, _, rest = recipe.partition("[model]")
    fields = "\n".join(f"{k} = {v}" for k, v in TOY.items())
    text = f'{head}[model]\nname = "toy-arch"\n{fields}\n\n[optim]{rest.partition("[optim]")[2]}'
    (tmp_path / "toy.toml").write_text(text)
    result = CliRunner().invoke(
        cli, ["model", "--recipe", str(tmp_path / "toy.toml"), "--batch-size", "3"]
    )
    assert result.exit_code == 0, result.output
    train = 3 * (TOY_FORWARD + TOY_BACKWARD)  # 1,620,288
    assert "FLOPs per supervision step (batch 3): train 1.62 MFLOP" in result.output
    assert train == 1_620_288
    want = gib(int(1.25 * 4 * 3 * TOY_FLOATS))
    assert f"activations per training step (batch 3, fp32): {want}" in result.output
    assert "prefix_len=0" in result.output


def _tiny_trm(**extra):
    return {
        "seq_len": 16,
        "vocab_size": 6,
        "hidden_size": 32,
        "num_heads": 2,
        "mixer": "mlp_t",
        "pos_encodings": "none",
        "h_cycles": 2,
        "l_cycles": 2,
        "l_layers": 1,
        "puzzle_emb_ndim": 32,
        "puzzle_emb_len": 1,
        "halt_max_steps": 2,
        "batch_size": 4,
        **extra,
    }


def test_plugin_mlp_trains_a_trm_step():
    torch.manual_seed(0)
    model = build_model("trm", _tiny_trm(mlp="relu_mlp"))
    block = model.core.net.layers[0]
    assert isinstance(block.mlp, ReluMLP)
    assert sorted(k for k in model.state_dict() if ".mlp." in k) == [
        "core.net.layers.0.mlp.down.weight",
        "core.net.layers.0.mlp.up.weight",
    ]
    batch = {
        "inputs": torch.randint(1, 6, (4, 16), dtype=torch.int32),
        "labels": torch.randint(1, 6, (4, 16), dtype=torch.int32),
        "puzzle_identifiers": torch.zeros(4, dtype=torch.int32),
    }
    before = block.mlp.up.weight.detach().clone()
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    result = model(model.initial_carry(batch), batch)
    result.loss.backward()
    assert block.mlp.up.weight.grad is not None and block.mlp.up.weight.grad.abs().sum() > 0
    optim.step()
    assert not torch.equal(before, block.mlp.up.weight)


def test_plugin_mlp_flops_in_trmkit_model(tmp_path):
    recipe = write_recipe(tmp_path)

    def train_flops(*overrides: str) -> str:
        args = ["model", "--recipe", str(recipe), *(a for o in overrides for a in ("--set", o))]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        return next(line for line in result.output.splitlines() if line.startswith("FLOPs"))

    swiglu_model = build_model("trm", _tiny_trm(seq_len=16))
    relu_model = build_model("trm", _tiny_trm(seq_len=16, mlp="relu_mlp"))
    # L = 16 + 1 prefix, D = 32; 2 cycles x (2 + 1) calls x 1 layer = 6 forward calls;
    # SwiGLU 6*17*32*256 = 835584, ReLU 4*17*32*64 = 139264 per call and sequence
    diff = swiglu_model.step_flops(16).forward - relu_model.step_flops(16).forward
    assert diff == 16 * 6 * (835584 - 139264)
    relu_line = train_flops("model.mlp=relu_mlp")
    assert relu_line != train_flops()
    from trmkit.commands.model import _fmt

    assert f"train {_fmt(relu_model.step_flops(16).train)}FLOP" in relu_line


def test_unknown_mlp_and_mixer_name_the_option_and_the_known_names():
    known = "conv_swiglu, relu_mlp, swiglu"  # conv_swiglu: the installed trmkit_methods.urm
    with pytest.raises(
        UnknownNameError, match=rf"^model\.mlp: unknown mlp 'nope'; known: {known}$"
    ):
        build_model("trm", _tiny_trm(mlp="nope"))
    with pytest.raises(UnknownNameError, match=r"^model\.mixer: unknown mixer 'nope'; known: "):
        build_model("trm", _tiny_trm(mixer="nope"))


def test_a_component_breaking_its_spec_names_the_plugin():
    with pytest.raises(
        PluginError,
        match=r"plugin 'arch-plugin': mixer 'not_a_mixer' is a object, not a "
        r"trmkit.models.blocks.MixerSpec",
    ):
        build_model("trm", _tiny_trm(mixer="not_a_mixer"))
