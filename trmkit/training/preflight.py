"""Before the first step: will this run finish here, and will one step fit in memory?

`trmkit train` calls `preflight` (unless ``--no-preflight``) before the dataset is built or
the model allocated. A run that takes too long is only warned about (one line); a step that
does not fit in memory is refused (`check_memory`, a one-line `ConfigError` naming a batch
that fits or the task's CPU recipe; docs/training.md, "Preflight", and docs/errors.md,
"Resources: bounded before any promise"):

* **time**: the whole run's matmul FLOPs (`RecursiveModel.step_flops` x the step budget)
  over a matmul rate measured here in ~0.2 s, derated by `ACHIEVED_FRACTION` (the engine
  reaches 40-70% of that peak at the presets' shapes, docs/engine.md). When that exceeds
  `DAY_SECONDS`, the line gives the estimate and a CPU recipe of the same task plugin to try.
* **memory**: parameters (built on torch's meta device, so nothing is allocated) x
  `STATE_COPIES` (weights, gradients, two Adam moments, the EMA) plus the activations the
  autograd graph of one supervision step keeps, as the model counts them
  (`trmkit.models.protocol.StepMemory`; unknown, so unchecked, for a model that does not).
  When that exceeds `MEMORY_HEADROOM` of the memory this process may use
  (`trmkit.memory.available_memory`: the host's MemAvailable and the cgroup limit, whichever
  is smaller; no check where neither is known), the line names an
  ``optim.global_batch_size`` that fits.

The estimates are pure functions of a `Machine` (rate, memory) so tests inject both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from trmkit.memory import gib

DAY_SECONDS = 24 * 3600.0
ACHIEVED_FRACTION = 0.5
"""share of the measured matmul peak a training step reaches (measured 40-70% on CPU)."""
STATE_COPIES = 5
"""fp32 copies of every dense parameter during training: weights, grads, Adam m and v, EMA."""
MEMORY_HEADROOM = 0.8
"""share of the available memory one step may use (the rest: allocator slack, data, OS)."""
FLOAT_BYTES = 4  # the CPU path is fp32 throughout
ACTIVATION_SLACK = 1.25
"""measured peak RSS of one step over the model's `step_activation_floats` count: 0.93-1.29 at the
sudoku-quick, maze-quick and paper Sudoku shapes (backward temporaries, allocator)."""


@attrs.frozen
class Machine:
    matmul_flops: float
    """measured fp32 matmul rate of this process, FLOP/s."""
    available_bytes: int | None
    """memory available to a new allocation (None: unknown, no memory check)."""


@attrs.frozen
class Estimate:
    steps: int | None
    step_flops: int
    seconds: float | None
    """whole-run training time (None when the step budget is unknown)."""
    state_bytes: int
    """parameters and buffers x their training copies."""
    activation_bytes: int | None
    """one training step's saved activations (None: the model does not say)."""
    sequence_bytes: int | None
    """the saved activations of one sequence (the step's grow linearly with the batch)."""

    @property
    def step_bytes(self) -> int | None:
        return None if self.activation_bytes is None else self.state_bytes + self.activation_bytes


# --------------------------------------------------------------------------- the machine


def measure_matmul_rate(budget: float = 0.2, n: int = 512) -> float:
    """Best fp32 ``n^3`` matmul rate over ``budget`` seconds (FLOP/s), with torch's current
    thread count: the same rate the training steps will see."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    end = time.perf_counter() + budget
    while True:
        t0 = time.perf_counter()
        torch.mm(a, b)
        t1 = time.perf_counter()
        best = min(best, t1 - t0)
        if t1 >= end:
            break
    return 2.0 * n**3 / best


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes this process may still allocate: min(host MemAvailable, cgroup headroom)
    (`trmkit.memory.available_memory`; ``meminfo`` replaces /proc/meminfo in tests)."""
    from trmkit import memory

    return memory.available_memory(memory.MemorySources(meminfo=meminfo))


# --------------------------------------------------------------------------- the model


def activation_bytes(model: Any, batch: int) -> int | None:
    """One training step's saved activations for ``batch`` sequences: the model's own count
    (`trmkit.models.protocol.StepMemory`) x `ACTIVATION_SLACK`; None when the model does not
    say (its memory estimate is unknown)."""
    from trmkit.models.protocol import StepMemory

    if not isinstance(model, StepMemory):
        return None
    return int(ACTIVATION_SLACK * FLOAT_BYTES * model.step_activation_floats(batch))


