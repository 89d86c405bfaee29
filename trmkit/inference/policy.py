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

Halting policies (`HaltRule`) and selection rules (`SelectRule`) are registries: components
of kinds "halt_policy" and "select_rule" (`trmkit.plugins.component`); the built-ins register
from `trmkit.inference.plugin` as any plugin would. ``--halt NAME[:ARG]`` and ``--select
NAME[:ARG]`` become `HaltPolicy` / `SelectPolicy`: the name is looked up, the argument is the
rule's own to parse. A rule sees one value (`Trajectories` to halt, `Candidates` to select),
including the per-step auxiliary outputs it ``needs`` (docs/engine.md, "Auxiliary outputs,
halting policies and selection rules").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs
import numpy as np

from trmkit.config import MAX_SEED
from trmkit.errors import OptionError, PluginError, UnknownNameError
from trmkit.memory import available_memory, gib
from trmkit.plugins import component

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
RECORD_AUX_BYTES = 4
"""bytes per step and sample of each auxiliary output kept (float32)."""
MEMORY_SHARE = 0.5
"""share of the memory this process may use that one batch's record may take (the model,
its activations and the data take the rest)."""


# ------------------------------------------------- what halting and selection rules see
Verdicts = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""checker(k, s, b) -> bool verdicts of the answers at (step k, sample s, row b), cached."""


@attrs.frozen
class Trajectories:
    """What a halting policy sees: S trajectories of B rows over K steps (docs/engine.md,
    "Auxiliary outputs, halting policies and selection rules")."""

    q: np.ndarray
    """float32 [K, S, B] halting logits."""
    same: np.ndarray
    """bool [K, S, B]: the answer equals the previous step's (always False at step 1)."""
    run: np.ndarray
    """int64 [K, S, B]: how many steps before k in a row had the same answer as step k."""
    aux: Mapping[str, np.ndarray]
    """float32 [K, S, B] per auxiliary output the rules declared in ``needs``."""
    verdicts: Verdicts | None = None
    """the task's answer checker (None: the task has none, or no rule ``checks``)."""


@attrs.frozen
class Candidates:
    """What a selection rule sees: each trajectory's answer at the step it stopped."""

    answers: np.ndarray
    """int16 [S, B, L] answers in the row's frame (`INVALID` tokens: not decodable)."""
    confidence: np.ndarray
    """float64 [S, B] sigmoid(q_halt) at the stopping step."""
    ok: np.ndarray
    """bool [S, B] decodable."""
    equal: np.ndarray
    """bool [S, S, B]: sample i's answer equals sample j's (both decodable)."""
    steps: np.ndarray
    """int [S, B] the stopping step (1..K)."""
    stability: np.ndarray
    """int [S, B] steps before the stop the answer had already been the same."""
    history: Trajectories
    """every step of the S trajectories (aux outputs included)."""

    @property
    def votes(self) -> np.ndarray:
        """int [S, B] samples whose answer equals this one's."""
        return self.equal.sum(axis=1)

    def at_stop(self, values: np.ndarray) -> np.ndarray:
        """[S, B] of a [K, S, B] per-step value (e.g. ``history.aux[name]``) at each stop."""
        return np.take_along_axis(values, (self.steps - 1)[None], axis=0)[0]

    def passed(self) -> np.ndarray:
        """bool [S, B] the task checker's verdicts on the answers (refused without one)."""
        if self.history.verdicts is None:
            raise OptionError("--select: this rule needs the task's answer checker")
        s_idx, b_idx = np.indices(self.steps.shape)
        flat = self.history.verdicts((self.steps - 1).ravel(), s_idx.ravel(), b_idx.ravel())
        return flat.reshape(self.steps.shape)


def best(*keys: np.ndarray) -> np.ndarray:
    """int [B]: per column, the sample maximising the [S, B] keys lexicographically (first key
    first; exact ties go to the lowest sample, the unperturbed trajectory first)."""
    return np.lexsort(tuple(-np.asarray(k, dtype=np.float64) for k in reversed(keys)), axis=0)[0]


# --------------------------------------------------------------------------- the protocols
@runtime_checkable
class HaltRule(Protocol):
    """A halting policy, registered as kind "halt_policy" (`trmkit.plugins.component`)."""

    needs: tuple[str, ...]
    """auxiliary outputs it reads from `Trajectories.aux` (the model must return them)."""
    checks: bool
    """it reads `Trajectories.verdicts` (the task must declare an answer checker)."""

    def parse(self, arg: str, option: str) -> HaltRule:
        """This rule with the argument of ``--halt NAME:ARG`` ("" none: the defaults); a bad
        one is one `OptionError` line starting with ``option``."""
        ...

    def argument(self) -> str:
        """The argument in canonical form ("" none): ``str(policy)`` is ``NAME[:ARG]``."""
        ...

    def fired(self, t: Trajectories) -> np.ndarray:
        """bool [K, S, B]: the steps at which a trajectory may stop (the first one does; the
        last step always does)."""
        ...


@runtime_checkable
class SelectRule(Protocol):
    """A selection rule, registered as kind "select_rule" (`trmkit.plugins.component`)."""

    needs: tuple[str, ...]
    checks: bool

    def parse(self, arg: str, option: str) -> SelectRule: ...

    def argument(self) -> str: ...

    def choose(self, c: Candidates) -> np.ndarray:
        """int [B]: the chosen sample of every row (asked only with S > 1)."""
        ...


class _Chosen:
    """``NAME[:ARG]`` of a registered rule: the name is looked up in the registry, the argument
    parsed by the rule itself (``arg`` is kept in the rule's canonical form)."""

    KIND: ClassVar[str]
    OPTION: ClassVar[str]
    PROTOCOL: ClassVar[type]
    kind: str
    arg: str
    rule: Any

    def __attrs_post_init__(self) -> None:
        option = f"{self.OPTION} {str(self)!r}"  # as given: ``arg`` becomes canonical below
        try:
            spec = component(self.KIND, self.kind, option)
        except UnknownNameError as exc:  # an unknown value of a command option
            raise OptionError(str(exc)) from None
        registered: Any = spec.component
        if not isinstance(spec.component, self.PROTOCOL):
            raise PluginError(
                f"plugin {spec.plugin!r}: {self.KIND} {self.kind!r} does not implement "
                f"trmkit.inference.policy.{self.PROTOCOL.__name__} (docs/engine.md)"
            )
        rule = registered.parse(self.arg, option)
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "arg", rule.argument())

    @classmethod
    def parse(cls, text: Any) -> Any:
        """``text`` (``NAME[:ARG]``) as this policy; a policy of this class is returned as is."""
        if isinstance(text, cls):
            return text
        name, _, arg = str(text).strip().partition(":")
        return cls(name, arg)  # type: ignore[call-arg]

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(self.rule.needs)

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


