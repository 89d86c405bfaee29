"""TRM: one shared 2-block network, latents y (answer) and z (reasoning).

Per supervision step: T-1 cycles under ``torch.no_grad()`` then one with gradients, each
cycle being n updates z <- net(z, y + x) and one update y <- net(y, z). Only the last
cycle's n+1 network calls are in the autograd graph.
"""

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch

from trmkit.models.blocks import ReasoningStack
from trmkit.models.core import (
    CoreConfig,
    OfficialField,
    OfficialLayout,
    RecursiveCore,
    register_init,
)


def _mlp_t_flag(mixer: str) -> bool:
    if mixer not in ("attention", "mlp_t"):
        raise ValueError(f"model.mixer {mixer!r}: the official code has attention or mlp_t")
    return mixer == "mlp_t"


MLP_T_FIELD = OfficialField(
    "mlp_t", "mixer", read=lambda v: "mlp_t" if v else "attention", write=_mlp_t_flag, default=False
)
"""The official ``mlp_t`` flag: the token mixer, attention or MLP-t."""
# official arch fields of the TRM family (the official code's T, n, layers, mixer, continue)
TRM_FIELDS = (
    OfficialField("H_cycles", "h_cycles"),
    OfficialField("L_cycles", "l_cycles"),
    OfficialField("L_layers", "l_layers"),
    OfficialField("H_layers", default=0),
    OfficialField("puzzle_emb_len", "puzzle_emb_len", default=16),
    OfficialField(
        "no_ACT_continue", "act_continue", read=lambda v: not v, write=lambda v: not v, default=True
    ),
    MLP_T_FIELD,
)


@attrs.define(kw_only=True)
class TRMConfig(CoreConfig):
    """TRM defaults of ``config/arch/trm.yaml``: T=3, n=6, 2 layers, attention + RoPE."""

    schedulable: ClassVar[tuple[str, ...]] = (*CoreConfig.schedulable, "h_cycles", "l_cycles")
    positive: ClassVar[tuple[str, ...]] = (*CoreConfig.positive, "h_cycles", "l_cycles", "l_layers")
    official: ClassVar[OfficialLayout | None] = OfficialLayout(
        arch="recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
        tensors={"L_level.": "core.net.", "H_init": "core.y_init", "L_init": "core.z_init"},
        fields=TRM_FIELDS,
        fixed={"mlp": "swiglu"},
    )

    mixer: str = "attention"
    mlp: str = "swiglu"
    h_cycles: int = 3
    l_cycles: int = 6
    l_layers: int = 2


class TRMCore(RecursiveCore):
    config: TRMConfig
    latent_names: tuple[str, ...] = ("y", "z")

    def __init__(self, cfg: TRMConfig, net: ReasoningStack | None = None) -> None:
        super().__init__(cfg)
        self.net = self.stack(cfg.l_layers, cfg.mixer, cfg.mlp) if net is None else net
        register_init(self, "y", (cfg.hidden_size,))
        register_init(self, "z", (cfg.hidden_size,))

    def cycle(self, y, z, x, rope):
        yx = y + x
        for _ in range(self.config.l_cycles):
            z = self.net(z, yx, rope)
        y = self.net(y, z, rope)
        return y, z

    def recurse(self, latents, x, rope):
        y, z = latents["y"], latents["z"]
        with torch.no_grad():
            for _ in range(self.config.h_cycles - 1):
                y, z = self.cycle(y, z, x, rope)
        y, z = self.cycle(y, z, x, rope)
        return {"y": y, "z": z}, y

    def stack_calls(self) -> Sequence[tuple[ReasoningStack, int, int]]:
        per_cycle = self.config.l_cycles + 1  # n z-updates and one y-update
        return [(self.net, (self.config.h_cycles - 1) * per_cycle, per_cycle)]
