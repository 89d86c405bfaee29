"""ACT wrapper: the per-slot carry, halting, and the loss head; implements the model
contract `trmkit.models.protocol.RecursiveModel` for every `RecursiveCore`.

One call = one supervision step. Halted slots are reset to the initial latents and take the
incoming batch's row; unhalted slots keep their example and the incoming row is discarded.
Early halting and exploration happen only in training; in eval every slot runs exactly
``halt_max_steps`` steps.

Deviation (docs/engine.md, deviation 1): with ``act_continue = True`` TRM crashes in the
official code. Here the continue target is computed for every core the way HRM does it: a
second inner forward on the new carry under ``torch.no_grad()``, target =
sigmoid(q_halt_next) on the last step, else sigmoid(max(q_halt_next, q_continue_next)).

The loss of a step is the registered `StepLoss` named by ``config.step_loss`` (docs/engine.md,
"Per-step losses"). The config's ``schedule`` sets values by training progress:
`set_progress` (the trainer's, before every step) gives the core the config at p; a model
starts at p = 1, the final values, for evaluation and solving (docs/engine.md, "Training
progress and schedules"). A core may return a fifth element, a dict of per-row float [B]
tensors, which lands in `StepResult.outputs` under its names. A step loss sees the core's
new latents (`StepView.latents`); one that `needs` a latent the core does not carry is refused
here, when the model is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs
import torch
from torch import nn

from trmkit.errors import ConfigError
from trmkit.models.losses import StepView, act_loss, find_step_loss
from trmkit.models.protocol import LatentNoise, StepFlops, StepResult
from trmkit.models.schedule import config_at


@attrs.define
class ACTCarry:
    """What persists between supervision steps, per batch slot."""

    latents: dict[str, torch.Tensor]
    steps: torch.Tensor  # int32 [B]
    halted: torch.Tensor  # bool [B]
    current_data: dict[str, torch.Tensor]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat tensors for a checkpoint (exact resume)."""
        latents = {f"latents.{k}": v for k, v in self.latents.items()}
        data = {f"data.{k}": v for k, v in self.current_data.items()}
        return {**latents, **data, "steps": self.steps, "halted": self.halted}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> ACTCarry:
        latents = {k[8:]: v for k, v in state.items() if k.startswith("latents.")}
        data = {k[5:]: v for k, v in state.items() if k.startswith("data.")}
        return cls(latents, state["steps"], state["halted"], data)

    def to(self, device: torch.device | str) -> ACTCarry:
        return ACTCarry.from_state_dict({k: v.to(device) for k, v in self.state_dict().items()})


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (like.ndim - 1)))