@attrs.frozen
class HaltPolicy(_Chosen):
    """When one trajectory stops: ``fixed``, ``q``, ``converged[:P]`` or a plugin's rule
    (docs/test-time-compute.md)."""

    KIND: ClassVar[str] = "halt_policy"
    OPTION: ClassVar[str] = "--halt"
    PROTOCOL: ClassVar[type] = HaltRule
    kind: str = "fixed"
    arg: str = ""
    rule: HaltRule = attrs.field(init=False, eq=False, repr=False)


@attrs.frozen
class SelectPolicy(_Chosen):
    """Which of the S answers is the answer: ``vote``, ``q``, ``converged``, ``valid`` or a
    plugin's rule (docs/test-time-compute.md)."""

    KIND: ClassVar[str] = "select_rule"
    OPTION: ClassVar[str] = "--select"
    PROTOCOL: ClassVar[type] = SelectRule
    kind: str = "vote"
    arg: str = ""
    rule: SelectRule = attrs.field(init=False, eq=False, repr=False)


@attrs.frozen
class InferencePolicy:
    """Depth x halting x breadth x selection for one evaluation or solve."""

    steps: int | None = None
    """supervision steps K (None: the trained N_sup); may exceed it."""
    halt: HaltPolicy = attrs.field(factory=HaltPolicy, converter=lambda v: HaltPolicy.parse(v))
    samples: int = 1
    """trajectories per puzzle (run as extra batch rows of the same forward)."""
    augment: bool = True
    """make samples 2..S differ by the task's own augmentations (inverted before comparing)
    where the task allows it (shared puzzle ids)."""
    noise: float = 0.0
    """std of the Gaussian noise added to the reasoning latent of samples 2..S."""
    select: SelectPolicy = attrs.field(
        factory=SelectPolicy, converter=lambda v: SelectPolicy.parse(v)
    )
    """how one of the S answers is chosen (a string converts: "vote", "valid", ...)."""
    seed: int = 0

    def validate(self) -> InferencePolicy:
        for option, value, bound, what in (
            ("--steps", 1 if self.steps is None else self.steps, MAX_STEPS, "supervision steps"),
            ("--samples", self.samples, MAX_SAMPLES, "trajectories per puzzle"),
        ):
            if not isinstance(value, int) or value < 1:
                raise OptionError(f"{option} {value}: must be an integer >= 1")
            if value > bound:
                raise OptionError(
                    f"{option} {value}: more than the {bound} {what} allowed; "
                    f"choose {option} {bound} or fewer"
                )
        if not (isinstance(self.noise, (int, float)) and 0 <= self.noise < math.inf):
            raise OptionError(f"--noise {self.noise}: must be a finite number >= 0")
        if not (isinstance(self.seed, int) and 0 <= self.seed <= MAX_SEED):  # torch's int64
            raise OptionError(f"--seed {self.seed}: must be an integer in [0, {MAX_SEED}]")
        return self

    def describe(self) -> str:
        parts = [f"halt {self.halt}"]
        if self.samples > 1:
            sources = [f"noise {self.noise:g}"] if self.noise > 0 else []
            if self.augment:
                sources.insert(0, "augmentations")
            # neither: a StochasticRecursion model's own draws (identical ones are refused)
            parts.append(
                f"{self.samples} samples ({' + '.join(sources) or 'random trajectories'}), "
                f"select {self.select}"
            )
        return ", ".join(parts)

    @property
    def checks(self) -> bool:
        """Its halting policy or selection rule asks the task's answer checker."""
        return bool(self.halt.rule.checks or self.select.rule.checks)

    def needs(self) -> dict[str, str]:
        """aux output -> the option whose rule needs it (halting first)."""
        needs = {name: f"--select {self.select.kind}" for name in self.select.needs}
        return needs | {name: f"--halt {self.halt.kind}" for name in self.halt.needs}


