"""Transformer baseline (the official ``transformers_baseline``): one deep stack, one call per
supervision step, y <- stack(y, x) with gradients; RoPE or learned positions only.

Halting follows the official baseline by default: in training a sequence halts where
q_halt > q_continue, and no continue target is computed (``act_continue = false``), so the
continue head is never trained. Other rules are explicit options (``halt_rule = "q_halt"``,
``"fixed"``, or ``act_continue = true`` for a trained continue head), docs/engine.md.
"""

from collections.abc import Sequence
from typing import ClassVar

import attrs

from trmkit.errors import ConfigError
from trmkit.models.blocks import ReasoningStack
from trmkit.models.core import (
    CoreConfig,
    OfficialField,
    OfficialLayout,
    RecursiveCore,
    register_init,
)


@attrs.define(kw_only=True)
class TransformerConfig(CoreConfig):
    positive: ClassVar[tuple[str, ...]] = (*CoreConfig.positive, "num_layers")
    official = OfficialLayout(
        arch="recursive_reasoning.transformers_baseline@Model_ACTV2",
        tensors={"H_level.": "core.net.", "H_init": "core.y_init"},
        fields=(
            OfficialField("H_layers", "num_layers"),
            OfficialField("H_cycles", default=1),
            OfficialField(
                "act_enabled",
                "halt_rule",
                read=lambda v: "q_halt_vs_continue" if v else "fixed",
                write=lambda rule: rule != "fixed",
                default=True,
            ),
        ),
    )

    num_layers: int = 8
    num_heads: int = 12
    puzzle_emb_len: int = 0
    halt_rule: str = "q_halt_vs_continue"

    def validate(self) -> None:
        super().validate()
        if self.pos_encodings not in ("rope", "learned"):
            raise ConfigError("model.pos_encodings: the transformer baseline needs rope or learned")


class TransformerCore(RecursiveCore):
    latent_names = ("y",)

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__(cfg)
        self.net = self.stack(cfg.num_layers)
        register_init(self, "y", (cfg.hidden_size,))

    def recurse(self, latents, x, rope):
        y = self.net(latents["y"], x, rope)
        return {"y": y}, y

    def stack_calls(self) -> Sequence[tuple[ReasoningStack, int, int]]:
        return [(self.net, 0, 1)]
