"""The training loop on Hugging Face Accelerate: one code path for 1 CPU process or N GPUs.

Follows the reference loop (sections 3, 4): every optimiser step is one supervision step of
the ACT model on a carry that persists across batches; total_steps = int(epochs *
total_groups * mean_puzzle_examples / global_batch_size); the learning rate of every
optimiser is set from the warmup/cosine schedule (with the already-incremented step) before
it steps; the summed loss is divided by the global batch before backward; dense weights use
AdamATan2, the puzzle-embedding table sparse sign-SGD; the EMA is updated after every step.

Distribution: Accelerate starts the processes and gives each its rank; every rank takes its
contiguous slice of the global batch (the loader shards), gradients are all-reduced by hand
(summed in one flat buffer, as the reference does; the loss is already divided by the
*global* batch) and the sparse optimiser all-gathers its rows itself. Not wrapping the model
in DDP keeps the ACT carry API unchanged and avoids DDP's per-step buffer broadcast of the
(possibly 1.8 GB) puzzle table. Precision: the engine runs bf16 on CUDA and fp32 elsewhere
by itself (``forward_dtype = "auto"``); the Accelerator's mixed_precision is set to match.

Evaluation uses the EMA weights swapped into the live model (no deep copy of the train state,
unlike the reference, bug 9.1.8) and random-number states saved and restored around it, so
a run with evaluations follows exactly the same trajectory as one without, and a resumed
run the same as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import torch.distributed as dist

from trmkit import plugins
from trmkit.errors import CheckpointError, ConfigError, TrmkitError
from trmkit.training import checkpoint as ckpt
from trmkit.training.metrics_log import MetricsLog, plot_curves
from trmkit.training.state import load_tree, save_tree

LOSS_KEYS_SUFFIX = "loss"


@attrs.define
class TrainResult:
    run_dir: Path
    step: int
    total_steps: int
    eval_metrics: dict[str, float]
    checkpoint: Path | None
    seconds: float


# ------------------------------------------------------------------------- dataset cache


def cache_root() -> Path:
    """``$TRMKIT_CACHE/datasets`` or ``~/.cache/trmkit/datasets``."""
    base = os.environ.get("TRMKIT_CACHE")
    root = Path(base).expanduser() if base else Path("~/.cache/trmkit").expanduser()
    return root / "datasets"


def dataset_key(task: Any, data_cfg: Any) -> str:
    """Content hash of everything that determines a built dataset."""
    import hashlib

    source = getattr(data_cfg, "source", None)
    source_id: Any = source
    if source and source not in getattr(task, "sources", {}):
        p = Path(str(source)).expanduser()
        if p.exists():  # a local file/dir: its identity is its path, size and mtime
            st = p.stat()
            source_id = [str(p.resolve()), st.st_size, int(st.st_mtime)]
    payload = {
        "task": task.name,
        "version": task.version,
        "source": source_id,
        "num_aug": getattr(data_cfg, "num_aug", None),
        "subsample": getattr(data_cfg, "subsample", None),
        "seed": getattr(data_cfg, "seed", 0),
        "strict": getattr(data_cfg, "strict", False),
        "options": dict(getattr(data_cfg, "options", {}) or {}),
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode())
    return f"{task.name}-{digest.hexdigest()[:16]}"


def prepare_dataset(task: Any, data_cfg: Any, accelerator: Any, progress: bool = True) -> Path:
    """The recipe's dataset from the cache, built on first use by the main process."""
    from trmkit.data.build import build_dataset

    path = cache_root() / dataset_key(task, data_cfg)
    with accelerator.main_process_first():
        if accelerator.is_main_process and not (path / "zarr.json").is_file():
            accelerator.print(f"building dataset {path.name} (cached for later runs)")
            build_dataset(
                task, path,
                source=getattr(data_cfg, "source", None),
                num_aug=getattr(data_cfg, "num_aug", None),
                subsample=getattr(data_cfg, "subsample", None),
                seed=getattr(data_cfg, "seed", 0),
                strict=getattr(data_cfg, "strict", False),
                options=dict(getattr(data_cfg, "options", {}) or {}),
                force=True, progress=progress,
            )
    return path


# ------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(tuple(state["numpy"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------- the trainer


def _get(section: Any, name: str, default: Any) -> Any:
    value = getattr(section, name, default)
    return default if value is None else value


