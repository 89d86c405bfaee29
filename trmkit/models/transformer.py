"""Transformer baseline (the official ``transformers_baseline``): one deep stack, one call per
supervision step, y <- stack(y, x) with gradients; RoPE or learned positions only.

Halting follows the official baseline by default: in training a sequence halts where
q_halt > q_continue, and no continue target is computed (``act_continue = false``), so the
continue head is never trained. Other rules are explicit options (``halt_rule = "q_halt"``,
``"fixed"``, or ``act_continue = true`` for a trained continue head), docs/engine.md.
"""

import attrs

from trmkit.errors import ConfigError
from trmkit.models.blocks import block_factory, make_stack
from trmkit.models.core import CoreConfig, RecursiveCore, register_init


@attrs.define(kw_only=True)
class TransformerConfig(CoreConfig):
    num_layers: int = 8
    num_heads: int = 12
    puzzle_emb_len: int = 0
    halt_rule: str = "q_halt_vs_continue"

    def validate(self) -> None:
        super().validate()
        if self.pos_encodings not in ("rope", "learned"):
            raise ConfigError("model.pos_encodings: the transformer baseline needs rope or learned")
        if self.num_layers < 1:
            raise ConfigError("model.num_layers: must be >= 1")


class TransformerCore(RecursiveCore):
    latent_names = ("y",)

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__(cfg)
        factory = block_factory(
            "attention",
            cfg.hidden_size,
            cfg.num_heads,
            cfg.total_len,
            cfg.expansion,
            cfg.rms_norm_eps,
        )
        self.net = make_stack(factory, cfg.num_layers)
        register_init(self, "y", (cfg.hidden_size,))

    def recurse(self, latents, x, rope):
        y = self.net(latents["y"], x, rope)
        return {"y": y}, y
