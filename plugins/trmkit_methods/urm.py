"""URM, the Universal Reasoning Model (docs/methods.md, "URM: Universal Reasoning Model").

- the channel MLP "conv_swiglu" (any architecture with a ``model.mlp`` field selects it):
  down(silu(causal depthwise conv_2(silu(G) * U))), the conv running over the whole sequence
  (puzzle prefix included);
- the architecture "urm": one latent h, per supervision step (H - 1) L applications of the
  stack without gradient, then L with gradient, the input embedding added before each;
- the step loss "act_no_continue": lm + 0.5 q_halt whatever ``act_continue`` says.

Registered through the public hooks only, as a third party's plugin would be.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar  # ClassVar: URMConfig's hints resolve in this module

from trmkit.hookspecs import hookimpl
from trmkit_methods import lazy_getattr

LAZY = ("ConvSwiGLU", "CONV_SWIGLU", "URMConfig", "URMCore", "conv_width")
"""The parts defined on first use (`parts`): loading the plugin imports no torch, as
trmkit's own model plugin (trmkit/models/plugin.py)."""


@functools.cache
def parts() -> dict[str, Any]:
    """The ConvSwiGLU, its spec, the URM config and core (`LAZY`), built once."""
    from collections.abc import Sequence

    import attrs
    import torch
    import torch.nn.functional as F
    from torch import nn

    from trmkit.errors import ConfigError
    from trmkit.models.blocks import BlockDims, MLPSpec, ReasoningStack
    from trmkit.models.core import CoreConfig, RecursiveCore, register_init
    from trmkit.models.layers import CastedLinear, gated, swiglu_width

    def conv_width(d: BlockDims) -> int:
        """I of the ConvSwiGLU: the SwiGLU's width (round(expansion D 2/3) rounded up to 256);
        < 1 is refused naming model.expansion and model.mlp (build_model adds the model)."""
        width = swiglu_width(d.hidden, d.expansion)
        if width < 1:
            raise ConfigError(
                f"model.expansion: {d.expansion:g} gives model.mlp 'conv_swiglu' an intermediate "
                f"width of {width} at hidden_size {d.hidden}; use model.expansion >= "
                f"{0.75 / d.hidden:.3g}"
            )
        return width

    class ConvSwiGLU(nn.Module):
        """down(silu(c)), c_i = w_1 p_i + w_0 p_{i-1} + b per channel, p = silu(G) * U: a
        depthwise Conv1d of kernel 2 with bias along the sequence, causal (position 0 sees only
        itself and the bias). Its FLOPs and saved floats are `CONV_SWIGLU`'s."""

        def __init__(self, dims: BlockDims) -> None:
            super().__init__()
            self.inter = conv_width(dims)
            self.gate_up_proj = CastedLinear(dims.hidden, 2 * self.inter)
            # torch's default Conv1d init (weight and bias uniform +-1/sqrt(2)), as URM's code
            self.dwconv = nn.Conv1d(self.inter, self.inter, 2, groups=self.inter)
            self.down_proj = CastedLinear(self.inter, dims.hidden)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p = gated(x, self.gate_up_proj)  # [B, L, I]
            w = self.dwconv.weight.to(p.dtype)  # [I, 1, 2]: taps on positions i-1, i
            previous = F.pad(p[:, :-1], (0, 0, 1, 0))
            c = p * w[:, 0, 1] + previous * w[:, 0, 0] + self.dwconv.bias.to(p.dtype)
            return self.down_proj(F.silu(c))

    # FLOPs per sequence as the other specs count them (a linear map in -> out on N tokens costs
    # 2 N in out, docs/engine.md "FLOPs and the benchmark"): the SwiGLU's 6 L D I plus the conv's
    # two multiply-adds per output, 4 L I. Saved for backward: the SwiGLU's L (D + 3I), the shifted
    # product, the conv output and its SiLU (3 L I more).
    CONV_SWIGLU = MLPSpec(
        build=ConvSwiGLU,
        flops=lambda d: 6 * d.length * d.hidden * conv_width(d) + 4 * d.length * conv_width(d),
        activation_floats=lambda d: d.length * (d.hidden + 6 * conv_width(d)),
    )

    @attrs.define(kw_only=True)
    class URMConfig(CoreConfig):
        """The released runs: 16 supervision steps, H = 2 loops of L = 6 applications of a
        4-layer stack (attention + ConvSwiGLU, post-norm), D = 512; the puzzle prefix is
        ceil(ndim / D) positions (puzzle_emb_len 0)."""

        schedulable: ClassVar[tuple[str, ...]] = (*CoreConfig.schedulable, "h_cycles", "l_cycles")

        mixer: str = "attention"
        mlp: str = "conv_swiglu"
        h_cycles: int = 2
        """H: loops per supervision step, the first H - 1 without gradient."""
        l_cycles: int = 6
        """L: applications of the stack per loop."""
        num_layers: int = 4
        puzzle_emb_len: int = 0
        step_loss: str = "act_no_continue"

        def validate(self) -> None:
            super().validate()
            for key in ("h_cycles", "l_cycles", "num_layers"):
                if getattr(self, key) < 1:
                    raise ConfigError(f"model.{key}: must be >= 1")

    class URMCore(RecursiveCore):
        """h <- stack(h + x), (H - 1) L times without gradient then L times with it; the heads
        read h (truncated backpropagation through loops)."""

        config: URMConfig
        latent_names = ("h",)

        def __init__(self, cfg: URMConfig) -> None:
            super().__init__(cfg)
            self.net = self.stack(cfg.num_layers, cfg.mixer, cfg.mlp)
            register_init(self, "h", (cfg.hidden_size,))

        def recurse(self, latents, x, rope):
            h, cfg = latents["h"], self.config
            with torch.no_grad():
                for _ in range((cfg.h_cycles - 1) * cfg.l_cycles):
                    h = self.net(h, x, rope)
            for _ in range(cfg.l_cycles):
                h = self.net(h, x, rope)
            return {"h": h}, h

        def stack_calls(self) -> Sequence[tuple[ReasoningStack, int, int]]:
            cfg = self.config
            return [(self.net, (cfg.h_cycles - 1) * cfg.l_cycles, cfg.l_cycles)]

    return {name: value for name, value in locals().items() if name in LAZY}


@hookimpl
def register_models(register):
    from trmkit.models.act import ACTModel

    register(
        "urm",
        lambda cfg: ACTModel(parts()["URMCore"](cfg)),
        parts()["URMConfig"],
        "Universal Reasoning Model: one latent, H x L loops",
    )


@hookimpl
def register_components(register):
    register(
        "mlp",
        "conv_swiglu",
        parts()["CONV_SWIGLU"],
        "SwiGLU, causal depthwise conv (kernel 2), SiLU",
    )


__getattr__ = lazy_getattr(__name__, LAZY, parts)
