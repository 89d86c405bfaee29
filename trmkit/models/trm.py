"""TRM: one shared 2-block network, latents y (answer) and z (reasoning).

Per supervision step: T-1 cycles under ``torch.no_grad()`` then one with gradients, each
cycle being n updates z <- net(z, y + x) and one update y <- net(y, z). Only the last
cycle's n+1 network calls are in the autograd graph.
"""

from typing import ClassVar

import attrs
import torch
from torch import nn

from trmkit.errors import ConfigError
from trmkit.models.blocks import ReasoningStack, block_factory, make_stack
from trmkit.models.core import CoreConfig, RecursiveCore, register_init


@attrs.define(kw_only=True)
class TRMConfig(CoreConfig):
    """TRM defaults of ``config/arch/trm.yaml``: T=3, n=6, 2 layers, attention + RoPE."""

    schedulable: ClassVar[tuple[str, ...]] = (*CoreConfig.schedulable, "h_cycles", "l_cycles")

    mixer: str = "attention"
    h_cycles: int = 3
    l_cycles: int = 6
    l_layers: int = 2

    def validate(self) -> None:
        super().validate()
        for key in ("h_cycles", "l_cycles", "l_layers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key}: must be >= 1")


def build_network(cfg: TRMConfig, num_layers: int | None = None) -> ReasoningStack:
    """The shared network for a config: ``l_layers`` blocks of the configured token mixer."""
    factory = block_factory(
        cfg.mixer, cfg.hidden_size, cfg.num_heads, cfg.total_len, cfg.expansion, cfg.rms_norm_eps
    )
    return make_stack(factory, cfg.l_layers if num_layers is None else num_layers)


class TRMCore(RecursiveCore):
    config: TRMConfig
    latent_names: tuple[str, ...] = ("y", "z")

    def __init__(self, cfg: TRMConfig, net: nn.Module | None = None) -> None:
        super().__init__(cfg)
        self.net = build_network(cfg) if net is None else net
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