class ACTModel(nn.Module):
    """ACT + loss head around a recursive core (`trmkit.models.core.RecursiveCore`)."""

    def __init__(self, core: nn.Module) -> None:
        super().__init__()
        self.core = core
        self.config = core.config
        self._halt_max_steps = int(core.config.halt_max_steps)
        self._noise: LatentNoise | None = None
        self.step_loss = find_step_loss(core.config.step_loss)
        state = core.initial_latents(1, torch.device("meta"))  # names only: allocate nothing
        lacking = [name for name in self.step_loss.needs if name not in state]
        if lacking:
            raise ConfigError(
                f"model.step_loss: {core.config.step_loss!r} reads the per-row state "
                f"{', '.join(map(repr, lacking))}, which model {type(core).__name__} does not "
                f"keep (it keeps {', '.join(state)}); choose a model that keeps it"
            )
        self.set_progress(1.0)

    def set_progress(self, p: float) -> None:
        """The core runs with the config's scheduled values at training progress ``p``."""
        self.core.config = config_at(self.config, p)

    @property
    def halt_max_steps(self) -> int:
        return self._halt_max_steps

    def set_halt_max_steps(self, steps: int) -> None:
        if int(steps) < 1:
            raise ValueError(f"halt_max_steps must be >= 1, not {steps}")
        self._halt_max_steps = int(steps)

    def set_latent_noise(self, noise: LatentNoise | None) -> None:
        """Perturb the reasoning latents on every following call (`NoisyRecursion`)."""
        self._noise = noise

    @staticmethod
    def _perturb(latents: dict[str, torch.Tensor], noise: LatentNoise) -> dict[str, torch.Tensor]:
        floats = [n for n, v in latents.items() if v.is_floating_point()]  # not a core's ids
        names = [n for n in floats if n != "y"] or floats
        out = dict(latents)
        for name in names:
            value = latents[name]
            if noise.scale.shape[0] != value.shape[0]:
                raise ValueError(
                    f"latent noise has {noise.scale.shape[0]} rows, the batch {value.shape[0]}"
                )
            eps = torch.randn(
                value.shape, generator=noise.generator, device=value.device, dtype=torch.float32
            )
            scale = noise.scale.to(device=value.device, dtype=torch.float32)
            out[name] = (value.float() + _rows(scale, value) * eps).to(value.dtype)
        return out

    @property
    def puzzle_emb(self):
        return self.core.puzzle_emb

    def initial_carry(self, batch: dict[str, torch.Tensor]) -> ACTCarry:
        """All slots halted, so the first call loads every row of its batch."""
        inputs = batch["inputs"]
        size, device = inputs.shape[0], inputs.device
        return ACTCarry(
            latents=self.core.initial_latents(size, device),
            steps=torch.zeros(size, dtype=torch.int32, device=device),
            halted=torch.ones(size, dtype=torch.bool, device=device),
            current_data={k: torch.zeros_like(v) for k, v in batch.items()},
        )

    def carry_state_dict(self, carry: ACTCarry) -> dict[str, torch.Tensor]:
        return carry.state_dict()

    def load_carry_state_dict(self, state: Mapping[str, torch.Tensor]) -> ACTCarry:
        return ACTCarry.from_state_dict(dict(state))

    def carry_to(self, carry: ACTCarry, device: torch.device | str) -> ACTCarry:
        return carry.to(device)

    def compile_targets(self) -> Sequence[nn.Module]:
        return self.core.compile_targets()

    def step_flops(self, batch: int) -> StepFlops:
        return self.core.step_flops(batch)

    def step_activation_floats(self, batch: int) -> int:
        return self.core.step_activation_floats(batch)

    def forward(self, carry: ACTCarry, batch: dict[str, torch.Tensor]) -> StepResult:
        cfg, spec = self.core.config, self.step_loss  # the config at the current progress
        max_steps = self._halt_max_steps
        halted = carry.halted
        latents = self.core.reset_latents(halted, carry.latents)
        if self._noise is not None:
            latents = self._perturb(latents, self._noise)
        steps = torch.where(halted, 0, carry.steps)
        data = {
            k: torch.where(_rows(halted, batch[k]), batch[k], v)
            for k, v in carry.current_data.items()
        }
        out = self.core(latents, data)
        latents, logits, q_halt, q_continue = out[:4]
        aux: dict[str, torch.Tensor] = out[4] if len(out) > 4 else {}

        target_q_continue = None
        with torch.no_grad():
            steps = steps + 1
            is_last = steps >= max_steps
            new_halted = is_last
            rule = cfg.training_halt_rule
            if self.training and max_steps > 1 and rule != "fixed":
                fires = q_halt > q_continue if rule == "q_halt_vs_continue" else q_halt > 0
                new_halted = new_halted | fires
                explore = torch.rand_like(q_halt) < cfg.halt_exploration_prob
                min_steps = explore * torch.randint_like(steps, 2, max_steps + 1)
                new_halted = new_halted & (steps >= min_steps)
                if cfg.act_continue and spec.continue_loss:
                    next_halt, next_continue = self.core(latents, data)[2:4]
                    target_q_continue = torch.sigmoid(
                        torch.where(is_last, next_halt, torch.maximum(next_halt, next_continue))
                    )

        view = StepView(data, steps, max_steps, logits, q_halt, q_continue, aux, latents)
        loss, metrics, preds = act_loss(
            logits=logits,
            labels=data["labels"],
            q_halt=q_halt,
            q_continue=q_continue,
            target_q_continue=target_q_continue,
            halted=new_halted,
            steps=steps,
            loss_type=cfg.loss_type,
            weight=spec.weight(view),
            target=spec.target(view),
            halt_loss=spec.halt_loss,
            extra=spec.extra(view),
        )
        outputs = {
            **aux,
            "logits": logits,
            "preds": preds,
            "q_halt_logits": q_halt,
            "q_continue_logits": q_continue,
        }
        new_carry = ACTCarry(latents, steps, new_halted, data)
        return StepResult(new_carry, loss, metrics, outputs, new_halted.all())
