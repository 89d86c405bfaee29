"""HRM (sapientinc/HRM as shipped with TRM): separate H and L stacks, 1-step gradient.

Everything runs under ``torch.no_grad()`` except the final L call and the final H call;
prefix length ceil(ndim/D) = 1; Q-learning halting (q_halt > q_continue) with the working
continue loss (``act_continue = True``).
"""

from typing import ClassVar

import attrs
import torch

from trmkit.errors import ConfigError
from trmkit.models.blocks import block_factory, make_stack
from trmkit.models.core import CoreConfig, RecursiveCore, register_init


@attrs.define(kw_only=True)
class HRMConfig(CoreConfig):
    schedulable: ClassVar[tuple[str, ...]] = (*CoreConfig.schedulable, "h_cycles", "l_cycles")
    mixer: str = "attention"
    h_cycles: int = 2
    l_cycles: int = 2
    h_layers: int = 4
    l_layers: int = 4
    puzzle_emb_len: int = 0
    act_continue: bool = True

    def validate(self) -> None:
        super().validate()
        for key in ("h_cycles", "l_cycles", "h_layers", "l_layers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key}: must be >= 1")


class HRMCore(RecursiveCore):
    config: HRMConfig
    latent_names = ("y", "z")  # y = z_H, z = z_L

    def __init__(self, cfg: HRMConfig) -> None:
        super().__init__(cfg)
        factory = block_factory(
            cfg.mixer,
            cfg.hidden_size,
            cfg.num_heads,
            cfg.total_len,
            cfg.expansion,
            cfg.rms_norm_eps,
        )
        self.h_net = make_stack(factory, cfg.h_layers)
        self.l_net = make_stack(factory, cfg.l_layers)
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
