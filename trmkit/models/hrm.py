"""HRM (sapientinc/HRM as shipped with TRM): separate H and L stacks, 1-step gradient.

Everything runs under ``torch.no_grad()`` except the final L call and the final H call;
prefix length ceil(ndim/D) = 1; Q-learning halting (q_halt > q_continue) with the working
continue loss (``act_continue = True``).
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
from trmkit.models.trm import MLP_T_FIELD


@attrs.define(kw_only=True)
class HRMConfig(CoreConfig):
    schedulable: ClassVar[tuple[str, ...]] = (*CoreConfig.schedulable, "h_cycles", "l_cycles")
    positive: ClassVar[tuple[str, ...]] = (
        *CoreConfig.positive,
        "h_cycles",
        "l_cycles",
        "h_layers",
        "l_layers",
    )
    official = OfficialLayout(
        arch="recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1",
        tensors={
            "H_level.": "core.h_net.",
            "L_level.": "core.l_net.",
            "H_init": "core.y_init",
            "L_init": "core.z_init",
        },
        fields=(
            OfficialField("H_cycles", "h_cycles"),
            OfficialField("L_cycles", "l_cycles"),
            OfficialField("H_layers", "h_layers"),
            OfficialField("L_layers", "l_layers"),
            MLP_T_FIELD,
        ),
        fixed={"mlp": "swiglu"},
    )

    mixer: str = "attention"
    mlp: str = "swiglu"
    h_cycles: int = 2
    l_cycles: int = 2
    h_layers: int = 4
    l_layers: int = 4
    puzzle_emb_len: int = 0
    act_continue: bool = True


class HRMCore(RecursiveCore):
    config: HRMConfig
    latent_names = ("y", "z")  # y = z_H, z = z_L

    def __init__(self, cfg: HRMConfig) -> None:
        super().__init__(cfg)
        self.h_net = self.stack(cfg.h_layers, cfg.mixer, cfg.mlp)
        self.l_net = self.stack(cfg.l_layers, cfg.mixer, cfg.mlp)
        register_init(self, "y", (cfg.hidden_size,))
        register_init(self, "z", (cfg.hidden_size,))

    def recurse(self, latents, x, rope):
        cfg = self.config
        y, z = latents["y"], latents["z"]
        with torch.no_grad():
            for h_step in range(cfg.h_cycles):
                last_h = h_step == cfg.h_cycles - 1
                for l_step in range(cfg.l_cycles):
                    if not (last_h and l_step == cfg.l_cycles - 1):
                        z = self.l_net(z, y + x, rope)
                if not last_h:
                    y = self.h_net(y, z, rope)
        z = self.l_net(z, y + x, rope)
        y = self.h_net(y, z, rope)
        return {"y": y, "z": z}, y

    def stack_calls(self) -> Sequence[tuple[ReasoningStack, int, int]]:
        cfg = self.config  # only the last L call and the last H call are in the graph
        return [(self.l_net, cfg.h_cycles * cfg.l_cycles - 1, 1), (self.h_net, cfg.h_cycles - 1, 1)]
