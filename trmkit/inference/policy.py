"""How inference spends compute: depth, halting, breadth (samples), diversity, selection.

`InferencePolicy` is the one value `trmkit eval`, `trmkit solve`, the sweep and the Python
API share (docs/test-time-compute.md). The default (trained depth, fixed halting, one
sample, no noise) is exactly the plain evaluation.
"""

from __future__ import annotations

import math

import attrs

from trmkit.errors import OptionError

HALT_KINDS = ("fixed", "q", "converged")
SELECT_RULES = ("q", "vote", "converged", "valid")
DEFAULT_PATIENCE = 2


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
        if not isinstance(self.samples, int) or self.samples < 1:
            raise OptionError(f"--samples {self.samples}: must be an integer >= 1")
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


def parse_int_list(text: str, option: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> (1, 2, 4), each >= 1, sorted and deduplicated."""
    try:
        values = sorted({int(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or values[0] < 1:
        raise OptionError(f"{option} {text!r}: expected comma-separated integers >= 1")
    return tuple(values)


__all__ = ["HALT_KINDS", "SELECT_RULES", "HaltPolicy", "InferencePolicy", "parse_int_list"]
