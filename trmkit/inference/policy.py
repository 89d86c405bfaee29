"""How inference spends compute: depth, halting, breadth (samples), diversity, selection.

`InferencePolicy` is the one value `trmkit eval`, `trmkit solve`, the sweep and the Python
API share (docs/test-time-compute.md). The default (trained depth, fixed halting, one
sample, no noise) is exactly the plain evaluation.

Depth and breadth are bounded (docs/errors.md, "Resources: bounded before any promise"):
``--steps`` at most `MAX_STEPS`, ``--samples`` at most `MAX_SAMPLES` (`validate`), and what
the engine keeps of one batch (every step's answer of every sample, `record_bytes`) must
fit the memory this process may use (`check_record_fits`, once the sequence length and the
rows per batch are known). Each refusal is one `OptionError` line naming the option, the
value and the bound.
"""

from __future__ import annotations

import math

import attrs

from trmkit.errors import OptionError
from trmkit.memory import available_memory, gib

HALT_KINDS = ("fixed", "q", "converged")
SELECT_RULES = ("q", "vote", "converged", "valid")
DEFAULT_PATIENCE = 2
MAX_STEPS = 1024
"""most supervision steps one inference may run (64 x the trained 16 of the presets)."""
MAX_SAMPLES = 1024
"""most trajectories per puzzle (the documented sweeps use up to 16)."""
RECORD_TOKEN_BYTES = 4
"""bytes the engine keeps per token, step and sample: the answer (int16) and its copy in the
row's own frame."""
RECORD_STEP_BYTES = 24
"""bytes per step and sample besides the tokens: halting logit, sameness, run length,
fired and checker flags."""
MEMORY_SHARE = 0.5
"""share of the memory this process may use that one batch's record may take (the model,
its activations and the data take the rest)."""


@attrs.frozen
class HaltPolicy:
    """When one trajectory stops.

    * ``fixed``: after the depth K;
    * ``q``: at the first step whose halting head fires (q_halt > 0, as training halts);
    * ``converged:P``: at the first step whose answer equals the answers of the P steps
      before it (a fixed point), else after K.
    """

    kind: str = "fixed"
    patience: int = DEFAULT_PATIENCE

    @classmethod
    def parse(cls, text: str) -> HaltPolicy:
        """``fixed``, ``q`` or ``converged[:P]`` (P >= 1, default 2)."""
        name, _, arg = str(text).strip().partition(":")
        if name not in HALT_KINDS:
            raise OptionError(
                f"--halt {text!r}: expected one of fixed, q, converged[:P] (e.g. converged:2)"
            )
        if arg and name != "converged":
            raise OptionError(f"--halt {text!r}: only converged takes a patience (converged:P)")
        patience = DEFAULT_PATIENCE
        if arg:
            try:
                patience = int(arg)
            except ValueError:
                patience = 0
            if patience < 1:
                raise OptionError(f"--halt {text!r}: the patience P must be an integer >= 1")
        return cls(name, patience)

    def __str__(self) -> str:
        return f"converged:{self.patience}" if self.kind == "converged" else self.kind


