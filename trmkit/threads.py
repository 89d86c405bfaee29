"""The torch thread count for `trmkit train` and `trmkit eval` (base layer: imports nothing
from trmkit but `trmkit.errors`).

PyTorch's default is one intra-op thread per *logical* CPU of the machine, whatever the
process may actually run on and however many processes share it. On a shared or
hyper-threaded CPU that oversubscribes the cores: a process that did so ran ~10x slower on
the 2-core test machine. The rule here (docs/training.md, "Threads"):

1. an explicit setting wins: ``TRMKIT_NUM_THREADS=N``, then ``OMP_NUM_THREADS=N`` (which
   torch itself honours; trmkit then leaves the count alone);
2. otherwise one thread per *physical* core this process may run on (its CPU affinity,
   hyper-thread siblings counted once), divided among the processes of this machine when
   ``accelerate launch`` starts several (``LOCAL_WORLD_SIZE``), at least 1.

An explicit count is bounded (`max_threads`): at most `THREADS_PER_CPU` x the machine's
logical CPUs, never above `THREAD_CAP`. More threads than that only oversubscribe the
cores, and tens of thousands of them exhaust the process (torch crashes). A larger value
is a one-line `ConfigError` naming the variable, the value and the bound (docs/errors.md,
"Resources: bounded before any promise").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from trmkit.errors import ConfigError

ENV_VAR = "TRMKIT_NUM_THREADS"
THREADS_PER_CPU = 4
"""an explicit thread count may oversubscribe each logical CPU at most this many times."""
THREAD_CAP = 1024
"""and never exceeds this, however many CPUs the machine reports."""


@attrs.frozen
class ThreadChoice:
    threads: int
    reason: str
    """why this count: "TRMKIT_NUM_THREADS", "OMP_NUM_THREADS" or "physical cores"."""


def allowed_cpus() -> set[int]:
    """Logical CPUs this process may run on (its affinity; all CPUs where unknown)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def physical_cores(
    cpus: set[int] | None = None, sysfs: Path = Path("/sys/devices/system/cpu")
) -> int:
    """Distinct physical cores among ``cpus`` (Linux topology files; else one per CPU)."""
    cpus = allowed_cpus() if cpus is None else cpus
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topo = sysfs / f"cpu{cpu}" / "topology"
        try:
            package = (topo / "physical_package_id").read_text().strip()
            core = (topo / "core_id").read_text().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))


def max_threads(cpus: int | None = None) -> int:
    """The largest explicit thread count accepted on a machine with ``cpus`` logical CPUs."""
    cpus = os.cpu_count() if cpus is None else cpus
    return max(1, min(THREAD_CAP, THREADS_PER_CPU * (cpus or 1)))


def _positive(env: Mapping[str, str], name: str, bound: int | None = None) -> int | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    shown = text if len(text) <= 24 else text[:21] + "..."
    if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) < 1:
        raise ConfigError(f"{name}={shown!r}: expected a positive whole number of threads")
    value = int(text)
    if bound is not None and value > bound:
        raise ConfigError(
            f"{name}={value}: more than the {bound} threads allowed here "
            f"({THREADS_PER_CPU} per logical CPU, at most {THREAD_CAP}); set it to at most "
            f"{bound}, or unset it for one thread per physical core"
        )
    return value


def choose_threads(
    env: Mapping[str, str] | None = None, cores: int | None = None, cpus: int | None = None
) -> ThreadChoice:
    """The thread count the rule above gives (pure: pass ``env``/``cores``/``cpus``, the
    logical CPU count bounding an explicit setting, to test it)."""
    env = os.environ if env is None else env
    bound = max_threads(cpus)
    for name in (ENV_VAR, "OMP_NUM_THREADS"):
        explicit = _positive(env, name, bound)
        if explicit is not None:
            return ThreadChoice(explicit, name)
    cores = physical_cores() if cores is None else cores
    local = _positive(env, "LOCAL_WORLD_SIZE") or 1
    return ThreadChoice(max(1, cores // local), "physical cores")


def configure_threads(env: Mapping[str, str] | None = None) -> ThreadChoice:
    """Apply `choose_threads` to torch's intra-op pool (call before the first torch op)."""
    import torch

    choice = choose_threads(env)
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice


__all__ = [
    "ENV_VAR",
    "THREADS_PER_CPU",
    "THREAD_CAP",
    "ThreadChoice",
    "allowed_cpus",
    "choose_threads",
    "configure_threads",
    "max_threads",
    "physical_cores",
]
