"""EqR, Equilibrium Reasoners (docs/methods.md, "EqR: Equilibrium Reasoners"), registered
through the public hooks as a third party's plugin would be.

- architecture ``eqr``: TRM's recursion in which every network call is the damped, noisy
  update ``h <- (1 - lam) h + lam net(h + injection) + sigma eps``, eps ~ N(0, I) (noise on in
  training and evaluation), and every reset draws y and z afresh from a truncated normal
  (std 1) per row and position; each step also returns the auxiliary output ``residual``,
  the mean over positions of the norm of the step's logit change;
- step loss ``eqr``: lm + 0.5 q_halt (TRM's loss without the continue term);
- halting policy ``residual:TAU`` and selection rule ``residual[:W[:K]]`` (docs/engine.md,
  "Auxiliary outputs, halting policies and selection rules").

Randomness comes from torch's global RNG in training (saved with every checkpoint: exact
resume) and from the seeded generator the inference engine hands a `StochasticRecursion`.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import attrs
import numpy as np

from trmkit.errors import ConfigError, OptionError
from trmkit.hookspecs import hookimpl
from trmkit.inference.policy import Candidates, Trajectories, best


@functools.cache
def classes():
    """(EqRConfig, EqRCore, EqRModel), built once on first use: loading the plugin imports no
    torch (as trmkit's own model plugin)."""
    import torch

    from trmkit.models.act import ACTModel
    from trmkit.models.init import trunc_normal_
    from trmkit.models.trm import TRMConfig, TRMCore

    @attrs.define(kw_only=True)
    class EqRConfig(TRMConfig):
        """TRM's fields plus ``damping`` (lam) and ``noise`` (sigma); no puzzle embedding
        and the ``eqr`` step loss by default, as the paper."""

        damping: float = 0.95
        noise: float = 0.01
        puzzle_emb_ndim: int = 0
        step_loss: str = "act_no_continue"

        def validate(self) -> None:
            super().validate()
            if not 0.0 < self.damping <= 1.0:
                raise ConfigError("model.damping: must be in (0, 1]")
            if not self.noise >= 0.0:
                raise ConfigError("model.noise: must be >= 0")

    class EqRCore(TRMCore):
        config: EqRConfig

        def __init__(self, cfg: EqRConfig) -> None:
            super().__init__(cfg)
            self.generator: torch.Generator | None = None  # None: torch's global RNG
            self.sigma: torch.Tensor | None = None  # per-row sigma at inference (--noise)

        def update(self, h, injection, rope):
            cfg = self.config
            h = (1.0 - cfg.damping) * h + cfg.damping * self.net(h, injection, rope)
            sigma = cfg.noise if self.sigma is None else self.sigma.view(-1, 1, 1).to(h.dtype)
            if self.sigma is None and sigma == 0:
                return h
            eps = torch.randn(h.shape, generator=self.generator, device=h.device, dtype=h.dtype)
            return h + sigma * eps

        def cycle(self, y, z, x, rope):
            yx = y + x
            for _ in range(self.config.l_cycles):
                z = self.update(z, yx, rope)
            return self.update(y, z, rope), z

        def reset_latents(self, reset, latents):
            out = {}
            for name, value in latents.items():
                fresh = trunc_normal_(torch.empty_like(value), std=1.0, generator=self.generator)
                out[name] = torch.where(reset.view(-1, 1, 1), fresh, value)
            return out

        def forward(self, latents, data):
            new, logits, q_halt, q_continue = super().forward(latents, data)
            with torch.no_grad():
                dtype = self.config.dtype_for(logits.device)
                start = self.heads(latents["y"].to(dtype))[0]  # the step's starting answer
                residual = (logits.detach() - start).norm(dim=-1).mean(dim=-1)
            return new, logits, q_halt, q_continue, {"residual": residual}

    class EqRModel(ACTModel):
        """`ACTModel` around `EqRCore`: ``--noise`` sets sigma of samples 2..S
        (`NoisyRecursion`) and inference hands it a seeded generator (`StochasticRecursion`)."""

        core: EqRCore

        def set_generator(self, generator):
            self.core.generator = generator

        def set_latent_noise(self, noise):
            if noise is None:
                self.core.sigma, self.core.generator = None, None
                return
            default = torch.full_like(noise.scale, self.core.config.noise)
            self.core.sigma = torch.where(noise.scale > 0, noise.scale, default)
            self.core.generator = noise.generator

    return EqRConfig, EqRCore, EqRModel


@attrs.frozen
class ResidualHalt:
    """``--halt residual:TAU``: stop at the first step whose residual is below TAU."""

    tau: float = 0.0
    needs: ClassVar[tuple[str, ...]] = ("residual",)
    checks: ClassVar[bool] = False

    def parse(self, arg: str, option: str) -> ResidualHalt:
        try:
            tau = float(arg)
        except ValueError:
            tau = float("nan")
        if not 0.0 < tau < float("inf"):
            raise OptionError(f"{option}: give the threshold TAU > 0, e.g. --halt residual:0.05")
        return ResidualHalt(tau)

    def argument(self) -> str:
        return f"{self.tau:g}"

    def fired(self, t: Trajectories) -> np.ndarray:
        return t.aux["residual"] < self.tau


@attrs.frozen
class ResidualSelect:
    """``--select residual[:W[:K]]``: the mean residual over the last W steps up to each
    trajectory's stop, the K lowest (decodable) samples, then the answer most of those K
    share (ties: the sample with the lowest mean residual)."""

    window: int = 3
    top: int = 4
    needs: ClassVar[tuple[str, ...]] = ("residual",)
    checks: ClassVar[bool] = False

    def parse(self, arg: str, option: str) -> ResidualSelect:
        parts = arg.split(":") if arg else []
        if len(parts) > 2 or not all(p.isdigit() and int(p) >= 1 for p in parts):
            raise OptionError(
                f"{option}: expected residual[:W[:K]], the window W and the top K integers >= 1"
            )
        return ResidualSelect(*map(int, parts))

    def argument(self) -> str:
        return f"{self.window}:{self.top}"

    def mean_residual(self, c: Candidates) -> np.ndarray:
        """float [S, B]: the mean residual of steps stop-W+1..stop (inf: not decodable)."""
        residual = c.history.aux["residual"]
        k = np.arange(residual.shape[0])[:, None, None]
        inside = (k < c.steps[None]) & (k >= c.steps[None] - self.window)
        mean = np.where(inside, residual, 0.0).sum(axis=0) / inside.sum(axis=0)
        return np.where(c.ok, mean, np.inf)

    def choose(self, c: Candidates) -> np.ndarray:
        mean = self.mean_residual(c)
        rank = np.argsort(np.argsort(mean, axis=0, kind="stable"), axis=0, kind="stable")
        top = c.ok & (rank < self.top)
        pool = c.equal & top[:, None] & top[None]
        return best(top, pool.sum(axis=1), -mean)


@hookimpl
def register_models(register):
    config, core, model = classes()

    def factory(cfg):
        return model(core(cfg))

    register("eqr", factory, config, "Equilibrium Reasoner: TRM with damped, noisy updates")


@hookimpl
def register_components(register):
    register("halt_policy", "residual", ResidualHalt(), "stop when the residual < TAU")
    register(
        "select_rule", "residual", ResidualSelect(), "lowest residual over W steps, top K, vote"
    )
