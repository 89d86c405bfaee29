"""Engine throughput on this machine: one training supervision step (forward + backward +
optimizer) and one eval step (the `rollout` path: no grad), against an fp32 matmul timed in
the same process right before the model's steps.

    python benchmarks/bench_engine.py [--quick] [--compile {off,on,both}] [--repeats N]
                                      [--only SUBSTRING] [--against REF] [--rounds R]

The shapes are the presets' (tasks/sudoku-quick.toml, tasks/sudoku-9x9-quick.toml and
tasks/maze-quick.toml, read from the recipes with their batch) and the paper's
(tasks/sudoku-extreme-mlp.toml / -att.toml at batch 64, and a D=128 variant at batch 256).
Each configuration runs in its own subprocess, so its peak RSS (VmHWM, reset after the
matmul probe) is its own. Times are the best of ``repeats`` steps after one warm-up step;
with --compile the warm-up (compilation) time is reported separately. FLOPs are counted
by the model (`RecursiveModel.step_flops`: matmuls only), so "of peak" is matmul work per
second over the measured peak matmul rate.

``--against REF`` exports git REF's trmkit, plugins and tasks (a commit, branch or tag) to a
temporary directory and runs every configuration alternately with this checkout (a git
worktree too: its own code goes first on the path, whatever trmkit is installed) and with
REF, ``rounds`` times each, in the same conditions; it prints the ratio of REF's best time to
this checkout's (> 1: this checkout is faster) and which trmkit each side imported. The
machine is shared: check ``uptime`` first and set OMP_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from trmkit.models import build_model, compile_model
from trmkit.models.rollout import rollout
from trmkit.training.optim import AdamATan2, SparseSignSGD

EVAL_STEPS = 4  # supervision steps per timed rollout (eval s/step = rollout time / steps)
SUDOKU = dict(seq_len=81, vocab_size=11, h_cycles=3, l_cycles=6)
SMALL = dict(hidden_size=128, num_heads=2, puzzle_emb_ndim=128)
MLP_T = dict(mixer="mlp_t", pos_encodings="none")
ATTENTION = dict(mixer="attention")
PRESETS = {  # label -> (recipe, batch, quick batch); batch None: the recipe's own
    "sudoku-quick (D64 MLP-t, T2 n2)": ("sudoku-quick", None, 32),
    "sudoku-9x9-quick (D64 MLP-t, T2 n2)": ("sudoku-9x9-quick", None, 32),
    "maze-quick (D64 MLP-t, T2 n2)": ("maze-quick", None, 8),
    "D512 MLP-t (paper, sudoku-extreme-mlp)": ("sudoku-extreme-mlp", 64, 8),
    "D512 attention (paper, sudoku-extreme-att)": ("sudoku-extreme-att", 64, 8),
}
CONFIGS = {  # label -> (model fields, batch, quick batch)
    "D128 MLP-t (small)": ({**SUDOKU, **MLP_T, **SMALL}, 256, 32),
    "D128 attention (small)": ({**SUDOKU, **ATTENTION, **SMALL}, 256, 32),
}
LABELS = [*PRESETS, *CONFIGS]


def shape(label: str, quick: bool) -> tuple[dict, int]:
    """(model fields, batch) of a configuration; presets from their recipe and task."""
    if label in CONFIGS:
        fields, batch, quick_batch = CONFIGS[label]
        return fields, quick_batch if quick else batch
    from trmkit import plugins
    from trmkit.config import load_recipe

    name, batch, quick_batch = PRESETS[label]
    recipe = load_recipe(name, [])
    codec = plugins.get_task(recipe.data.task).codec
    fields = {**recipe.model.fields, "seq_len": codec.seq_len, "vocab_size": codec.vocab_size}
    if quick:
        return fields, quick_batch
    return fields, batch or recipe.optim.global_batch_size


def peak_gflops(n: int, repeats: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def make_batch(b: int, seq: int, vocab: int) -> dict[str, torch.Tensor]:
    return {
        "inputs": torch.randint(0, vocab, (b, seq), dtype=torch.int32),
        "labels": torch.randint(0, vocab, (b, seq), dtype=torch.int32),
        "puzzle_identifiers": torch.zeros(b, dtype=torch.int32),
    }


def bench(fields: dict, batch: int, repeats: int, compile_: bool, peak_n: int) -> dict:
    """Time one config in this process; returns the figures as a dict."""
    torch.manual_seed(0)
    model = build_model("trm", {**fields, "batch_size": batch})
    if compile_:
        compile_model(model)
    dense = AdamATan2([p for p in model.parameters()], lr=1e-4, weight_decay=1.0)
    sparse = SparseSignSGD(model.puzzle_emb, lr=1e-4, weight_decay=1.0)
    data = make_batch(batch, fields["seq_len"], fields["vocab_size"])
    flops = model.step_flops(batch)

    def train_step(carry):
        carry, loss, _, _, _ = model(carry, data)
        (loss / batch).backward()
        dense.step()
        sparse.step()
        dense.zero_grad(set_to_none=True)
        return carry

    peak = peak_gflops(peak_n, 3)  # same conditions as the steps that follow
    # eval first: freed training memory stays in the allocator's heap and would be counted
    _reset_peak_rss()
    base_rss = _status_mib("VmRSS")
    model.eval()
    depth = min(EVAL_STEPS, model.halt_max_steps)  # the evaluator's path: rollout, no grad
    t0 = time.perf_counter()
    rollout(model, data, depth)
    eval_warm = (time.perf_counter() - t0) / depth
    etimes = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rollout(model, data, depth)
        etimes.append((time.perf_counter() - t0) / depth)
    eval_rss = _status_mib("VmHWM")

    model.train()
    _reset_peak_rss()
    t0 = time.perf_counter()
    carry = train_step(model.initial_carry(data))  # warm-up (and compilation)
    train_warm = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        carry = train_step(carry)
        times.append(time.perf_counter() - t0)
    train_rss = _status_mib("VmHWM")
    train_t, eval_t = min(times), min(etimes)
    return {
        "peak": peak,
        "train_s": train_t,
        "eval_s": eval_t,
        "train_flops": flops.train,
        "eval_flops": flops.eval,
        "train_gflops": flops.train / train_t / 1e9,
        "eval_gflops": flops.eval / eval_t / 1e9,
        "compile_s": (train_warm - train_t) + (eval_warm - eval_t) if compile_ else 0.0,
        "base_rss": base_rss,
        "train_rss": train_rss,
        "eval_rss": eval_rss,
    }


class _OpCount(TorchDispatchMode):
    """Counts the aten operators dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def work(fields: dict, batch: int) -> dict:
    """Operators dispatched and FLOPs counted by torch in one eval rollout of `EVAL_STEPS`
    steps and in one training step (forward, backward, both optimizers), after a warm-up of
    each; the same model, batch and optimizers as `bench`."""
    torch.manual_seed(0)
    model = build_model("trm", {**fields, "batch_size": batch})
    dense = AdamATan2([p for p in model.parameters()], lr=1e-4, weight_decay=1.0)
    sparse = SparseSignSGD(model.puzzle_emb, lr=1e-4, weight_decay=1.0)
    data = make_batch(batch, fields["seq_len"], fields["vocab_size"])

    def measured(run) -> tuple[int, int]:
        run()  # warm-up: lazily built state (optimizer moments, carries) is not counted
        ops, flops = _OpCount(), FlopCounterMode(display=False)
        with ops, flops:
            run()
        return ops.count, flops.get_total_flops()

    model.eval()
    depth = min(EVAL_STEPS, model.halt_max_steps)
    eval_ops, eval_flops = measured(lambda: rollout(model, data, depth))
    model.train()
    carry = [model.initial_carry(data)]

    def train_step() -> None:
        carry[0], loss, _, _, _ = model(carry[0], data)
        (loss / batch).backward()
        dense.step()
        sparse.step()
        dense.zero_grad(set_to_none=True)

    train_ops, train_flops = measured(train_step)
    return {
        "eval_ops": eval_ops,
        "eval_flops": eval_flops,
        "train_ops": train_ops,
        "train_flops": train_flops,
    }