@attrs.frozen
class InferencePolicy:
    """Depth x halting x breadth x selection for one evaluation or solve."""

    steps: int | None = None
    """supervision steps K (None: the trained N_sup); may exceed it."""
    halt: HaltPolicy = HaltPolicy()
    samples: int = 1
    """trajectories per puzzle (run as extra batch rows of the same forward)."""
    augment: bool = True
    """make samples 2..S differ by the task's own augmentations (inverted before comparing)
    where the task allows it (shared puzzle ids)."""
    noise: float = 0.0
    """std of the Gaussian noise added to the reasoning latent of samples 2..S."""
    select: str = "vote"
    """how one of the S answers is chosen: q | vote | converged | valid."""
    seed: int = 0

    def validate(self) -> InferencePolicy:
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise OptionError(f"--steps {self.steps}: must be an integer >= 1")
        if self.steps is not None and self.steps > MAX_STEPS:
            raise OptionError(
                f"--steps {self.steps}: more than the {MAX_STEPS} supervision steps allowed; "
                f"choose --steps {MAX_STEPS} or fewer"
            )
        if not isinstance(self.samples, int) or self.samples < 1:
            raise OptionError(f"--samples {self.samples}: must be an integer >= 1")
        if self.samples > MAX_SAMPLES:
            raise OptionError(
                f"--samples {self.samples}: more than the {MAX_SAMPLES} trajectories per "
                f"puzzle allowed; choose --samples {MAX_SAMPLES} or fewer"
            )
        if (
            not isinstance(self.noise, (int, float))
            or not math.isfinite(self.noise)
            or self.noise < 0
        ):
            raise OptionError(f"--noise {self.noise}: must be a finite number >= 0")
        if self.select not in SELECT_RULES:
            raise OptionError(
                f"--select {self.select!r}: expected one of {', '.join(SELECT_RULES)}"
            )
        if self.halt.kind not in HALT_KINDS or self.halt.patience < 1:
            raise OptionError(f"--halt {self.halt}: expected fixed, q or converged:P (P >= 1)")
        return self

    @property
    def is_plain(self) -> bool:
        """One exact trajectory: what evaluation did before test-time compute."""
        return self.samples == 1 and self.noise == 0

    def describe(self) -> str:
        parts = [f"halt {self.halt}"]
        if self.samples > 1:
            source = []
            if self.augment:
                source.append("augmentations")
            if self.noise > 0:
                source.append(f"noise {self.noise:g}")
            parts.append(
                f"{self.samples} samples ({' + '.join(source) or 'identical'}), "
                f"select {self.select}"
            )
        return ", ".join(parts)


def record_bytes(depth: int, samples: int, rows: int, seq_len: int) -> int:
    """Bytes the engine keeps for ``rows`` puzzles x ``samples`` trajectories x ``depth``
    steps of ``seq_len`` tokens (`trmkit.inference.engine.record`)."""
    return depth * samples * rows * (seq_len * RECORD_TOKEN_BYTES + RECORD_STEP_BYTES)


def check_record_fits(
    depth: int, samples: int, rows: int, seq_len: int, available: int | None = None
) -> None:
    """Refuse (`OptionError`, one line) a depth x samples whose record of one batch does not
    fit `MEMORY_SHARE` of ``available`` bytes (default: what this process may use)."""
    available = available_memory() if available is None else available
    if available is None:
        return
    budget = MEMORY_SHARE * available
    need = record_bytes(depth, samples, rows, seq_len)
    if need <= budget:
        return
    fit_steps = int(budget // record_bytes(1, samples, rows, seq_len))
    fit_samples = int(budget // record_bytes(depth, 1, rows, seq_len))
    if fit_steps >= 1:
        way_out = f"--steps {fit_steps} or fewer fit at --samples {samples}"
    elif fit_samples >= 1:
        way_out = f"at most --samples {fit_samples} fit at --steps {depth}"
    else:
        way_out = "choose fewer --steps and --samples (or a smaller --batch-size)"
    raise OptionError(
        f"--steps {depth} x --samples {samples}: keeping every step of {rows} puzzle(s) x "
        f"{seq_len} tokens needs about {gib(need)}, more than {gib(budget)} ({MEMORY_SHARE:.0%} "
        f"of the {gib(available)} this process may use); {way_out}"
    )


def parse_int_list(text: str, option: str, bound: int | None = None) -> tuple[int, ...]:
    """``"1,2,4"`` -> (1, 2, 4), each >= 1 (and <= ``bound``), sorted and deduplicated."""
    try:
        values = sorted({int(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or values[0] < 1:
        raise OptionError(f"{option} {text!r}: expected comma-separated integers >= 1")
    if bound is not None and values[-1] > bound:
        raise OptionError(
            f"{option} {values[-1]}: more than the {bound} allowed; choose values up to {bound}"
        )
    return tuple(values)


__all__ = [
    "HALT_KINDS",
    "MAX_SAMPLES",
    "MAX_STEPS",
    "SELECT_RULES",
    "HaltPolicy",
    "InferencePolicy",
    "check_record_fits",
    "parse_int_list",
    "record_bytes",
]
