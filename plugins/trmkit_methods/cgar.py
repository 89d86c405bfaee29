"""TRM-CGAR: curriculum-guided adaptive recursion (docs/methods.md, "TRM-CGAR").

Two parts, each on a public extension point (docs/engine.md, "Extension points"):
- the supervision-step weights w_t = decay^(t-1) / sum_{s=1..N} decay^(s-1), N the model's
  ``halt_max_steps``: the step loss "cgar" (`CGARStepLoss`, decay 0.7), per row by the step
  index that row just took (rows of a batch are at different steps under ACT);
- the (T, n) depth curriculum by training progress: a ``[model.schedule]`` of ``h_cycles`` and
  ``l_cycles`` that `curriculum` makes from the recipe's final T and n, so any architecture
  with those fields (TRM, its ablations, HRM) takes it; one without them refuses it at recipe
  load (`trmkit.config.check_schedule`).

No torch at import: loading the plugins for `trmkit tasks` stays torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from trmkit.hookspecs import hookimpl

DECAY = 0.7
"""the paper's step-weight decay lambda."""
STAGES = ((0.0, 1), (0.3, 2), (0.6, 3))
"""(start of the stage in training progress p, thirds of the final T and n): the paper's
(1, 2) -> (2, 4) -> (3, 6) for a final (T, n) = (3, 6)."""


@attrs.frozen
class CGARStepLoss:
    """TRM's loss (lm + 0.5 (q_halt + q_continue)) with each row's terms weighted by
    ``decay^(t-1) / Z``, t the step that row just took, Z = sum_{s=1..N} decay^(s-1) over the
    model's N = ``halt_max_steps`` (not over the steps a row ends up taking: see
    docs/methods.md, "TRM-CGAR", for halting early). Implements
    `trmkit.models.losses.StepLoss`."""

    decay: float = DECAY
    halt_loss: bool = True
    continue_loss: bool = True
    needs: tuple[str, ...] = ()
    """per-row state of the core it reads (none: the labels are its targets)."""

    def weight(self, view: Any) -> Any:
        norm = math.fsum(self.decay**s for s in range(view.max_steps))
        return self.decay ** (view.steps.double() - 1) / norm

    def target(self, view: Any) -> Any:
        return view.data["labels"]

    def extra(self, view: Any) -> Mapping[str, Any]:
        return {}


def curriculum(h_cycles: int, l_cycles: int) -> dict[str, list[list[float | int]]]:
    """The depth curriculum ending at (T, n) = (``h_cycles``, ``l_cycles``): stage k of
    `STAGES` runs ceil(k T / 3) and ceil(k n / 3) (never 0), a stage equal to the one before
    merged into it; the value of ``[model.schedule]`` (docs/recipes.md, "Schedules")."""

    def pieces(final: int) -> list[list[float | int]]:
        out: list[list[float | int]] = []
        for start, thirds in STAGES:
            value = math.ceil(thirds * final / 3)
            if not out or out[-1][1] != value:
                out.append([start, value])
        return out

    return {"h_cycles": pieces(h_cycles), "l_cycles": pieces(l_cycles)}


@hookimpl
def register_components(register):
    register(
        "step_loss",
        "cgar",
        CGARStepLoss(),
        "TRM-CGAR: TRM's loss, step t weighted 0.7^(t-1) / sum_s 0.7^(s-1)",
    )