def compare_work(label: str, now: dict, ref: dict | None, ref_name: str | None) -> str:
    lines = [f"{label}: work counted by torch (eval = rollout of {EVAL_STEPS} steps)"]
    for phase in ("train", "eval"):
        ops, flops = now[f"{phase}_ops"], now[f"{phase}_flops"]
        line = f"  {phase:<5} now {ops:7d} ops {flops / 1e9:9.3f} GFLOP"
        if ref is not None:
            r_ops, r_flops = ref[f"{phase}_ops"], ref[f"{phase}_flops"]
            line += (
                f" | {ref_name} {r_ops:7d} ops {r_flops / 1e9:9.3f} GFLOP"
                f" | ops {ops - r_ops:+d}, FLOPs {flops - r_flops:+d}"
            )
        lines.append(line)
    lines.append(
        f"  trmkit now: {now['trmkit']}" + (f" | {ref_name}: {ref['trmkit']}" if ref else "")
    )
    return "\n".join(lines)


def report(label: str, batch: int, compile_: bool, r: dict) -> str:
    def part(name: str, seconds: float, gflops: float) -> str:
        return (
            f"  {name:<5} {seconds:8.3f} s/step {batch / seconds:9.1f} samples/s "
            f"{gflops:6.1f} GFLOP/s {gflops / r['peak']:6.1%} of peak"
        )

    lines = [
        f"{label}, batch {batch}, compile={'on' if compile_ else 'off'}: "
        f"peak {r['peak']:.1f} GFLOP/s"
        + (f", compile+warm-up {r['compile_s']:.1f} s" if compile_ else ""),
        part("train", r["train_s"], r["train_gflops"]),
        part("eval", r["eval_s"], r["eval_gflops"]),
        f"  peak RSS: {r['base_rss']:.0f} MiB after set-up, {r['eval_rss']:.0f} MiB in eval, "
        f"{r['train_rss']:.0f} MiB in training",
    ]
    return "\n".join(lines)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""this checkout (a git worktree too): its trmkit and plugins are the ones timed as "now"."""


def export_ref(ref: str, where: str) -> str:
    """``git archive`` of REF into ``where`` (no worktree, no change to the repository)."""
    sha = subprocess.run(
        ["git", "-C", ROOT, "rev-parse", "--short", ref], check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "-C", ROOT, "archive", ref, "trmkit", "plugins", "tasks"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", where], input=archive, check=True)
    return sha


def run_child(label: str, compile_: bool, args, tree: str | None) -> dict:
    """Time ``label`` in a subprocess with the trmkit and plugins of ``tree`` (REF's export)
    or of this checkout (None) first on its path, whatever trmkit is installed: run from a
    git worktree, "now" is that worktree's code, not the installed checkout's. The shape
    (model fields, batch) is read here, from this checkout's recipes, and handed over: REF's
    code runs the same shape even where REF has no such recipe."""
    fields, batch = shape(label, args.quick)
    cmd = [sys.executable, __file__, "--child", json.dumps([label, compile_, fields, batch])]
    cmd += ["--repeats", str(args.repeats)] + (["--quick"] if args.quick else [])
    cmd += ["--ops"] if args.ops else []
    env = dict(os.environ)
    first = tree or ROOT
    parts = (first, os.path.join(first, "plugins"), env.get("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches, 1 repeat")
    parser.add_argument("--compile", choices=("off", "on", "both"), default="off")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--only", default="", help="run the configs whose label contains this")
    parser.add_argument(
        "--against",
        metavar="REF",
        default=None,
        help="also time git REF, alternating with this checkout",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="with --against: alternations per configuration (best kept)",
    )
    parser.add_argument(
        "--ops",
        action="store_true",
        help="count operators and FLOPs (machine-independent) instead of timing",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    peak_n = 2048 if args.quick else 4096
    if args.child is not None:  # one configuration, figures on stdout as JSON
        label, compile_, fields, batch = json.loads(args.child)
        if args.ops:
            result = work(fields, batch)
        else:
            result = bench(fields, batch, args.repeats, compile_, peak_n)
        result["trmkit"] = os.path.dirname(os.path.abspath(sys.modules["trmkit"].__file__))
        print(json.dumps(result))
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
        f"{platform.processor() or platform.machine()}, load average {load:.2f}, "
        f"best of {args.repeats}, peak = {peak_n}^3 fp32 matmul timed before each config; "
        f"eval = rollout of {EVAL_STEPS} steps (no grad) per step"
    )
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    with tempfile.TemporaryDirectory(prefix="bench-engine-ref-") as tmp:
        ref_sha = export_ref(args.against, tmp) if args.against else None
        if ref_sha and not args.ops:
            print(
                f"--against {args.against} ({ref_sha}): ratio = REF time / this checkout's "
                f"time (> 1: faster now), best over {args.rounds} alternating rounds"
            )
        for label in LABELS:
            if args.only not in label:
                continue
            fields, batch = shape(label, args.quick)
            print(
                f"{label}: batch {batch}, D={fields.get('hidden_size')}, "
                f"L={fields['seq_len']}, T={fields.get('h_cycles')}, "
                f"n={fields.get('l_cycles')}, layers={fields.get('l_layers')}",
                flush=True,
            )
            if args.ops:  # deterministic: one child per side, compile does not apply
                now_work = run_child(label, False, args, None)
                ref_work = run_child(label, False, args, tmp) if ref_sha else None
                print(compare_work(label, now_work, ref_work, args.against), flush=True)
                continue
            for compile_ in modes:
                if ref_sha is None:
                    print(
                        report(label, batch, compile_, run_child(label, compile_, args, None)),
                        flush=True,
                    )
                    continue
                now: list[dict] = []
                ref: list[dict] = []
                for _ in range(args.rounds):  # alternate: both see the same load
                    now.append(run_child(label, compile_, args, None))
                    ref.append(run_child(label, compile_, args, tmp))
                print(compare(label, batch, compile_, now, ref, args.against), flush=True)


def compare(
    label: str, batch: int, compile_: bool, now: list[dict], ref: list[dict], ref_name: str
) -> str:
    """Best time per phase of each side; fractions against the best peak probe of the run
    (both sides' probes: the machine's least-loaded moment)."""
    probes = [r["peak"] for r in now + ref]
    peak = max(probes)
    lines = [
        f"{label}, batch {batch}, compile={'on' if compile_ else 'off'}: best peak "
        f"{peak:.1f} GFLOP/s over {len(probes)} probes (lowest {min(probes):.1f})"
    ]
    for phase in ("train", "eval"):
        mine = min(r[f"{phase}_s"] for r in now)
        theirs = min(r[f"{phase}_s"] for r in ref)
        flops = now[0][f"{phase}_flops"]
        lines.append(
            f"  {phase:<5} now {mine:7.3f} s/step {batch / mine:8.1f} samples/s "
            f"{flops / mine / 1e9 / peak:6.1%} of peak | {ref_name} {theirs:7.3f} s/step "
            f"{flops / theirs / 1e9 / peak:6.1%} of peak | ratio {theirs / mine:5.2f}x"
        )
    eval_rss, train_rss = max(r["eval_rss"] for r in now), max(r["train_rss"] for r in now)
    lines.append(f"  peak RSS now: {eval_rss:.0f} MiB eval, {train_rss:.0f} MiB train")
    lines.append(f"  trmkit now: {now[0]['trmkit']} | {ref_name}: {ref[0]['trmkit']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
