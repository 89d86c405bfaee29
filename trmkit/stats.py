"""Small statistics for comparisons (base layer, pure Python: no numpy, no scipy).

* `wilson` -- the Wilson score interval of a proportion (k successes out of n): the
  uncertainty of one run's accuracy on its finite test set.
* `mean_interval` -- the mean of a few values (one per seed) with its Student-t interval:
  the uncertainty over training seeds.
* `paired_difference` -- the mean of per-seed differences ``b - a`` with its Student-t
  interval (the same seeds in both variants, so seed-to-seed noise shared by both cancels).

Every interval is two-sided at 95%. The t quantiles for 1..30 degrees of freedom are the
tabulated values; above 30 the Cornish-Fisher expansion of t in 1/df (its first four terms,
accurate to about 1e-6 there).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

Z95 = 1.959963984540054
"""the 0.975 quantile of the standard normal."""

T95 = (
    12.706204736,
    4.302652730,
    3.182446305,
    2.776445105,
    2.570581836,
    2.446911851,
    2.364624251,
    2.306004135,
    2.262157163,
    2.228138852,
    2.200985160,
    2.178812830,
    2.160368656,
    2.144786688,
    2.131449546,
    2.119905299,
    2.109815578,
    2.100922040,
    2.093024054,
    2.085963447,
    2.079613845,
    2.073873068,
    2.068657610,
    2.063898562,
    2.059538553,
    2.055529439,
    2.051830516,
    2.048407142,
    2.045229642,
    2.042272456,
)
"""the 0.975 quantile of Student's t with df = 1..30 (T95[df - 1])."""


def t_quantile_95(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` >= 1 degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T95):
        return T95[df - 1]
    z = Z95
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


@attrs.frozen
class Interval:
    """An estimate with its 95% interval; ``low``/``high`` are None where one value gives
    no spread (one seed)."""

    value: float
    low: float | None
    high: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}

    def clipped(self, lo: float, hi: float) -> Interval:
        """The interval cut to the values the quantity can take (an accuracy in [0, 1], a
        difference of accuracies in [-1, 1]): a t interval of few seeds is symmetric and
        wide, and would otherwise claim impossible values."""
        low, high = (None if x is None else min(hi, max(lo, x)) for x in (self.low, self.high))
        return Interval(self.value, low, high, self.n)

    def excludes(self, x: float) -> bool:
        """Whether the interval lies wholly on one side of ``x``."""
        return self.low is not None and self.high is not None and (self.low > x or self.high < x)


def wilson(successes: float, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval of the proportion ``successes / n`` (``n`` >= 1)."""
    if n < 1:
        raise ValueError(f"the Wilson interval needs n >= 1, got {n}")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, center - half)  # exact at the ends
    high = 1.0 if successes >= n else min(1.0, center + half)
    return Interval(p, low, high, n)


def accuracy_interval(accuracy: float, count: int) -> Interval:
    """`wilson` of an accuracy measured on ``count`` puzzles (successes rounded back)."""
    return wilson(round(accuracy * count), count)


def mean_interval(values: Sequence[float]) -> Interval:
    """The mean of ``values`` with its Student-t 95% interval (none for one value)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return Interval(mean, None, None, 1)
    half = t_quantile_95(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Interval:
    """Mean of ``b[i] - a[i]`` (pairs matched by seed) with its Student-t 95% interval."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    return mean_interval([y - x for x, y in zip(a, b, strict=True)])


def exact_interval_fields(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``exact_accuracy_ci95_low/high``: the Wilson interval of an evaluation's exact
    accuracy on its ``count`` puzzles (nothing when the metrics lack either)."""
    acc, count = metrics.get("exact_accuracy"), metrics.get("count")
    if not isinstance(acc, (int, float)) or not isinstance(count, (int, float)) or count < 1:
        return {}
    ci = accuracy_interval(float(acc), int(count))
    assert ci.low is not None and ci.high is not None  # a Wilson interval always has both
    return {"exact_accuracy_ci95_low": ci.low, "exact_accuracy_ci95_high": ci.high}


def describe_exact_interval(metrics: Mapping[str, Any]) -> str:
    """``"[0.8994, 0.9556] Wilson 95% of 300"`` for the line `trmkit eval` prints."""
    fields = exact_interval_fields(metrics)
    if not fields:
        return ""
    return (
        f"[{fields['exact_accuracy_ci95_low']:.4f}, {fields['exact_accuracy_ci95_high']:.4f}] "
        f"Wilson 95% of {int(metrics['count'])} "
    )


__all__ = [
    "T95",
    "Z95",
    "Interval",
    "accuracy_interval",
    "describe_exact_interval",
    "exact_interval_fields",
    "mean_interval",
    "paired_difference",
    "t_quantile_95",
    "wilson",
]
