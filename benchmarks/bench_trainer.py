"""Trainer overhead: steps/s of `Trainer.run` against the engine's bare step, same run.

    python benchmarks/bench_trainer.py [--quick] [--steps N] [--batch B]

The bare step is the minimum any training loop must do per optimizer step: one ACT
supervision step (forward + backward), the learning-rate schedule, AdamATan2 + sparse
sign-SGD, the EMA update, on a batch already in memory. The trainer adds the loader (group
sampling, Zarr/RAM gather, collation), metric accumulation, logging and the progress bar.
Both run the paper's sudoku-extreme-mlp architecture (D=512, T=3, n=6, MLP-t) unless
--quick (D=128) and alternate in one process; the ratio is the figure of merit (target:
trainer >= 0.9 x bare). Evaluation and checkpointing are excluded from the timed window
(they are per-interval costs, reported separately by the trainer's logs).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from trmkit import plugins
from trmkit.config import load_recipe
from trmkit.data.build import build_dataset
from trmkit.training.trainer import Trainer


def make_data(root: Path) -> Path:
    out = root / "data"
    build_dataset(
        plugins.get_task("sudoku-easy"),
        out,
        num_aug=20,
        seed=0,
        options={"count": "200", "test_count": "8"},
        force=True,
        progress=False,
    )
    return out


def make_trainer(root: Path, data: Path, overrides: list[str], name: str) -> Trainer:
    recipe = load_recipe("sudoku-extreme-mlp", overrides)
    recipe.data.task = "sudoku-easy"
    return Trainer(recipe, run_dir=root / name, data_dir=data, progress=False)


def stamp(trainer: Trainer) -> list[float]:
    """Record the start time of every train_step call (so loader time between steps counts)."""
    times: list[float] = []
    inner = trainer.train_step

    def timed(batch):
        times.append(time.perf_counter())
        return inner(batch)

    trainer.train_step = timed  # type: ignore[method-assign]
    return times


def steps_per_second(times: list[float], skip: int = 1) -> float:
    t = times[skip:]
    return (len(t) - 1) / (t[-1] - t[0])


def bare(trainer: Trainer, steps: int) -> float:
    """The engine's bare step on one fixed in-memory batch, with the same model/optimisers."""
    from trmkit.training.schedule import set_lr

    batch = {k: v.to(trainer.device) for k, v in next(iter(trainer.loader)).items()}
    model, opts, ema = trainer.model, trainer.optimizers, trainer.ema
    model.train()
    carry = model.initial_carry(batch)
    times = []
    for step in range(1, steps + 1):
        times.append(time.perf_counter())
        carry, loss, _m, _o, _h = model(carry, batch)
        (loss / trainer.global_batch).backward()
        set_lr(opts, step, 2000, 10**6, 1.0)
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(model)
    times.append(time.perf_counter())
    return steps_per_second(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="D=128 instead of 512")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    overrides = [
        f"optim.global_batch_size={args.batch}",
        "train.eval_interval=0",
        "train.log_every=10",
    ]
    if args.quick:
        overrides += ["model.hidden_size=128", "model.puzzle_emb_ndim=128"]
    print(
        f"bench_trainer: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}; sudoku-extreme-mlp"
        f"{' (D=128)' if args.quick else ''}, batch {args.batch}, {args.steps} steps/round"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_data(root)
        results = {"trainer": [], "bare": []}
        for r in range(args.rounds):
            trainer = make_trainer(
                root, data, overrides + [f"train.max_steps={args.steps}"], f"run{r}"
            )
            trainer.test_split = None  # no evaluation inside the timed window
            trainer.save_checkpoint = lambda: None  # type: ignore[method-assign]
            times = stamp(trainer)
            trainer.run()
            times.append(time.perf_counter())
            results["trainer"].append(steps_per_second(times))
            results["bare"].append(bare(trainer, args.steps))
        best = {k: max(v) for k, v in results.items()}
        for k, v in best.items():
            print(f"{k:>8}: {v:.4f} steps/s ({v * args.batch:.1f} samples/s)")
        print(f"ratio trainer/bare: {best['trainer'] / best['bare']:.3f} (target >= 0.90)")


if __name__ == "__main__":
    main()
