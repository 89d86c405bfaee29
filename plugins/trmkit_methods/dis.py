"""DIS, deep improvement supervision (docs/methods.md, "DIS: deep improvement supervision").

Registers, through the public hooks as a third party would:

- the architecture ``dis``: TRM's recursion (T, n) whose input from step 2 on is the model's
  own previous argmax prediction (the whole token grid), plus a learned embedding of the step
  index 1..N added at every step; every sequence runs N = ``halt_max_steps`` steps;
- the step loss ``dis``: step t is trained with cross-entropy towards frame t of a random path
  from the input to the label, no halting and no continue loss.

The path of a slot is fixed when the slot takes a new puzzle: the core draws a random priority
per position (``order``, from torch's RNG) into its carried latents, which checkpoints keep,
so a resumed run continues the same paths. Frame s of N replaces the floor(s d / N) differing
positions of lowest priority by the label's tokens (d: positions where input and label differ),
so the frames are nested; positions whose label is ignored are ignored in every frame.
"""

from __future__ import annotations

import functools
from typing import Any

from trmkit.hookspecs import hookimpl
from trmkit_methods import lazy_getattr

LAZY = ("DISConfig", "DISCore", "DISStepLoss", "path_frame")
"""the torch parts, built on first use (`parts`): loading the plugins for `trmkit tasks`
must not import torch."""


@functools.cache
def parts() -> dict[str, Any]:
    """DIS's config, core, step loss and `path_frame` (`LAZY`), built once."""
    import math
    from typing import ClassVar

    import attrs
    import torch

    from trmkit.batch import IGNORE_LABEL_ID
    from trmkit.models.layers import CastedEmbedding
    from trmkit.models.losses import ACTStepLoss, StepView
    from trmkit.models.trm import TRMConfig, TRMCore

    @attrs.define(kw_only=True)
    class DISConfig(TRMConfig):
        """The paper's compact setting: T = 1, n = 2, one layer, D = 256, N = 6 fixed steps."""

        # no official TRM checkpoint layout: the step embedding is DIS's own
        official = None

        hidden_size: int = 256
        puzzle_emb_ndim: int = 256
        h_cycles: int = 1
        l_cycles: int = 2
        l_layers: int = 1
        halt_max_steps: int = 6
        halt_rule: str = "fixed"
        step_loss: str = "dis"

    class DISCore(TRMCore):
        """TRM's core fed with its previous prediction and a step embedding."""

        config: DISConfig

        def __init__(self, cfg: DISConfig) -> None:
            super().__init__(cfg)
            self.step_emb = CastedEmbedding(
                cfg.halt_max_steps, cfg.hidden_size, init_std=1.0 / math.sqrt(cfg.hidden_size)
            )

        def initial_latents(self, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
            """y, z, and int32 per-row state: the last prediction ``prev`` [B,S], each position's
            path priority ``order`` [B,S] and the steps taken ``step`` [B]."""
            out = super().initial_latents(batch_size, device)
            grid = (batch_size, self.config.seq_len)
            out["prev"] = torch.zeros(grid, dtype=torch.int32, device=device)
            out["order"] = torch.zeros(grid, dtype=torch.int32, device=device)
            out["step"] = torch.zeros(batch_size, dtype=torch.int32, device=device)
            return out

        def reset_latents(
            self, reset: torch.Tensor, latents: dict[str, torch.Tensor]
        ) -> dict[str, torch.Tensor]:
            """y, z as TRM; a reset slot starts at step 0 with a fresh random priority per
            position (a uniform permutation, drawn for every row so the RNG use is fixed)."""
            out = super().reset_latents(reset, {k: latents[k] for k in self.latent_names})
            old = latents["order"]
            fresh = torch.rand(old.shape, device=old.device).argsort(-1).to(old.dtype)
            out["order"] = torch.where(reset[:, None], fresh, old)
            out["step"] = torch.where(reset, 0, latents["step"])
            out["prev"] = latents["prev"]
            return out

        def forward(self, latents: dict[str, torch.Tensor], data: dict[str, torch.Tensor]):
            inputs = data["inputs"]
            dtype = self.config.dtype_for(inputs.device)
            step = latents["step"] + 1
            tokens = torch.where(step[:, None] > 1, latents["prev"].to(inputs.dtype), inputs)
            x = self.encoder(tokens, data["puzzle_identifiers"], dtype)
            # the step embedding joins the token embedding before the scale (and the 1/sqrt 2 of
            # learned positions), at every position; steps past N use the last one
            index = step.clamp(max=self.step_emb.weight.shape[0]) - 1
            scale = self.encoder.scale * (
                0.707106781 if self.encoder.embed_pos is not None else 1.0
            )
            x = x + scale * self.step_emb(index, dtype)[:, None, :]
            yz = {k: latents[k].to(dtype) for k in self.latent_names}
            new, y = self.recurse(yz, x, self.rope())
            logits, q_halt, q_continue = self.heads(y)
            state = {
                "prev": logits.detach().argmax(-1).to(torch.int32),
                "order": latents["order"],
                "step": step,
            }
            return {**{k: v.detach() for k, v in new.items()}, **state}, logits, q_halt, q_continue

    def path_frame(
        inputs: torch.Tensor,
        labels: torch.Tensor,
        order: torch.Tensor,
        frame: torch.Tensor,
        frames: int,
    ) -> torch.Tensor:
        """Frame ``frame`` [B] (0 = inputs, ``frames`` = labels) of each row's path: the
        floor(frame d / frames) differing positions of lowest ``order`` take the label's token."""
        valid = labels != IGNORE_LABEL_ID
        differ = valid & (inputs != labels)
        rank = order.masked_fill(~differ, labels.shape[-1]).argsort(-1).argsort(-1)
        flips = frame.clamp(0, frames) * differ.sum(-1) // frames
        out = torch.where(differ & (rank < flips[:, None]), labels, inputs.to(labels.dtype))
        return torch.where(valid, out, IGNORE_LABEL_ID)

    @attrs.frozen
    class DISStepLoss(ACTStepLoss):
        """Cross-entropy of step t towards frame t of the slot's path (N = the model's depth)."""

        needs: ClassVar[tuple[str, ...]] = ("order",)

        def target(self, view: StepView) -> torch.Tensor:
            data = view.data
            return path_frame(
                data["inputs"], data["labels"], view.latents["order"], view.steps, view.max_steps
            )

    return {name: value for name, value in locals().items() if name in LAZY}


@hookimpl
def register_models(register):
    from trmkit.models.act import ACTModel

    register(
        "dis",
        lambda cfg: ACTModel(parts()["DISCore"](cfg)),
        parts()["DISConfig"],
        "DIS: TRM fed its previous prediction and a step embedding, N fixed steps",
    )


@hookimpl
def register_components(register):
    register(
        "step_loss",
        "dis",
        parts()["DISStepLoss"](halt_loss=False, continue_loss=False),
        "DIS: step t towards frame t of a random input-to-label path; no halting loss",
    )


__getattr__ = lazy_getattr(__name__, LAZY, parts)