def scheduled_train_flops(model: Any, cfg: Any, batch: int) -> float:
    """A training step's FLOPs averaged over the budget: each stretch of ``cfg``'s schedule
    (`schedule_pieces`) weighed by its share of the steps; the model is left at p = 1."""
    from trmkit.models.protocol import set_progress
    from trmkit.models.schedule import schedule_pieces

    flops = 0.0
    for start, share, _ in schedule_pieces(cfg):
        set_progress(model, start)
        flops += share * model.step_flops(batch).train
    set_progress(model, 1.0)
    return flops


def estimate(
    model_name: str, cfg: Any, batch: int, steps: int | None, machine: Machine
) -> Estimate:
    """The run's time and one step's memory for ``batch`` sequences per step on ``machine``;
    a schedule (`schedule_pieces`) counts its step-weighted mean FLOPs and its peak memory.
    The model is built on torch's meta device: shapes and FLOP counts, no memory."""
    import torch

    from trmkit.models import build_model
    from trmkit.models.protocol import set_progress
    from trmkit.models.schedule import schedule_pieces

    try:
        with torch.device("meta"):
            model = build_model(model_name, cfg)
    except RuntimeError as exc:  # torch: "Storage size calculation overflowed with sizes=..."
        if "overflow" not in str(exc):
            raise
        from trmkit.errors import ConfigError

        raise ConfigError(
            f"preflight: model {model_name!r} has a tensor too large to exist ({exc}); "
            "choose a smaller model"
        ) from exc
    flops = round(scheduled_train_flops(model, cfg, batch))
    per_step: list[int | None] = []
    per_sequence: list[int | None] = []
    for start, _, _ in schedule_pieces(cfg):
        set_progress(model, start)
        per_step.append(activation_bytes(model, batch))
        per_sequence.append(activation_bytes(model, 1))
    set_progress(model, 1.0)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    rate = machine.matmul_flops * ACHIEVED_FRACTION
    return Estimate(
        steps=steps,
        step_flops=flops,
        seconds=None if steps is None else steps * flops / rate,
        state_bytes=STATE_COPIES * params + buffers,
        activation_bytes=_peak(per_step),
        sequence_bytes=_peak(per_sequence),
    )


def _peak(values: list[int | None]) -> int | None:
    """The largest of the schedule's values (None when the model cannot say)."""
    return None if None in values else max(v for v in values if v is not None)


