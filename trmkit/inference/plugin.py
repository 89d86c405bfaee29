"""Registers the built-in halting policies and selection rules through `register_components`,
as a third party would (docs/engine.md, "Auxiliary outputs, halting policies and selection
rules"; docs/test-time-compute.md says what each does)."""

from __future__ import annotations

import attrs
import numpy as np

from trmkit.errors import OptionError
from trmkit.hookspecs import hookimpl
from trmkit.inference.policy import DEFAULT_PATIENCE, Candidates, Trajectories, best


class _BuiltIn:
    """A built-in rule: no auxiliary output, no answer checker, no argument (but converged's)."""

    needs: tuple[str, ...] = ()
    checks: bool = False

    def parse(self, arg: str, option: str):  # -> Self
        if arg:
            raise OptionError(
                f"{option}: this rule takes no argument (of the built-ins only converged "
                "takes one, converged:P)"
            )
        return self

    def argument(self) -> str:
        return ""


class Fixed(_BuiltIn):
    """Stop after the depth K."""

    def fired(self, t: Trajectories) -> np.ndarray:
        return np.zeros(t.q.shape, dtype=bool)


class HaltingHead(_BuiltIn):
    """Stop at the first step whose halting head fires (q_halt > 0, as training halts)."""

    def fired(self, t: Trajectories) -> np.ndarray:
        return t.q > 0


@attrs.frozen
class Converged(_BuiltIn):
    """Stop at the first step whose answer equals the answers of the P steps before it (a
    fixed point), else after K."""

    patience: int = DEFAULT_PATIENCE

    def parse(self, arg: str, option: str) -> Converged:
        try:
            patience = int(arg) if arg else DEFAULT_PATIENCE
        except ValueError:
            patience = 0
        if patience < 1:
            raise OptionError(f"{option}: the patience P must be an integer >= 1")
        return Converged(patience)

    def argument(self) -> str:
        return str(self.patience)

    def fired(self, t: Trajectories) -> np.ndarray:
        return t.run >= self.patience


class HighestQ(_BuiltIn):
    """The most confident decodable answer."""

    def choose(self, c: Candidates) -> np.ndarray:
        return best(c.ok, c.confidence)


class MostConverged(_BuiltIn):
    """The answer that had been stable longest, then the most confident."""

    def choose(self, c: Candidates) -> np.ndarray:
        return best(c.ok, c.stability, c.confidence)


def vote(c: Candidates, eligible: np.ndarray) -> np.ndarray:
    """The eligible answer with the most eligible votes, then the highest mean confidence."""
    pool = c.equal & eligible[:, None] & eligible[None]
    pool_votes = pool.sum(axis=1)
    mean_conf = (pool * c.confidence[None]).sum(axis=1) / np.maximum(pool_votes, 1)
    return best(eligible, pool_votes, mean_conf)


class Vote(_BuiltIn):
    """The most common decodable answer (ties: the higher mean confidence)."""

    def choose(self, c: Candidates) -> np.ndarray:
        return vote(c, c.ok)


class Valid(_BuiltIn):
    """The vote among the answers the task's checker accepts, else among all."""

    checks = True

    def choose(self, c: Candidates) -> np.ndarray:
        passed = c.passed()
        any_pass = np.asarray(passed.any(axis=0))
        return vote(c, np.where(any_pass[None], passed, c.ok))


@hookimpl
def register_components(register):
    register("halt_policy", "fixed", Fixed(), "stop after the depth K")
    register("halt_policy", "q", HaltingHead(), "stop when the halting head fires (q_halt > 0)")
    register("halt_policy", "converged", Converged(), "stop when the answer is the same P steps")
    register("select_rule", "q", HighestQ(), "the most confident answer")
    register("select_rule", "vote", Vote(), "the most common answer")
    register("select_rule", "converged", MostConverged(), "the longest-stable answer")
    register("select_rule", "valid", Valid(), "the vote among answers the task's checker accepts")
