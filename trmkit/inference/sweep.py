"""The cost curve: accuracy against compute over depth x breadth x halting x selection.

One recording per diversity source (augmentations, noise) at the largest depth and sample
count serves every point: `trmkit.inference.engine.decide` replays a smaller depth, the
first S samples, another halting policy or selection rule without running the model again
(samples are nested: the first 4 of 16 are exactly what ``--samples 4`` runs). Compute is
counted in forward passes per puzzle (the sum of every trajectory's steps, what per-row
halting costs) and in seconds, from the wall time per forward row measured in this run.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from trmkit import atomic
from trmkit.batch import IGNORE_LABEL_ID
from trmkit.errors import OptionError
from trmkit.inference.engine import (
    RowBatch,
    answer_checker,
    augmentation_allowed,
    check_policy,
    decide,
    record,
)
from trmkit.inference.policy import HaltPolicy, InferencePolicy, SelectPolicy, check_record_fits
from trmkit.inference.scoring import samples_per_batch, seq_scores
from trmkit.models.protocol import NoisyRecursion, RecursiveModel
from trmkit.plugins import component_specs
from trmkit.reports import pareto_front, plot_sweep
from trmkit.task import AnswerChecker, Task

DEFAULT_SAMPLES = (1, 2, 4, 8, 16)
DEFAULT_NOISE = 0.1
SOURCES = ("augment", "noise")


@attrs.frozen
class SweepGrid:
    depths: tuple[int, ...]
    samples: tuple[int, ...]
    halts: tuple[HaltPolicy, ...]
    selects: tuple[SelectPolicy, ...]
    sources: tuple[str, ...]
    """diversity sources: "augment" and/or "noise"."""
    noise: float = DEFAULT_NOISE
    seed: int = 0


def default_grid(
    model: RecursiveModel,
    task: Task | None,
    per_variant_ids: bool,
    *,
    depths: tuple[int, ...] | None = None,
    samples: tuple[int, ...] | None = None,
    noise: float = DEFAULT_NOISE,
    seed: int = 0,
    sources: tuple[str, ...] | None = None,
) -> SweepGrid:
    """Depths 1, 2, 4, ... up to 2 x N_sup (and N_sup itself); samples 1..16; every registered
    halting policy and selection rule at its defaults that needs no auxiliary output (and no
    answer checker where the task has none); the diversity sources asked for (default: both,
    where the model and task support them)."""
    trained = model.halt_max_steps
    if depths is None:
        depths = tuple(
            sorted({trained, *(2**i for i in range(8) if 2**i <= 2 * trained), 2 * trained})
        )
    samples = samples or DEFAULT_SAMPLES
    offered = (augmentation_allowed(task, per_variant_ids), isinstance(model, NoisyRecursion))
    supported = [source for source, ok in zip(SOURCES, offered, strict=True) if ok]
    if sources is None:
        sources = tuple(supported)
    for source in sources:
        if source not in SOURCES:
            raise OptionError(f"--sweep-sources {source!r}: expected augment and/or noise")
        if source not in supported:
            raise OptionError(
                f"--sweep-sources {source}: this checkpoint cannot use it "
                f"(it supports: {', '.join(supported) or 'none'})"
            )
    if max(samples) > 1 and not sources:
        raise OptionError(
            "--sweep: this model and task offer no source of sample diversity "
            "(no augmentation, no latent noise); sweep depth only with "
            "--sweep-samples 1"
        )
    return SweepGrid(
        depths=tuple(depths),
        samples=tuple(samples),
        halts=_registered(HaltPolicy, task),
        selects=_registered(SelectPolicy, task),
        sources=tuple(sources) or ("augment",),
        noise=noise,
        seed=seed,
    )


def _registered(cls: type, task: Task | None) -> tuple:
    """Every registered rule of ``cls``'s kind that the sweep can run at its defaults."""
    checker = task is not None and isinstance(task.evaluator, AnswerChecker)
    chosen = []
    for name in component_specs(cls.KIND):  # type: ignore[attr-defined]
        try:
            rule = cls(name)
        except OptionError:  # its defaults need an argument: swept only when named
            continue
        if not rule.needs and (checker or not rule.rule.checks):
            chosen.append(rule)
    return tuple(chosen)


