"""The training loop on Hugging Face Accelerate: one code path for 1 CPU process or N GPUs.

As the official loop: every optimiser step is one supervision step of the model on a carry
that persists across batches; the step budget is `trmkit.data.loader.step_budget`; the
learning rate of every optimiser is set from the warmup/cosine schedule (with the
already-incremented step) before it steps; the summed loss is divided by the global batch
before backward; dense weights use the ``optim.name`` optimiser (AdamATan2 by default), the
puzzle-embedding table sparse sign-SGD; the EMA is updated after every step. A model that
is `ProgressAware` gets p = (steps done) / total_steps before each step and p = 1 for
evaluation (docs/engine.md, "Training progress and schedules").

Distribution (docs/training.md, "`trmkit train`"): each rank takes its slice of the global
batch, gradients are all-reduced by hand (`trmkit.training.launch.allreduce_grads`), the
sparse optimiser all-gathers its rows; the model is not wrapped in DDP. Precision: bf16 on
CUDA, fp32 elsewhere (``forward_dtype = "auto"``); Accelerate's mixed_precision matches.

Evaluation uses the EMA weights swapped into the live model (no deep copy of the train
state; docs/engine.md, deviation 6) and random-number states saved and restored around it,
so a run with evaluations follows exactly the same trajectory as one without, and a resumed
run the same as an uninterrupted one. Checkpoints have their own step and wall-clock
intervals (`trmkit.training.intervals`), so a killed run loses at most one interval.

What is not the loop lives below it: the Accelerator and the launch check in
`trmkit.training.launch`, the dataset cache in `trmkit.data.cache`, what is due after a step
(`StepPlan.after` in `trmkit.training.intervals`), the bundle and its files
(`trmkit.checkpoint.resume`: train_state, rank_<r>, the checks before a resume), the resume
check on the recipe in `trmkit.config.resume_mismatch`, the metrics window and log with its
trackers in `trmkit.training.metrics_log`, plots in `trmkit.reports`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from pathlib import Path
from typing import Any

import attrs
import torch
from tqdm.auto import tqdm

from trmkit import atomic, plugins
from trmkit.checkpoint import bundle as ckpt
from trmkit.checkpoint import resume as state_files
from trmkit.checkpoint.manifest import Manifest
from trmkit.config import Recipe, recipe_to_dict
from trmkit.data.cache import prepare_dataset
from trmkit.data.loader import TrainLoader
from trmkit.data.store import open_store
from trmkit.evaluation import evaluate
from trmkit.models import build_model, compile_model
from trmkit.models.protocol import RecursiveModel, set_progress
from trmkit.reports import flat_params, plot_curves
from trmkit.training.ema import EMA
from trmkit.training.intervals import CheckpointClock, StepPlan, TimeBudget
from trmkit.training.launch import (
    allreduce_grads,
    broadcast_weights,
    lock_for_ranks,
    start_accelerator,
)
from trmkit.training.metrics_log import STOP_SPLIT, RunLog, TrainWindow
from trmkit.training.optim import build_optimizers
from trmkit.training.preflight import available_memory, check_model_fits
from trmkit.training.rng import rng_state, seed_everything, set_rng_state
from trmkit.training.schedule import set_lr


@attrs.define
class TrainResult:
    run_dir: Path
    step: int
    total_steps: int
    eval_metrics: dict[str, float]
    checkpoint: Path | None
    seconds: float


class Trainer:
    """Builds everything from a recipe and runs (or resumes) a training run in ``run_dir``."""

    def __init__(
        self,
        recipe: Recipe,
        *,
        run_dir: Path,
        data_dir: Path | None = None,
        max_steps: int | None = None,
        resume: bool = False,
        log_with: str | None = None,
        progress: bool = True,
        cpu: bool | None = None,
        check_memory: bool = False,
    ) -> None:
        self.recipe = recipe
        self.run_dir = Path(run_dir)
        self.ckpt_root = state_files.checkpoints_dir(self.run_dir)
        self.progress = progress
        self.log_with, self.check_memory = log_with, check_memory
        acc = self.accelerator = start_accelerator(self.run_dir, cpu, log_with)
        self.rank, self.world, self.device = acc.process_index, acc.num_processes, acc.device
        # one writer per run directory (docs/errors.md, "Run directories"): checked before
        # anything is built or written
        self.lock, self.owner = lock_for_ranks(acc, self.run_dir)
        try:
            self._build(recipe, data_dir, max_steps, resume)
        except BaseException:
            if self.lock is not None:
                self.lock.discard()  # a refused start leaves no run directory behind
            raise

    def _build(
        self, recipe: Recipe, data_dir: Path | None, max_steps: int | None, resume: bool
    ) -> None:
        """Everything after the lock: data, model, optimisers, step plan, resume."""
        acc = self.accelerator
        train, optim = recipe.train, recipe.optim
        saved = state_files.resumable_manifest(self.run_dir, recipe, max_steps) if resume else None
        state_files.prepare_run_dir(self.run_dir, fresh=saved is None, main=acc.is_main_process)

        self.task = plugins.get_task(recipe.data.task)
        if data_dir is None and saved is not None:
            data_dir = state_files.trained_store_path(saved, self.run_dir, self.task)
        if not data_dir:
            main = acc.is_main_process
            data_dir = prepare_dataset(self.task, recipe.data, acc, progress=self.progress and main)
        self.data_dir = Path(data_dir)
        self.store = open_store(self.data_dir, self.task)
        self.task = self.task.for_store(self.store.attrs)  # as built (docs/tasks-arc.md)
        if saved is not None:
            state_files.check_same_data(saved, self.store, self.data_dir, self.run_dir)
        self.train_split = self.store.split("train")
        self.test_split = self.store.split("test") if "test" in self.store.splits else None
        meta = self.train_split.meta

        self.global_batch = optim.global_batch_size
        # As the official code, one loader iteration spans eval_interval epochs.
        self.loader = TrainLoader(
            self.train_split,
            self.global_batch,
            seed=train.seed,
            rank=self.rank,
            world_size=self.world,
            epochs_per_iter=max(1, train.eval_interval),
        )
        self.local_batch = self.loader.local_batch_size

        # Identical initial weights on every rank (then broadcast anyway, for safety).
        seed_everything(train.seed)
        self.model_cfg = recipe.model_config(
            seq_len=meta.seq_len,
            vocab_size=meta.vocab_size,
            num_puzzle_identifiers=meta.num_puzzle_identifiers,
            batch_size=self.local_batch,
        )
        if self.check_memory and self.device.type == "cpu":  # ids known now, nothing big allocated
            check_model_fits(recipe, self.model_cfg, self.local_batch, available_memory())
        self.model: RecursiveModel = build_model(recipe.model.name, self.model_cfg).to(self.device)
        if self.world > 1:
            broadcast_weights(self.model)
        self.optimizers = build_optimizers(self.model, optim)
        self.ema = EMA(self.model, optim.ema_rate) if optim.ema else None
        if train.compile:
            compile_model(self.model)  # state_dict keys unchanged

        self.plan = StepPlan.resolve(meta, self.global_batch, train, max_steps)
        self.total_steps, self.eval_every = self.plan.total_steps, self.plan.eval_every
        self.checkpoints = CheckpointClock.from_recipe(train)
        if saved is not None:
            state_files.check_budget(self.run_dir, saved.step, self.total_steps, max_steps)

        self.step = 0
        self.carry: Any = None
        self._run_start: float | None = None  # perf_counter at `run`, for the eval line
        self.last_eval: dict[str, float] = {}
        self.log = RunLog(self.run_dir / "metrics.jsonl", acc)
        acc.wait_for_everyone()
        if resume:
            self._resume()
        else:
            # Per-rank randomness (exploration) as the official code: seed + rank.
            seed_everything(train.seed + self.rank)
        self._save_config()

    def _save_config(self) -> None:
        if not self.accelerator.is_main_process:
            return
        resolved = {
            "recipe": recipe_to_dict(self.recipe),
            "model_config": attrs.asdict(self.model_cfg),
            "data_dir": str(self.data_dir),
            "total_steps": self.total_steps,
            "eval_every_steps": self.eval_every,
            "processes": self.world,
            "global_batch_size": self.global_batch,
            "device": str(self.device),
        }
        atomic.write_text(self.run_dir / "config.json", json.dumps(resolved, indent=2, default=str))

    def close(self) -> None:
        """Give up the run directory's lock (also at garbage collection and process end)."""
        if self.lock is not None:
            self.lock.release()

    # -------------------------------------------------------------- the loop

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One supervision step + one update of every optimiser; returns the metric sums."""
        if self.carry is None:
            self.carry = self.model.initial_carry(batch)
        set_progress(self.model, self.step / self.total_steps)
        result = self.model(self.carry, batch)
        self.carry = result.carry
        (result.loss / self.global_batch).backward()
        if self.world > 1:
            allreduce_grads(self.model.parameters())
        self.step += 1
        optim = self.recipe.optim
        set_lr(self.optimizers, self.step, optim.warmup_steps, self.total_steps, optim.lr_min_ratio)
        for opt in self.optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        return result.metrics

    def run(self, until: int | None = None) -> TrainResult:
        """Train to the step budget (or only up to step ``until``: tests stop a run there)."""
        acc = self.accelerator
        start = self._run_start = time.perf_counter()
        if self.log_with:
            acc.init_trackers(self.run_dir.name, config=flat_params(recipe_to_dict(self.recipe)))
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            disable=not (self.progress and acc.is_main_process),
        )
        self.model.train()
        window = TrainWindow()
        batches = itertools.chain.from_iterable(itertools.repeat(self.loader))
        self.checkpoints.mark()
        budget = TimeBudget.from_recipe(self.recipe.train)
        with bar:
            stop = self.total_steps if until is None else min(until, self.total_steps)
            while self.step < stop:
                batch = {
                    k: torch.as_tensor(v).to(self.device, non_blocking=True)
                    for k, v in next(batches).items()
                }
                window.add(self.train_step(batch))
                bar.update(1)
                due = self.plan.after(self.step, self.checkpoints, budget, self.device, self.world)
                if due.log:
                    reduce = (lambda t: acc.reduce(t, reduction="sum")) if self.world > 1 else None
                    record = window.close(self.global_batch, reduce)
                    if record:
                        lr = self.optimizers[0].param_groups[0]["lr"]
                        self.log.record(self.step, "train", {**record, "lr": lr})
                    bar.set_postfix(
                        loss=f"{record.get('lm_loss', float('nan')):.4f}",
                        exact=f"{record.get('exact_accuracy', 0.0):.3f}",
                    )
                if due.evaluate:
                    self.evaluate_now()
                if due.save:
                    self.save_checkpoint()
                if due.out_of_time:
                    minutes = self.recipe.train.max_minutes
                    self.log.record(self.step, STOP_SPLIT, {"minutes": minutes}, track=False)
                    acc.print(
                        f"stopped at step {self.step} of {self.total_steps}: the time budget "
                        f"train.max_minutes = {minutes:g} is spent"
                    )
                    break
        if acc.is_main_process and not plot_curves(self.log.read(), self.run_dir / "curves.png"):
            acc.print("note: matplotlib not installed (pip install 'trmkit[plots]'): no curves.png")
        acc.end_training()
        return TrainResult(
            run_dir=self.run_dir,
            step=self.step,
            total_steps=self.total_steps,
            eval_metrics=self.last_eval,
            checkpoint=ckpt.latest_checkpoint(self.ckpt_root),
            seconds=time.perf_counter() - start,
        )

    # -------------------------------------------------------------- evaluation

    def evaluate_now(self) -> dict[str, float]:
        if self.test_split is None:
            return {}
        acc = self.accelerator
        saved = rng_state()
        batch = self.recipe.train.eval_batch_size or self.global_batch  # evaluate() shards it
        out_dir = self.run_dir / "eval" / f"step_{self.step}"
        swap = self.ema.swapped(self.model) if self.ema is not None else contextlib.nullcontext()
        set_progress(self.model, 1.0)  # inference runs the final scheduled values
        with swap:
            report = evaluate(
                self.model,
                self.test_split,
                self.task,
                batch_size=batch,
                accelerator=acc,
                out_dir=out_dir if acc.is_main_process else None,
                progress=self.progress,
            )
        set_rng_state(saved)
        self.model.train()
        self.last_eval = report.metrics
        if acc.is_main_process:
            report.write(out_dir, plot=self.step == self.total_steps)
        self.log.record(self.step, "eval", report.metrics)
        # wall clock since this process's `run` began (not logged: a resumed run's
        # metrics.jsonl stays identical to an uninterrupted one's)
        minutes = (time.perf_counter() - (self._run_start or time.perf_counter())) / 60
        acc.print(
            f"eval @ step {self.step}: exact_accuracy {report.metrics['exact_accuracy']:.4f}"
            f", token accuracy {report.metrics['accuracy']:.4f} "
            f"({report.metrics['count']} puzzles, {report.steps} steps, {minutes:.1f} min in)"
        )
        return report.metrics

    # -------------------------------------------------------------- checkpoints

    def save_checkpoint(self) -> Path:
        """Write bundle ``step_<N>`` (`trmkit.checkpoint.resume.save_training_bundle`): the
        shared train_state and this process's rank_<r> (`TrainFiles` reads them back)."""
        acc = self.accelerator
        carry = None if self.carry is None else self.model.carry_state_dict(self.carry)
        last_eval = {k: v for k, v in self.last_eval.items() if isinstance(v, (int, float))}
        final = state_files.save_training_bundle(
            self.ckpt_root,
            self.step,
            owner=self.owner,
            keep=self.recipe.train.checkpoint_keep,
            rank=self.rank,
            main=acc.is_main_process,
            barrier=acc.wait_for_everyone,
            rank_state=dict(
                rng=rng_state(), loader=self.loader.state_dict(), carry=carry, step=self.step
            ),
            main_files=lambda: dict(
                model=self.model.state_dict(),
                ema=None if self.ema is None else self.ema.state_dict()["shadow"],
                shared=dict(
                    step=self.step,
                    total_steps=self.total_steps,
                    world_size=self.world,
                    optimizers=[opt.state_dict() for opt in self.optimizers],
                    last_eval=last_eval,
                ),
                manifest=Manifest.of_training(
                    step=self.step,
                    model_name=self.recipe.model.name,
                    model_config=self.model_cfg,
                    task=self.task,
                    split_meta=self.train_split.meta,
                    data_path=self.data_dir,
                    store_attrs=self.store.attrs,
                    recipe=recipe_to_dict(self.recipe),
                    ema=self.ema is not None,
                    eval=self.last_eval,
                ),
                store=self.store,
            ),
        )
        self.checkpoints.mark()
        return final

    def _resume(self) -> None:
        files = state_files.read_train_files(
            self.ckpt_root, self.rank, self.world, self.ema is not None
        )
        self.model.load_state_dict(files.model)
        if self.ema is not None:
            self.ema.load_state_dict({"rate": self.ema.rate, "shadow": files.ema})
        for opt, state in zip(self.optimizers, files.shared["optimizers"], strict=True):
            opt.load_state_dict(state)
        self.loader.load_state_dict(files.mine["loader"])
        if files.mine["carry"] is not None:
            self.carry = self.model.carry_to(
                self.model.load_carry_state_dict(files.mine["carry"]), self.device
            )
        self.step = int(files.shared["step"])
        self.last_eval = dict(files.shared.get("last_eval", {}))
        set_rng_state(files.mine["rng"])
        if self.accelerator.is_main_process:
            self.log.truncate_after(self.step)
            self.accelerator.print(f"resumed from {files.bundle} (step {self.step})")


__all__ = ["Trainer", "TrainResult"]