class Trainer:
    """Builds everything from a recipe and runs (or resumes) a training run in ``run_dir``."""

    def __init__(self, recipe: Any, *, run_dir: Path, data_dir: Path | None = None,
                 max_steps: int | None = None, resume: bool = False,
                 log_with: str | None = None, progress: bool = True,
                 cpu: bool | None = None) -> None:
        from accelerate import Accelerator

        self.recipe = recipe
        self.run_dir = Path(run_dir)
        self.ckpt_root = self.run_dir / "checkpoints"
        self.progress = progress
        self.log_with = log_with
        use_cpu = (not torch.cuda.is_available()) if cpu is None else cpu
        self.accelerator = Accelerator(
            cpu=use_cpu,
            mixed_precision="no" if use_cpu else "bf16",
            log_with=log_with,
            project_dir=str(self.run_dir),
        )
        acc = self.accelerator
        self.rank, self.world = acc.process_index, acc.num_processes
        self.device = acc.device
        self.train_cfg, self.optim_cfg = recipe.train, recipe.optim

        self.task = plugins.get_task(recipe.data.task)
        self.data_dir = Path(data_dir) if data_dir else prepare_dataset(
            self.task, recipe.data, acc, progress=progress and acc.is_main_process)
        from trmkit.data.store import open_store

        self.store = open_store(self.data_dir, self.task)
        self.train_split = self.store.split("train")
        self.test_split = self.store.split("test") if "test" in self.store.splits else None
        meta = self.train_split.meta

        self.global_batch = int(self.optim_cfg.global_batch_size)
        if self.global_batch % self.world:
            raise ConfigError(
                f"optim.global_batch_size={self.global_batch} is not divisible by the "
                f"{self.world} processes; choose a multiple of {self.world}")
        self.local_batch = self.global_batch // self.world
        self.seed = int(_get(self.train_cfg, "seed", 0))

        # Identical initial weights on every rank (then broadcast anyway, for safety).
        seed_everything(self.seed)
        self.model = self._build_model(meta)
        if self.world > 1:
            for tensor in list(self.model.parameters()) + list(self.model.buffers()):
                dist.broadcast(tensor.data, src=0)
        from trmkit.training.optim import build_optimizers

        self.optimizers = build_optimizers(self.model, self.optim_cfg)
        self.ema = None
        if _get(self.optim_cfg, "ema", False):
            from trmkit.training.ema import EMA

            self.ema = EMA(self.model, float(_get(self.optim_cfg, "ema_rate", 0.999)))
        if _get(self.train_cfg, "compile", False):
            self._compile()

        from trmkit.data.loader import TrainLoader

        # As the reference, one loader iteration spans eval_interval epochs (5.4).
        self.loader = TrainLoader(self.train_split, self.global_batch, seed=self.seed,
                                  rank=self.rank, world_size=self.world,
                                  epochs_per_iter=max(1, int(_get(self.train_cfg,
                                                                  "eval_interval", 1))))
        self.steps_per_epoch = (meta.total_groups * meta.mean_puzzle_examples
                                / self.global_batch)
        epochs = float(_get(self.train_cfg, "epochs", 1))
        self.total_steps = int(epochs * meta.total_groups * meta.mean_puzzle_examples
                               / self.global_batch)
        cfg_max = int(_get(self.train_cfg, "max_steps", 0))
        if max_steps is not None:
            self.total_steps = int(max_steps)
        elif cfg_max > 0:
            self.total_steps = cfg_max
        if self.total_steps <= 0:
            raise ConfigError(
                f"the step budget is 0 (epochs={epochs}, {meta.total_groups} groups, global "
                f"batch {self.global_batch}); raise train.epochs or pass --max-steps")
        self.eval_every = self._eval_every()
        self.keep = int(_get(self.train_cfg, "checkpoint_keep", 2))
        self.log_every = max(1, int(_get(self.train_cfg, "log_every", 10)))

        self.step = 0
        self.carry = None
        self.last_eval: dict[str, float] = {}
        self.log = MetricsLog(self.run_dir / "metrics.jsonl")
        self.resumed_from: Path | None = None
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        if resume:
            self._resume()
        else:  # every rank checks (shared filesystem), so none waits for a failed peer
            existing = ckpt.latest_checkpoint(self.ckpt_root)
            if existing is not None:
                raise TrmkitError(
                    f"{self.run_dir} already holds checkpoints ({existing.name}); pass --resume "
                    "to continue that run or choose another --out")
            if acc.is_main_process:
                self.log.path.unlink(missing_ok=True)
        # Per-rank randomness (exploration) as the reference: seed + rank.
        if self.resumed_from is None:
            seed_everything(self.seed + self.rank)
        self._save_config()

    # -------------------------------------------------------------- setup helpers

    def _build_model(self, meta: Any) -> torch.nn.Module:
        from trmkit.models import build_model

        self.model_cfg = self.recipe.model_config(
            seq_len=meta.seq_len, vocab_size=meta.vocab_size,
            num_puzzle_identifiers=meta.num_puzzle_identifiers, batch_size=self.local_batch)
        model = build_model(self.recipe.model.name, self.model_cfg)
        return model.to(self.device)

    def _compile(self) -> None:
        from trmkit.models import compile_model

        compile_model(self.model)  # compiles the shared networks; state_dict keys unchanged

    def _eval_every(self) -> int:
        steps = int(_get(self.train_cfg, "eval_every_steps", 0))
        if steps > 0:
            return steps
        epochs = float(_get(self.train_cfg, "eval_interval", 0))
        if epochs <= 0:
            return 0
        return max(1, round(epochs * self.steps_per_epoch))

    def _save_config(self) -> None:
        if not self.accelerator.is_main_process:
            return
        resolved = {
            "recipe": recipe_dict(self.recipe),
            "model_config": attrs.asdict(self.model_cfg),
            "data_dir": str(self.data_dir),
            "total_steps": self.total_steps,
            "eval_every_steps": self.eval_every,
            "processes": self.world,
            "global_batch_size": self.global_batch,
            "device": str(self.device),
        }
        (self.run_dir / "config.json").write_text(json.dumps(resolved, indent=2, default=str))

    # -------------------------------------------------------------- the loop

    def _batches(self):
        while True:
            yield from self.loader

    def _to_device(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(v).to(self.device, non_blocking=True)
                for k, v in batch.items()}

    def _allreduce_grads(self) -> None:
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n

    def _set_lrs(self) -> None:
        from trmkit.training.schedule import set_lr

        set_lr(self.optimizers, self.step, int(_get(self.optim_cfg, "warmup_steps", 0)),
               self.total_steps, float(_get(self.optim_cfg, "lr_min_ratio", 1.0)))

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One supervision step + one update of every optimiser; returns the metric sums."""
        if self.carry is None:
            self.carry = self.model.initial_carry(batch)
        self.carry, loss, metrics, _outputs, _ = self.model(self.carry, batch)
        (loss / self.global_batch).backward()
        if self.world > 1:
            self._allreduce_grads()
        self.step += 1
        self._set_lrs()
        for opt in self.optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        return metrics

    def run(self, until: int | None = None) -> TrainResult:
        """Train to the step budget (or only up to step ``until``: tests stop a run there)."""
        acc = self.accelerator
        start = time.perf_counter()
        if self.log_with:
            acc.init_trackers(self.run_dir.name, config=_flat(recipe_dict(self.recipe)))
        bar = None
        if self.progress and acc.is_main_process:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step",
                       dynamic_ncols=True)
        self.model.train()
        window: dict[str, torch.Tensor] = {}
        window_steps = 0
        batches = self._batches()
        try:
            stop = self.total_steps if until is None else min(until, self.total_steps)
            while self.step < stop:
                batch = self._to_device(next(batches))
                metrics = self.train_step(batch)
                for k, v in metrics.items():
                    v = v.detach().to(torch.float64)
                    window[k] = window[k] + v if k in window else v
                window_steps += 1
                if bar is not None:
                    bar.update(1)
                last = self.step == self.total_steps
                do_eval = bool(self.eval_every) and self.step % self.eval_every == 0
                # windows end at every checkpoint too, so a resumed run logs the same lines
                if self.step % self.log_every == 0 or last or do_eval:
                    record = self._log_train(window, window_steps)
                    window, window_steps = {}, 0
                    if bar is not None:
                        bar.set_postfix(loss=f"{record.get('lm_loss', float('nan')):.4f}",
                                        exact=f"{record.get('exact_accuracy', 0.0):.3f}")
                if do_eval or last:
                    self.evaluate_now()
                    if (_get(self.train_cfg, "checkpoint_every_eval", True)
                            or self.step == self.total_steps):
                        self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
        if acc.is_main_process:
            self._plot()
        acc.end_training()
        return TrainResult(run_dir=self.run_dir, step=self.step, total_steps=self.total_steps,
                           eval_metrics=self.last_eval,
                           checkpoint=ckpt.latest_checkpoint(self.ckpt_root),
                           seconds=time.perf_counter() - start)

    def _log_train(self, window: dict[str, torch.Tensor], steps: int) -> dict[str, Any]:
        keys = sorted(window)
        if not keys:
            return {}
        stacked = torch.stack([window[k] for k in keys])
        if self.world > 1:
            stacked = self.accelerator.reduce(stacked, reduction="sum")
        sums = dict(zip(keys, stacked.tolist(), strict=True))
        count = max(sums.get("count", 0.0), 1.0)
        record: dict[str, Any] = {"step": self.step, "split": "train"}
        for k, v in sums.items():
            if k == "count":
                record[k] = v / steps
            elif k.endswith(LOSS_KEYS_SUFFIX):
                record[k] = v / (self.global_batch * steps)
            else:
                record[k] = v / count
        record["lr"] = self.optimizers[0].param_groups[0]["lr"]
        if self.accelerator.is_main_process:
            self.log.write(record)
            self.accelerator.log({f"train/{k}": v for k, v in record.items()
                                  if k not in ("step", "split")}, step=self.step)
        return record

    # -------------------------------------------------------------- evaluation

    def evaluate_now(self) -> dict[str, float]:
        if self.test_split is None:
            return {}
        from trmkit.evaluation import evaluate

        saved = rng_state()
        batch = int(_get(self.train_cfg, "eval_batch_size", 0)) or self.global_batch
        batch = max(self.world, batch - batch % self.world)
        out_dir = self.run_dir / "eval" / f"step_{self.step}"
        context = self.ema.swapped(self.model) if self.ema is not None else _nullcontext()
        with context:
            report = evaluate(self.model, self.test_split, self.task, batch_size=batch,
                              accelerator=self.accelerator,
                              out_dir=out_dir if self.accelerator.is_main_process else None,
                              max_examples=int(_get(self.train_cfg, "eval_max_examples", 0)),
                              progress=self.progress)
        set_rng_state(saved)
        self.model.train()
        self.last_eval = report.metrics
        if self.accelerator.is_main_process:
            report.write(out_dir, plot=self.step == self.total_steps)
            record = {"step": self.step, "split": "eval", **report.metrics}
            self.log.write(record)
            self.accelerator.log({f"eval/{k}": v for k, v in report.metrics.items()
                                  if isinstance(v, (int, float))}, step=self.step)
            self.accelerator.print(
                f"eval @ step {self.step}: exact_accuracy {report.metrics['exact_accuracy']:.4f}"
                f", token accuracy {report.metrics['accuracy']:.4f} "
                f"({report.metrics['count']} puzzles, {report.steps} steps)")
        return report.metrics

    # -------------------------------------------------------------- checkpoints

    def manifest(self) -> dict[str, Any]:
        meta = self.train_split.meta
        return {
            "step": self.step,
            "model": {"name": self.recipe.model.name, "config": attrs.asdict(self.model_cfg)},
            "task": {"name": self.task.name, "version": self.task.version},
            "dataset": {**attrs.asdict(meta), "path": str(self.data_dir),
                        "store": {k: v for k, v in self.store.attrs.items()
                                  if isinstance(v, (str, int, float, bool))}},
            "recipe": recipe_dict(self.recipe),
            "weights": {"ema": self.ema is not None},
            "eval": {k: v for k, v in self.last_eval.items() if isinstance(v, (int, float))},
        }

    def save_checkpoint(self) -> Path:
        acc = self.accelerator
        tmp = ckpt.tmp_dir(self.ckpt_root, self.step)
        if acc.is_main_process:
            ckpt.begin_write(self.ckpt_root, self.step)
        acc.wait_for_everyone()
        save_tree(self._rank_state(), tmp, f"rank_{self.rank}")
        if acc.is_main_process:
            ckpt.write_weights(tmp, "model", self.model.state_dict())
            if self.ema is not None:
                ckpt.write_weights(tmp, "ema", self.ema.state_dict()["shadow"])
            if self.model_cfg.num_puzzle_identifiers > 1:
                write_puzzle_ids(tmp, self.store)
            save_tree(self._shared_state(), tmp, "train_state")
            ckpt.write_manifest(tmp, self.manifest())
        acc.wait_for_everyone()
        final = self.ckpt_root / ckpt.step_dir_name(self.step)
        if acc.is_main_process:
            final = ckpt.commit(self.ckpt_root, self.step, self.keep)
        acc.wait_for_everyone()
        return final

    def _shared_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "world_size": self.world,
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "last_eval": {k: v for k, v in self.last_eval.items()
                          if isinstance(v, (int, float))},
        }

    def _rank_state(self) -> dict[str, Any]:
        carry = None
        if self.carry is not None:
            carry = (self.model.carry_state_dict(self.carry)
                     if hasattr(self.model, "carry_state_dict") else self.carry)
        return {"rng": rng_state(), "loader": self.loader.state_dict(), "carry": carry,
                "step": self.step}

    def _resume(self) -> None:
        latest = ckpt.latest_checkpoint(self.ckpt_root)
        if latest is None:
            raise CheckpointError(f"--resume: {self.ckpt_root} holds no complete checkpoint")
        self._check_same_recipe(ckpt.read_manifest(latest).get("recipe", {}), latest)
        shared = load_tree(latest, "train_state")
        if int(shared["world_size"]) != self.world:
            raise CheckpointError(
                f"{latest} was written by {shared['world_size']} processes, this run has "
                f"{self.world}; exact resume needs the same number of processes")
        model_state = ckpt.read_safetensors(latest / "model.safetensors", device="cpu")
        self.model.load_state_dict(model_state)
        if self.ema is not None:
            self.ema.load_state_dict({"rate": self.ema.rate, "shadow": ckpt.read_safetensors(
                latest / "ema.safetensors")})
        for opt, state in zip(self.optimizers, shared["optimizers"], strict=True):
            opt.load_state_dict(state)
        mine = load_tree(latest, f"rank_{self.rank}")
        self.loader.load_state_dict(mine["loader"])
        if mine["carry"] is not None:
            carry = mine["carry"]
            if hasattr(self.model, "load_carry_state_dict"):
                carry = self.model.load_carry_state_dict(carry)
            self.carry = carry.to(self.device) if hasattr(carry, "to") else carry
        self.step = int(shared["step"])
        self.last_eval = dict(shared.get("last_eval", {}))
        set_rng_state(mine["rng"])
        self.resumed_from = latest
        if self.accelerator.is_main_process:
            self.log.truncate_after(self.step)
            self.accelerator.print(f"resumed from {latest} (step {self.step})")

    def _check_same_recipe(self, saved: dict[str, Any], where: Path) -> None:
        """Resuming is exact only with the same data, model, optimiser and seed; budget,
        logging and checkpoint settings may change (e.g. a larger --max-steps)."""
        now = recipe_dict(self.recipe)
        for section in ("data", "model", "optim", "train"):
            old, new = saved.get(section, {}), now.get(section, {})
            for key in sorted(set(old) | set(new)):
                if section == "train" and key not in ("seed", "eval_interval"):
                    continue
                if old.get(key) != new.get(key):
                    raise ConfigError(
                        f"--resume: {section}.{key} is {new.get(key)!r} but the run in "
                        f"{where.parent.parent} was trained with {old.get(key)!r}; resume with "
                        "the same recipe and --set values")

    def _plot(self) -> None:
        if not plot_curves(self.log.read(), self.run_dir / "curves.png"):
            self.accelerator.print(
                "note: matplotlib not installed (pip install 'trmkit[plots]'): no curves.png")


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def write_puzzle_ids(directory: Path, store: Any) -> None:
    """id -> (group name, transform) for every puzzle id of the store (both splits).

    `trmkit solve` uses it to find the embedding row trained for a (task, variant); the
    reference ties ARC test predictions to these per-variant rows (section 6.3).
    """
    from safetensors.torch import save_file

    names: dict[str, int] = {}
    num_ids = None
    group_of = transform_of = None
    for split_name in store.splits:
        split = store.split(split_name)
        meta = split.meta
        if num_ids is None:
            num_ids = meta.num_puzzle_identifiers
            group_of = np.full(num_ids, -1, np.int32)
            transform_of = np.zeros((num_ids, meta.transform_size), np.int32)
        ids = np.asarray(split.puzzle_identifiers)
        groups = np.asarray(split.puzzle_group)
        gnames = split.group_names
        local = np.array([names.setdefault(gnames[g], len(names)) for g in range(len(gnames))],
                         dtype=np.int32)
        group_of[ids] = local[groups] if len(groups) else group_of[ids]
        transform_of[ids] = np.asarray(split.transforms)
    if num_ids is None:
        return
    save_file({"group": torch.from_numpy(group_of), "transform": torch.from_numpy(transform_of)},
              str(directory / "puzzle_ids.safetensors"))
    ordered = sorted(names, key=names.__getitem__)
    (directory / "puzzle_ids.json").write_text(json.dumps({"group_names": ordered}))


def recipe_dict(recipe: Any) -> dict[str, Any]:
    from trmkit.config import recipe_to_dict

    return recipe_to_dict(recipe)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[key] = v
        else:
            out[key] = str(v)
    return out


def total_steps_for(epochs: float, total_groups: int, mean_examples: float,
                    global_batch: int) -> int:
    """Reference 4.4: int(epochs * total_groups * mean_puzzle_examples / global_batch)."""
    return int(epochs * total_groups * mean_examples / global_batch)


__all__ = ["Trainer", "TrainResult", "prepare_dataset", "dataset_key", "cache_root",
           "total_steps_for"]