@attrs.define
class SweepReport:
    config: dict[str, Any]
    points: list[dict[str, Any]]

    def baseline(self) -> dict[str, Any]:
        """The plain evaluation: 1 sample, fixed halting, at the trained depth."""
        trained = self.config["trained_steps"]
        return next(
            p
            for p in self.points
            if p["samples"] == 1 and p["halt"] == "fixed" and p["depth"] == trained
        )

    def best_within(self, factor: float) -> dict[str, Any]:
        """The most accurate point within ``factor`` x the baseline's forward passes."""
        budget = factor * self.baseline()["forward_passes"] + 1e-9
        pool = [p for p in self.points if p["forward_passes"] <= budget]
        return max(pool, key=lambda p: (p["exact_accuracy"], -p["forward_passes"]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "baseline": self.baseline(),
            "best_within_8x": self.best_within(8.0),
            "pareto_front": pareto_front(self.points),
            "points": self.points,
        }

    def write(self, out_dir: Path, plot: bool = True) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        written = [
            atomic.write_text(out_dir / "sweep.json", json.dumps(self.to_dict(), indent=2) + "\n")
        ]
        title = (
            f"{self.config['task']}: {self.config['count']} puzzles, "
            f"trained N_sup {self.config['trained_steps']}"
        )
        if plot and plot_sweep(self.points, out_dir / "sweep.png", title):
            written.append(out_dir / "sweep.png")
        return written


@torch.no_grad()
def run_sweep(
    model: RecursiveModel,
    split: Any,
    task: Task | None,
    grid: SweepGrid,
    *,
    batch_size: int = 256,
    max_examples: int = 0,
    progress: bool = False,
) -> SweepReport:
    """Evaluate every point of ``grid`` on a store split (one process)."""
    from tqdm.auto import tqdm

    from trmkit.data.loader import EvalLoader

    per_variant = int(split.meta.num_puzzle_identifiers) > 1
    depth, s_max = max(grid.depths), max(grid.samples)
    combos = [
        (h, sel, d, s)
        for h, sel, d, s in itertools.product(grid.halts, grid.selects, grid.depths, grid.samples)
        if s > 1 or sel == grid.selects[0]
    ]
    points: list[dict[str, Any]] = []
    was_training = model.training
    model.eval()
    count = 0
    rules = (*grid.halts, *grid.selects)
    needs = {name: f"--sweep ({r.OPTION} {r.kind})" for r in rules for name in r.needs}
    # with one sample per puzzle every source runs the same exact trajectory: record it once
    sources = grid.sources if s_max > 1 else grid.sources[:1]
    try:
        for source in sources:
            policy = InferencePolicy(
                steps=depth,
                samples=s_max,
                augment=source == "augment",
                noise=grid.noise if source == "noise" else 0.0,
                select="vote",
                seed=grid.seed,
            )
            if s_max > 1:
                check_policy(policy, model, task, per_variant)
            sums = np.zeros((len(combos), 3))  # exact, token accuracy, forward passes
            seconds, rows_run, count = 0.0, 0, 0
            device = next(model.parameters()).device
            generator = torch.Generator(device=device).manual_seed(grid.seed * 1009)
            per_batch = samples_per_batch(batch_size, s_max, 1)
            check_record_fits(depth, s_max, per_batch, int(split.meta.seq_len), aux=len(needs))
            loader = EvalLoader(split, per_batch)
            n_batches = len(loader)
            if max_examples > 0:
                n_batches = min(n_batches, -(-max_examples // per_batch))
            batches = tqdm(
                itertools.islice(loader, n_batches),
                total=n_batches,
                desc=f"sweep ({source})",
                leave=False,
                disable=not progress,
            )
            for batch in batches:
                labels = np.asarray(batch["labels"])
                counted = (np.asarray(batch["puzzle_index"]) >= 0) & (
                    (labels != IGNORE_LABEL_ID).sum(-1) > 0
                )
                rows = RowBatch(
                    inputs=np.asarray(batch["inputs"]),
                    puzzle_ids=np.asarray(batch["puzzle_identifiers"]),
                    keys=np.asarray(batch["example_index"]),
                )
                rec = record(
                    model,
                    rows,
                    policy,
                    task,
                    depth=depth,
                    per_variant_ids=per_variant,
                    generator=generator,
                    needs=needs,
                )
                seconds += rec.seconds
                rows_run += len(labels)
                count += int(counted.sum())
                checker = (
                    answer_checker(task, rec.inputs)
                    if task is not None and any(r.rule.checks for r in rules)
                    else None
                )
                for c, (halt, select, d, s) in enumerate(combos):
                    dec = decide(rec, halt, select, depth=d, samples=s, checker=checker)
                    acc, exact = seq_scores(dec.preds, labels, counted)
                    sums[c] += (exact.sum(), acc.sum(), dec.steps[:, counted].sum())
            per_pass = seconds / max(rows_run * s_max * depth, 1)
            n = max(count, 1)
            for c, (halt, select, d, s) in enumerate(combos):
                passes = float(sums[c, 2] / n)
                points.append(
                    {
                        "source": source if s > 1 else "-",
                        "halt": str(halt),
                        "select": str(select) if s > 1 else "-",
                        "depth": d,
                        "samples": s,
                        "exact_accuracy": float(sums[c, 0] / n),
                        "accuracy": float(sums[c, 1] / n),
                        "forward_passes": passes,
                        "mean_steps": passes / s,
                        "seconds_per_puzzle": passes * per_pass,
                    }
                )
    finally:
        model.train(was_training)
    # points at 1 sample do not depend on the source: keep one copy
    unique: dict[tuple, dict[str, Any]] = {}
    for p in points:
        unique.setdefault((p["source"], p["halt"], p["select"], p["depth"], p["samples"]), p)
    config = {
        "task": task.name if task is not None else None,
        "count": count,
        "trained_steps": model.halt_max_steps,
        "depths": list(grid.depths),
        "samples": list(grid.samples),
        "halts": [str(h) for h in grid.halts],
        "selects": [str(s) for s in grid.selects],
        "sources": list(sources),
        "noise": grid.noise,
        "seed": grid.seed,
        "batch_size": batch_size,
        "device": str(next(model.parameters()).device),
        "threads": torch.get_num_threads(),
    }
    return SweepReport(config=config, points=list(unique.values()))


__all__ = [
    "DEFAULT_NOISE",
    "DEFAULT_SAMPLES",
    "SweepGrid",
    "SweepReport",
    "default_grid",
    "run_sweep",
]
