"""The model contract: what the trainer, evaluation, `trmkit solve`, `trmkit model` and
checkpoint resume need from an architecture (documented in docs/engine.md, "The model
contract").

A registered architecture's factory returns a `torch.nn.Module` that also implements
`RecursiveModel`; `trmkit.models.build_model` checks that and names the registering plugin
when it does not. The built-in `ACTModel` implements it for every `RecursiveCore`.

One call is one supervision step::

    carry = model.initial_carry(batch)
    result = model(carry, batch)          # a StepResult; result.carry feeds the next call
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import attrs
import torch
from torch import nn


class StepResult(NamedTuple):
    """What one supervision step returns (a named tuple, so it also unpacks positionally)."""

    carry: Any
    """the state for the next call (opaque to callers; see `RecursiveModel.carry_state_dict`)."""
    loss: torch.Tensor
    """scalar SUM over the batch of the step loss (lm + 0.5 (q_halt + q_continue) for the
    built-in "act" `trmkit.models.losses.StepLoss`); divide by the global batch."""
    metrics: dict[str, torch.Tensor]
    """float32 metric sums (count, accuracy, exact_accuracy, ..., lm_loss, q_halt_loss, ...)."""
    outputs: dict[str, torch.Tensor]
    """logits [B,S,V], preds [B,S], q_halt_logits [B], q_continue_logits [B]; any other key is
    a per-row float tensor [B] (a core's auxiliary output, e.g. a latent residual)."""
    all_halted: torch.Tensor
    """bool scalar: every slot halted on this step."""


@attrs.frozen
class StepFlops:
    """Matmul FLOPs of one supervision step (docs/engine.md, "FLOPs and the benchmark")."""

    forward: int  # every network call of the step, plus heads
    backward: int  # 2x the forward of the calls in the gradient graph
    extra_forward: int  # ACT-continue target pass (training only, when enabled)

    @property
    def train(self) -> int:
        return self.forward + self.backward + self.extra_forward

    @property
    def eval(self) -> int:
        return self.forward


@runtime_checkable
class RecursiveModel(Protocol):
    """An ACT-style model driven one supervision step per call.

    Beyond these members it is a `torch.nn.Module` (parameters, state_dict, train/eval):
    ``model.train()`` may halt early and explore, ``model.eval()`` runs every sequence
    exactly `halt_max_steps` steps.
    """

    config: Any
    """the registered attrs config the model was built from (recorded in checkpoints)."""

    @property
    def puzzle_emb(self) -> nn.Module | None:
        """The sparse puzzle-embedding table (a `SparsePuzzleEmbedding`, trained by
        sign-SGD, not by the dense optimiser), or None."""
        ...

    @property
    def halt_max_steps(self) -> int:
        """Supervision steps after which every sequence halts (N_sup; the inference depth)."""
        ...

    def set_halt_max_steps(self, steps: int) -> None:
        """Change the inference depth (evaluating more steps than trained); `config` is
        left as trained, so a checkpoint written afterwards records the trained value."""
        ...

    def initial_carry(self, batch: Mapping[str, torch.Tensor]) -> Any:
        """A carry whose every slot is halted, so the first call loads every row of ``batch``."""
        ...

    def __call__(self, carry: Any, batch: Mapping[str, torch.Tensor]) -> StepResult: ...

    def carry_state_dict(self, carry: Any) -> dict[str, torch.Tensor]:
        """The carry as flat tensors (saved per process for an exact resume)."""
        ...

    def load_carry_state_dict(self, state: Mapping[str, torch.Tensor]) -> Any:
        """Inverse of `carry_state_dict` (tensors on CPU; the caller moves the carry)."""
        ...

    def carry_to(self, carry: Any, device: torch.device | str) -> Any:
        """The carry on ``device``."""
        ...

    def compile_targets(self) -> Sequence[nn.Module]:
        """The modules worth ``torch.compile``-ing (shared networks without data-dependent
        Python control flow); `trmkit.models.compile_model` compiles their forward."""
        ...

    def step_flops(self, batch: int) -> StepFlops:
        """Matmul FLOPs of one supervision step on ``batch`` sequences (`trmkit model`)."""
        ...

    # The `torch.nn.Module` members callers use, declared so a `RecursiveModel` type-checks
    # where it is trained, moved, saved and loaded; every nn.Module has them.
    training: bool

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def named_parameters(self, *args: Any, **kwargs: Any) -> Iterator[tuple[str, nn.Parameter]]: ...

    def buffers(self, recurse: bool = True) -> Iterator[torch.Tensor]: ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def to(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class StepMemory(Protocol):
    """Optional: what one training step keeps for backward, for the preflight memory
    estimate (`trmkit.training.preflight`); a model without it gets "unknown" there."""

    def step_activation_floats(self, batch: int) -> int:
        """Floats the autograd graph of one supervision step on ``batch`` sequences keeps
        (fp32 CPU path, docs/training.md, "Preflight")."""
        ...


@attrs.frozen
class LatentNoise:
    """Gaussian noise for the reasoning latents at inference (test-time compute,
    docs/test-time-compute.md): before every supervision step, the first time right after
    the initial latent is loaded, ``scale[b] * N(0, 1)`` is added to row b of each reasoning
    latent (every latent except the answer ``y``; the only latent when there is one)."""

    scale: torch.Tensor
    """float [B]: per-row standard deviation (0 keeps a row's trajectory exact)."""
    generator: torch.Generator
    """seeded generator on the model's device: the same seed gives the same trajectories."""


@runtime_checkable
class NoisyRecursion(Protocol):
    """Optional: a model that can perturb its latent recursion (``trmkit eval --noise``)."""

    def set_latent_noise(self, noise: LatentNoise | None) -> None:
        """Use ``noise`` on every following call (None: exact recursion again)."""
        ...


@runtime_checkable
class StochasticRecursion(Protocol):
    """Optional: a model whose trajectories are random by themselves (e.g. random initial
    latents drawn at every reset, noise in every network call): S samples of one row differ
    without augmentation or ``--noise``. Inference hands it a seeded generator, so the same
    ``--seed`` gives the same trajectories; training leaves torch's global RNG (saved with
    every checkpoint, so a resumed run draws the same numbers)."""

    def set_generator(self, generator: torch.Generator | None) -> None:
        """Draw every following call's randomness from ``generator`` (None: torch's global
        RNG)."""
        ...


@runtime_checkable
class ProgressAware(Protocol):
    """Optional: a model whose values follow training progress (docs/engine.md, "Training
    progress and schedules"). The trainer calls `set_progress` before every step with
    p = (steps done) / total_steps, and with 1.0 before evaluating; a freshly built model is
    at p = 1 (the final values), so evaluation and solving need no call."""

    def set_progress(self, p: float) -> None:
        """Take the values scheduled for progress ``p`` in [0, 1]."""
        ...


def set_progress(model: object, p: float) -> None:
    """``model.set_progress(p)`` when the model is `ProgressAware`; nothing otherwise."""
    if isinstance(model, ProgressAware):
        model.set_progress(p)


MEMBERS: tuple[str, ...] = (
    "config",
    "puzzle_emb",
    "halt_max_steps",
    "set_halt_max_steps",
    "initial_carry",
    "carry_state_dict",
    "load_carry_state_dict",
    "carry_to",
    "compile_targets",
    "step_flops",
)


def missing_members(model: object) -> list[str]:
    """Names of `RecursiveModel` members ``model`` lacks (empty when it implements it)."""
    missing = [name for name in MEMBERS if not hasattr(model, name)]
    if not isinstance(model, nn.Module):
        missing.insert(0, "torch.nn.Module base class")
    return missing


__all__ = [
    "MEMBERS",
    "LatentNoise",
    "NoisyRecursion",
    "ProgressAware",
    "RecursiveModel",
    "StepFlops",
    "StepMemory",
    "StepResult",
    "StochasticRecursion",
    "missing_members",
    "set_progress",
]
