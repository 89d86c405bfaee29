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

What is not the loop lives below it: the dataset cache in `trmkit.data.cache`, the bundle
and its files (`trmkit.checkpoint.resume`: train_state, rank_<r>, the checks before a resume),
the resume check on the recipe in `trmkit.config.resume_mismatch`, metric averaging in
`trmkit.training.metrics_log`, plots in `trmkit.reports`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.distributed as dist
from accelerate import Accelerator
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
from trmkit.models.protocol import ProgressAware, RecursiveModel
from trmkit.reports import flat_params, plot_curves
from trmkit.training.ema import EMA
from trmkit.training.intervals import CheckpointClock, StepPlan, TimeBudget
from trmkit.training.launch import allreduce_grads, check_launch, lock_for_ranks
from trmkit.training.metrics_log import STOP_SPLIT, MetricsLog, train_record
from trmkit.training.optim import build_optimizers
from trmkit.training.preflight import check_model_fits
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
        self.log_with = log_with
        self.check_memory = check_memory
        check_launch(os.environ)  # N processes asked for, one started: refuse
        use_cpu = (not torch.cuda.is_available()) if cpu is None else cpu
        self.accelerator = Accelerator(
            cpu=use_cpu,
            mixed_precision="no" if use_cpu else "bf16",
            log_with=log_with,
            project_dir=str(self.run_dir),
        )
        acc = self.accelerator
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
        acc, progress = self.accelerator, self.progress
        train, optim = recipe.train, recipe.optim
        saved = state_files.resumable_manifest(self.run_dir, recipe, max_steps) if resume else None
        state_files.prepare_run_dir(self.run_dir, fresh=saved is None, main=acc.is_main_process)

        self.task = plugins.get_task(recipe.data.task)
        if data_dir is None and saved is not None:
            data_dir = state_files.trained_store_path(saved, self.run_dir, self.task)
        self.data_dir = (
            Path(data_dir)
            if data_dir
            else prepare_dataset(
                self.task, recipe.data, acc, progress=progress and acc.is_main_process
            )
        )
        self.store = open_store(self.data_dir, self.task)
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
            check_model_fits(recipe, self.model_cfg, self.local_batch)
        self.model: RecursiveModel = build_model(recipe.model.name, self.model_cfg).to(self.device)
        if self.world > 1:
            for tensor in list(self.model.parameters()) + list(self.model.buffers()):
                dist.broadcast(tensor.data, src=0)
        self.optimizers = build_optimizers(self.model, optim)
        self.progress_aware = isinstance(self.model, ProgressAware)
        self.ema = EMA(self.model, optim.ema_rate) if optim.ema else None
        if train.compile:
            compile_model(self.model)  # state_dict keys unchanged

        plan = StepPlan.resolve(meta, self.global_batch, train, max_steps)
        self.total_steps, self.eval_every = plan.total_steps, plan.eval_every
        self.log_every = plan.log_every
        self.checkpoints = CheckpointClock.from_recipe(train)
        if saved is not None:
            state_files.check_budget(self.run_dir, saved.step, self.total_steps, max_steps)

        self.step = 0
        self.carry: Any = None
        self._run_start: float | None = None  # perf_counter at `run`, for the eval line
        self.last_eval: dict[str, float] = {}
        self.log = MetricsLog(self.run_dir / "metrics.jsonl")
        self.resumed_from: Path | None = None
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
        self.set_progress(self.step / self.total_steps)
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

    def set_progress(self, p: float) -> None:
        if self.progress_aware:
            self.model.set_progress(p)  # type: ignore[attr-defined]

    def run(self, until: int | None = None) -> TrainResult:
        """Train to the step budget (or only up to step ``until``: tests stop a run there)."""
        acc = self.accelerator
        start = self._run_start = time.perf_counter()
        if self.log_with:
            acc.init_trackers(self.run_dir.name, config=flat_params(recipe_to_dict(self.recipe)))
        bar = None
        if self.progress and acc.is_main_process:
            bar = tqdm(
                total=self.total_steps,
                initial=self.step,
                desc="train",
                unit="step",
                dynamic_ncols=True,
            )
        self.model.train()
        window: dict[str, torch.Tensor] = {}
        window_steps = 0
        batches = _forever(self.loader)
        self.checkpoints.mark()
        budget = TimeBudget.from_recipe(self.recipe.train)
        out_of_time = False
        try:
            stop = self.total_steps if until is None else min(until, self.total_steps)
            while self.step < stop:
                batch = {
                    k: torch.as_tensor(v).to(self.device, non_blocking=True)
                    for k, v in next(batches).items()
                }
                for k, v in self.train_step(batch).items():
                    v = v.detach().to(torch.float64)
                    window[k] = window[k] + v if k in window else v
                window_steps += 1
                if bar is not None:
                    bar.update(1)
                out_of_time = self.step < self.total_steps and budget.spent(self.device, self.world)
                last = self.step == self.total_steps or out_of_time
                do_eval = bool(self.eval_every) and self.step % self.eval_every == 0
                do_save = self.checkpoints.due(
                    self.step,
                    evaluated=do_eval or last,
                    last=last,
                    device=self.device,
                    world_size=self.world,
                )
                # windows end at every checkpoint too, so a resumed run logs the same lines
                if self.step % self.log_every == 0 or last or do_eval or do_save:
                    record = self._log_train(window, window_steps)
                    window, window_steps = {}, 0
                    if bar is not None:
                        bar.set_postfix(
                            loss=f"{record.get('lm_loss', float('nan')):.4f}",
                            exact=f"{record.get('exact_accuracy', 0.0):.3f}",
                        )
                if do_eval or last:
                    self.evaluate_now()
                if do_save:
                    self.save_checkpoint()
                if out_of_time:
                    minutes = self.recipe.train.max_minutes
                    if acc.is_main_process:
                        self.log.write({"step": self.step, "split": STOP_SPLIT, "minutes": minutes})
                    acc.print(
                        f"stopped at step {self.step} of {self.total_steps}: the time budget "
                        f"train.max_minutes = {minutes:g} is spent"
                    )
                    break
        finally:
            if bar is not None:
                bar.close()
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

    def _log_train(self, window: dict[str, torch.Tensor], steps: int) -> dict[str, Any]:
        keys = sorted(window)
        if not keys:
            return {}
        stacked = torch.stack([window[k] for k in keys])
        if self.world > 1:
            stacked = self.accelerator.reduce(stacked, reduction="sum")
        sums = dict(zip(keys, stacked.tolist(), strict=True))
        record: dict[str, Any] = {"step": self.step, "split": "train"}
        record.update(train_record(sums, steps, self.global_batch))
        record["lr"] = self.optimizers[0].param_groups[0]["lr"]
        if self.accelerator.is_main_process:
            self.log.write(record)
            self.accelerator.log(
                {f"train/{k}": v for k, v in record.items() if k not in ("step", "split")},
                step=self.step,
            )
        return record

    # -------------------------------------------------------------- evaluation

    def evaluate_now(self) -> dict[str, float]:
        if self.test_split is None:
            return {}
        acc = self.accelerator
        saved = rng_state()
        batch = self.recipe.train.eval_batch_size or self.global_batch  # evaluate() shards it
        out_dir = self.run_dir / "eval" / f"step_{self.step}"
        swap = self.ema.swapped(self.model) if self.ema is not None else contextlib.nullcontext()
        self.set_progress(1.0)  # inference runs the final scheduled values
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
            self.log.write({"step": self.step, "split": "eval", **report.metrics})
            acc.log(
                {f"eval/{k}": v for k, v in report.metrics.items() if isinstance(v, (int, float))},
                step=self.step,
            )
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

    def manifest(self) -> Manifest:
        return Manifest.of_training(
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
        )

    def save_checkpoint(self) -> Path:
        """Write bundle ``step_<N>`` (`trmkit.checkpoint.resume.save_training_bundle`)."""
        acc = self.accelerator
        final = state_files.save_training_bundle(
            self.ckpt_root,
            self.step,
            owner=self.owner,
            keep=self.recipe.train.checkpoint_keep,
            rank=self.rank,
            main=acc.is_main_process,
            barrier=acc.wait_for_everyone,
            rank_state=self._rank_state(),
            main_files=lambda: dict(
                model=self.model.state_dict(),
                ema=None if self.ema is None else self.ema.state_dict()["shadow"],
                shared=self._shared_state(),
                manifest=self.manifest(),
                store=self.store,
            ),
        )
        self.checkpoints.mark()
        return final

    def _shared_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "world_size": self.world,
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "last_eval": {k: v for k, v in self.last_eval.items() if isinstance(v, (int, float))},
        }

    def _rank_state(self) -> dict[str, Any]:
        carry = None if self.carry is None else self.model.carry_state_dict(self.carry)
        return {
            "rng": rng_state(),
            "loader": self.loader.state_dict(),
            "carry": carry,
            "step": self.step,
        }

    def _resume(self) -> None:
        files = state_files.read_train_files(
            self.ckpt_root, self.rank, self.world, self.ema is not None
        )
        latest, shared, mine = files.bundle, files.shared, files.mine
        self.model.load_state_dict(files.model)
        if self.ema is not None:
            self.ema.load_state_dict({"rate": self.ema.rate, "shadow": files.ema})
        for opt, state in zip(self.optimizers, shared["optimizers"], strict=True):
            opt.load_state_dict(state)
        self.loader.load_state_dict(mine["loader"])
        if mine["carry"] is not None:
            self.carry = self.model.carry_to(
                self.model.load_carry_state_dict(mine["carry"]), self.device
            )
        self.step = int(shared["step"])
        self.last_eval = dict(shared.get("last_eval", {}))
        set_rng_state(mine["rng"])
        self.resumed_from = latest
        if self.accelerator.is_main_process:
            self.log.truncate_after(self.step)
            self.accelerator.print(f"resumed from {latest} (step {self.step})")


def _forever(loader: TrainLoader):
    while True:
        yield from loader


__all__ = ["Trainer", "TrainResult"]