def fitting_batch(est: Estimate, budget: float) -> int | None:
    """The largest batch (a multiple of 32, else a power of two) whose step fits ``budget``
    bytes; None when not even one sequence fits."""
    one, state = est.sequence_bytes, est.state_bytes
    if one is None or budget <= state:
        return None
    largest = int((budget - state) // one)
    if largest >= 32:
        return largest // 32 * 32
    if largest < 1:
        return None
    return 1 << (largest.bit_length() - 1)


# --------------------------------------------------------------------------- the messages


def format_duration(seconds: float) -> str:
    for unit, scale in (("days", DAY_SECONDS), ("hours", 3600), ("min", 60)):
        if seconds >= 2 * scale:
            return f"{seconds / scale:,.0f} {unit}"
    return f"{seconds:.0f} s"


SLOW_STEP_SECONDS = 1.0
"""A step slower than this, with the budget not yet known, names the task's CPU preset."""


def time_line(est: Estimate, machine: Machine, alternative: str | None) -> str:
    """The line for a run that would take more than a day here (``est.seconds`` known)."""
    assert est.seconds is not None
    per_step = est.seconds / max(1, est.steps or 1)
    line = (
        f"preflight: this run would take about {format_duration(est.seconds)} here "
        f"({est.steps:,} steps x {per_step:.1f} s at {ACHIEVED_FRACTION:.0%} of the "
        f"{machine.matmul_flops / 1e9:.0f} GFLOP/s matmul rate measured); it is a GPU "
        "recipe"
    )
    if alternative:
        line += f": on this machine try --recipe {alternative} instead"
    return line + " (starting anyway; --no-preflight skips this check)"


def slow_step_line(est: Estimate, machine: Machine, batch: int, alternative: str) -> str | None:
    """Before the data is built (the step budget unknown): one line naming the task's CPU
    preset when one step of this recipe takes over `SLOW_STEP_SECONDS` here, else None."""
    per_step = est.step_flops / (machine.matmul_flops * ACHIEVED_FRACTION)
    if est.seconds is not None or per_step <= SLOW_STEP_SECONDS:
        return None
    return (
        f"preflight: one step at batch {batch} takes about {per_step:.1f} s here (its step "
        "budget is known once the data is built); on this machine try --recipe "
        f"{alternative} instead (starting anyway; --no-preflight skips this check)"
    )


def memory_line(batch: int, est: Estimate, machine: Machine) -> str | None:
    """One line when one step would not fit the available memory, else None."""
    need, avail = est.step_bytes, machine.available_bytes
    if need is None or avail is None or need <= MEMORY_HEADROOM * avail:
        return None
    fits = fitting_batch(est, MEMORY_HEADROOM * avail)
    line = (
        f"preflight: one training step at batch {batch} needs about {gib(need)}, but this "
        f"process may use {gib(avail)} (available memory and cgroup limit); "
    )
    if fits is None:
        return line + "not even a batch of 1 fits: choose a smaller model"
    return line + (
        f"--set optim.global_batch_size={fits} fits (the step budget and learning "
        "rate schedule follow the batch)"
    )


def check_memory(recipe: Any, batch: int, est: Estimate, machine: Machine) -> None:
    """Refuse (`ConfigError`, one line) a step that does not fit ``machine``'s memory; the
    line names a batch that fits and the CPU recipe the task declares
    (``BuildDefaults.cpu_recipe``)."""
    from trmkit import plugins
    from trmkit.errors import ConfigError

    line = memory_line(batch, est, machine)
    if line is None:
        return
    cpu_recipe = plugins.get_task(recipe.data.task).defaults.cpu_recipe
    if cpu_recipe and cpu_recipe != recipe.name:  # the task's CPU recipe: a second way out
        line += f"; or try --recipe {cpu_recipe}"
    raise ConfigError(line + "; --no-preflight starts anyway")


def runs_on_cpu() -> bool:
    """Whether training runs on the CPU here (no CUDA device): the memory estimate is of the
    fp32 CPU path, so only there is a step that does not fit refused; on a GPU it stays the
    warning line (its memory is the device's, its precision bf16)."""
    import torch

    return not torch.cuda.is_available()


def check_model_fits(recipe: Any, cfg: Any, batch: int, available: int | None) -> None:
    """`check_memory` for the model of ``cfg`` (the trainer's: its real puzzle-id count,
    known once the data is built) on ``available`` bytes (None: unknown, no check); no
    matmul timing."""
    if available is None:
        return
    machine = Machine(matmul_flops=1.0, available_bytes=available)
    check_memory(recipe, batch, estimate(recipe.model.name, cfg, batch, None, machine), machine)


# --------------------------------------------------------------------------- the recipe


def quick_recipe(
    task_name: str, machine: Machine, limit_seconds: float = DAY_SECONDS
) -> str | None:
    """A CPU recipe for the task: its ``BuildDefaults.cpu_recipe``, else the recipe of the
    same plugin (tasks/*.toml, another task of it) whose step budget is known without data
    and whose run is estimated under ``limit_seconds`` on ``machine`` (the longest of those:
    the closest to the real thing); None when there is none."""
    from trmkit import plugins
    from trmkit.config import load_recipe
    from trmkit.errors import TrmkitError
    from trmkit.recipes import available_recipes

    task = plugins.get_task(task_name)
    if task.defaults.cpu_recipe:
        return task.defaults.cpu_recipe
    entries = plugins.task_entries()
    best: tuple[float, str] | None = None
    for name in available_recipes():
        try:
            recipe = load_recipe(name, [])
            other = plugins.get_task(recipe.data.task) if recipe.data.task else None
            if other is None or other.name == task.name:
                continue
            if entries[other.name].plugin != entries[task.name].plugin:
                continue
            steps = steps_without_data(recipe)
            if steps is None:
                continue
            est = estimate(
                recipe.model.name,
                model_config(recipe, other),
                recipe.optim.global_batch_size,
                steps,
                machine,
            )
        except TrmkitError:  # a broken recipe file is not this run's problem
            continue
        assert est.seconds is not None
        if est.seconds <= limit_seconds and (best is None or est.seconds > best[0]):
            best = (est.seconds, name)
    return None if best is None else best[1]


def steps_without_data(recipe: Any, meta: Any = None) -> int | None:
    """The trainer's step budget: train.max_steps, else epochs x groups x examples per group
    / global batch from the store's ``meta``, else from the recipe's ``data.subsample`` or
    generator ``count`` option (one example per group, as Sudoku and Maze); None if unknown."""
    from trmkit.data.loader import step_budget

    if recipe.train.max_steps is not None and recipe.train.max_steps > 0:
        return int(recipe.train.max_steps)
    batch = recipe.optim.global_batch_size
    if meta is not None:
        return int(step_budget(meta, batch, recipe.train.epochs))
    groups = recipe.data.subsample
    if groups is None and "count" in recipe.data.options:
        try:
            groups = int(recipe.data.options["count"])
        except ValueError:
            return None
    if groups is None:
        return None
    return int(recipe.train.epochs * groups / batch)


def model_config(recipe: Any, task: Any, num_puzzle_identifiers: int = 1) -> Any:
    codec = task.codec
    return recipe.model_config(
        seq_len=codec.seq_len,
        vocab_size=codec.vocab_size,
        num_puzzle_identifiers=num_puzzle_identifiers,
        batch_size=recipe.optim.global_batch_size,
    )


def store_meta(recipe: Any, task: Any, data_dir: Path | None) -> Any:
    """The train split's meta of ``--data`` or of the recipe's cached build (None if unbuilt)."""
    from trmkit.data import cache
    from trmkit.data.store import open_store
    from trmkit.errors import TrmkitError

    path = data_dir if data_dir is not None else cache.cached_dataset_path(task, recipe.data)
    if data_dir is None and not cache.is_built(path):
        return None
    try:
        return open_store(path, task).split("train").meta
    except TrmkitError:
        return None


def preflight(
    recipe: Any,
    *,
    data_dir: Path | None = None,
    max_steps: int | None = None,
    steps: int | None = None,
    machine: Machine | None = None,
    memory: bool = True,
    refuse: bool = False,
    echo: Callable[[str], None] = print,
) -> Estimate:
    """Check the recipe's time and memory here and ``echo`` one line per problem; with
    ``refuse``, a step that does not fit is a `ConfigError` (`check_memory`), raised before
    the matmul rate is measured.

    ``steps`` (the trainer's exact budget) or ``max_steps`` wins; otherwise the budget comes
    from the store's meta or the recipe (`steps_without_data`); when unknown, only memory is
    checked (call again with ``steps`` once the data is built)."""
    from trmkit import plugins

    task = plugins.get_task(recipe.data.task).with_options(recipe.data.options)
    meta = store_meta(recipe, task, data_dir)
    if steps is None:
        steps = max_steps if max_steps is not None else steps_without_data(recipe, meta)
    ids = int(meta.num_puzzle_identifiers) if meta is not None else 1
    cfg = model_config(recipe, task, ids)
    batch = recipe.optim.global_batch_size
    refuse = refuse and runs_on_cpu()
    if refuse and memory:
        check_model_fits(
            recipe, cfg, batch, machine.available_bytes if machine else available_memory()
        )
    machine = machine or Machine(measure_matmul_rate(), available_memory())
    est = estimate(recipe.model.name, cfg, batch, steps, machine)
    if est.seconds is not None and est.seconds > DAY_SECONDS:
        echo(time_line(est, machine, quick_recipe(task.name, machine)))
    elif task.defaults.cpu_recipe not in (None, recipe.name):
        slow = slow_step_line(est, machine, batch, task.defaults.cpu_recipe)
        if slow is not None:
            echo(slow)
    if memory and not refuse and (mem := memory_line(batch, est, machine)) is not None:
        echo(mem)
    return est


__all__ = [
    "ACHIEVED_FRACTION",
    "DAY_SECONDS",
    "Estimate",
    "Machine",
    "activation_bytes",
    "available_memory",
    "check_memory",
    "check_model_fits",
    "estimate",
    "fitting_batch",
    "measure_matmul_rate",
    "memory_line",
    "preflight",
    "quick_recipe",
    "runs_on_cpu",
    "steps_without_data",
    "time_line",
]
