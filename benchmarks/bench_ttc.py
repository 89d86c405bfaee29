"""Test-time compute: what S samples per puzzle cost against one, same run.

    python benchmarks/bench_ttc.py [--batch B] [--depth K] [--samples 1,2,4,8,16]
                                   [--repeats N] [--shape sudoku-quick|maze-quick]

Breadth runs as extra batch rows (`trmkit.inference.engine.record` concatenates the S
copies of a batch and rolls them out in one forward per step), so S samples should cost at
most ~S x one sample's time, and less where one sample's batch is too small to keep the
matmuls busy. For each S this times `record` on a batch of B puzzles at depth K (augmented
samples: the Sudoku task's digit/band/stack shuffles, drawn and inverted, so the host-side
cost of augmentation is included; and latent noise), alternating the S values in rounds
so machine load drifts hit all of them alike, and prints best-of-rounds seconds, the ratio
t(S) / t(1) and the efficiency S x t(1) / t(S) (1.0 = linear, > 1 = batching helps).

The model is randomly initialised at the preset's shape: speed does not depend on the
weights. The machine is shared: check ``uptime`` first and set OMP_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from trmkit import plugins
from trmkit.config import load_recipe
from trmkit.inference import InferencePolicy, RowBatch, record
from trmkit.models import build_model
from trmkit.task import Task
from trmkit.testing import sample_puzzles

SHAPES = {  # preset -> (recipe, task whose augmenter makes the samples)
    "sudoku-quick": ("sudoku-quick", "sudoku-6x6"),
    "maze-quick": ("maze-quick", "maze"),
}


def make_rows(task: Task, batch: int, seed: int) -> RowBatch:
    """Real puzzles of the task (from its generator), encoded as the model sees them."""
    rng = np.random.default_rng(seed)
    examples = [
        ex for p in sample_puzzles(task, count=batch, seed=seed) for ex in (*p.train, *p.test)
    ]
    rows = [task.codec.encode(ex.input) for ex in examples[:batch]]
    inputs = np.stack([rows[i % len(rows)] for i in range(batch)])
    return RowBatch(
        inputs=inputs,
        puzzle_ids=np.zeros(len(rows), dtype=np.int64),
        keys=rng.integers(0, 2**31, len(rows)),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="sudoku-quick")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--samples", default="1,2,4,8,16")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    samples = [int(s) for s in args.samples.split(",")]
    recipe_name, task_name = SHAPES[args.shape]
    recipe = load_recipe(recipe_name, [])
    task = plugins.get_task(task_name)
    fields = dict(recipe.model.fields)
    torch.manual_seed(0)
    model = build_model(
        recipe.model.name,
        recipe.model_config(
            seq_len=task.codec.seq_len,
            vocab_size=task.codec.vocab_size,
            num_puzzle_identifiers=1,
            batch_size=args.batch,
        ),
    )
    model.eval()
    rows = make_rows(task, args.batch, seed=1)
    print(
        f"bench_ttc: shape={args.shape} (D={fields.get('hidden_size')}, "
        f"mixer={fields.get('mixer')}) batch={args.batch} depth={args.depth} "
        f"samples={samples} threads={torch.get_num_threads()} "
        f"torch={torch.__version__} cpu={platform.processor() or platform.machine()}"
    )
    sources = {"augment": dict(augment=True, noise=0.0), "noise": dict(augment=False, noise=0.1)}
    best: dict[tuple[str, int], float] = {}
    with torch.inference_mode():
        for _ in range(args.repeats + 1):  # round 0 warms up
            for source, opts in sources.items():
                for s in samples:
                    policy = InferencePolicy(steps=args.depth, samples=s, seed=0, **opts).validate()
                    t0 = time.perf_counter()
                    record(model, rows, policy, task, depth=args.depth)
                    dt = time.perf_counter() - t0
                    key = (source, s)
                    best[key] = min(best.get(key, float("inf")), dt) if _ else float("inf")
    print(f"{'source':8} {'S':>3} {'seconds':>9} {'t(S)/t(1)':>10} {'S*t(1)/t(S)':>12}")
    for source in sources:
        base = best[(source, 1)]
        for s in samples:
            t = best[(source, s)]
            print(f"{source:8} {s:>3} {t:>9.3f} {t / base:>10.2f} {s * base / t:>12.2f}")


if __name__ == "__main__":
    main()