def record_bytes(depth: int, samples: int, rows: int, seq_len: int, aux: int = 0) -> int:
    """Bytes the engine keeps for ``rows`` puzzles x ``samples`` trajectories x ``depth``
    steps of ``seq_len`` tokens and ``aux`` auxiliary outputs (`trmkit.inference.engine.record`)."""
    per_step = seq_len * RECORD_TOKEN_BYTES + RECORD_STEP_BYTES + aux * RECORD_AUX_BYTES
    return depth * samples * rows * per_step


def check_record_fits(
    depth: int,
    samples: int,
    rows: int,
    seq_len: int,
    available: int | None = None,
    aux: int = 0,
) -> None:
    """Refuse (`OptionError`, one line) a depth x samples whose record of one batch does not
    fit `MEMORY_SHARE` of ``available`` bytes (default: what this process may use)."""
    available = available_memory() if available is None else available
    if available is None:
        return
    budget = MEMORY_SHARE * available
    need = record_bytes(depth, samples, rows, seq_len, aux)
    if need <= budget:
        return
    fit_steps = int(budget // record_bytes(1, samples, rows, seq_len, aux))
    fit_samples = int(budget // record_bytes(depth, 1, rows, seq_len, aux))
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
    "MAX_SAMPLES",
    "MAX_STEPS",
    "Candidates",
    "HaltPolicy",
    "HaltRule",
    "InferencePolicy",
    "SelectPolicy",
    "SelectRule",
    "Trajectories",
    "best",
    "check_record_fits",
    "parse_int_list",
    "record_bytes",
]
