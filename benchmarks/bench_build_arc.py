"""Benchmark: build ARC-AGI-1 (training + evaluation + ConceptARC) x 1000 augmentations.

Issue 3 target: <= 3 minutes and <= 4 GB peak RSS on the 2-core machine; the reference
builder takes ~15 minutes and ~14 GB (trm-reference 6.4).

Usage: python benchmarks/bench_build_arc.py [DATA_DIR] [--num-aug 1000] [--tasks N]
                                            [--no-build] [--baseline-tasks 8]

DATA_DIR is laid out like ../shared/data (arc-agi-1/{training,evaluation}.json.gz +
conceptarc/corpus.json.gz; default: that folder). Three measurements, one run:
1. baseline: the plain per-variant path (augmenter.apply on every grid, then
   codec.encode_puzzle per variant) on ``--baseline-tasks`` tasks, extrapolated;
2. the plugin's fused path (ArcAugmenter.draw + ArcCodec.encode_variants) over all tasks,
   without writing anything; ratio = baseline / fused;
3. the whole `build_dataset` call (source, augmentation, encoding, Zarr store), unless
   ``--no-build``; its speed depends on whether trmkit.data.build uses encode_variants.
Peak RSS is read from getrusage after each phase (it only grows).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from trmkit.plugins import get_task
from trmkit.task import Example, SourceRequest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OPTIONS = {"allow_test_overlap": "true"}  # the reference recipe keeps its one duplicate


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def splits(puzzle):
    return [(name, ex) for name, ex in (("train", puzzle.train), ("test", puzzle.test)) if ex]


def baseline(task, puzzles, num_aug: int, rng) -> tuple[float, int]:
    """Seconds and rows of the per-variant path on ``puzzles``."""
    aug, codec = task.augmenter, task.codec
    rows, start = 0, time.perf_counter()
    for puzzle in puzzles:
        transforms = [aug.identity(), *aug.draw(puzzle, num_aug, rng)]
        for split, examples in splits(puzzle):
            for t in transforms:
                moved = [Example(aug.apply(t, e.input), aug.apply(t, e.output)) for e in examples]
                inputs, _ = codec.encode_puzzle(moved, split=split, rng=rng)
                rows += len(inputs)
    return time.perf_counter() - start, rows


def fused(task, puzzles, num_aug: int, rng) -> tuple[float, float, int]:
    """Seconds drawing, seconds encoding and rows of the fused path on ``puzzles``."""
    aug, codec = task.augmenter, task.codec
    draw_s = encode_s = 0.0
    rows = 0
    for puzzle in puzzles:
        start = time.perf_counter()
        transforms = np.stack([aug.identity(), *aug.draw(puzzle, num_aug, rng)])
        middle = time.perf_counter()
        for split, examples in splits(puzzle):
            inputs, _ = codec.encode_variants(examples, transforms, aug, split=split, rng=rng)
            rows += inputs.shape[0] * inputs.shape[1]
        draw_s += middle - start
        encode_s += time.perf_counter() - middle
    return draw_s, encode_s, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=SHARED)
    parser.add_argument("--num-aug", type=int, default=1000)
    parser.add_argument(
        "--tasks",
        type=int,
        default=0,
        help="first N tasks for phases 1-2 (0 = all; the build uses all)",
    )
    parser.add_argument("--baseline-tasks", type=int, default=8)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()

    task = get_task("arc-agi-1")
    source = task.sources["files"]
    start = time.perf_counter()
    raw = source.load(SourceRequest(args.data, 0, OPTIONS))
    puzzles = list(raw.puzzles)[: args.tasks or None]
    load_s = time.perf_counter() - start
    print(f"config: {args.data}  tasks {len(puzzles)}  num_aug {args.num_aug}  seed 0")
    print(f"        {raw.description}")
    print(f"load:     {load_s:6.1f} s")

    step = max(1, len(puzzles) // max(1, args.baseline_tasks))
    sample = puzzles[::step][: args.baseline_tasks]
    base_s, base_rows = baseline(task, sample, args.num_aug, np.random.default_rng(0))
    draw_s, encode_s, rows = fused(task, puzzles, args.num_aug, np.random.default_rng(0))
    fused_s = draw_s + encode_s
    base_per_row = base_s / max(base_rows, 1)
    print(
        f"baseline: {base_s:6.1f} s for {base_rows:,} rows ({len(sample)} tasks, per-variant "
        f"apply + encode_puzzle) -> {base_per_row * rows:,.0f} s extrapolated to {rows:,} rows"
    )
    print(
        f"fused:    {fused_s:6.1f} s for {rows:,} rows (draw {draw_s:.1f} s, encode "
        f"{encode_s:.1f} s); {base_per_row * rows / max(fused_s, 1e-9):.1f}x the baseline; "
        f"peak RSS {peak_rss_gb():.2f} GB"
    )
    if args.no_build:
        return
    from trmkit.data.build import build_dataset

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = build_dataset(
            task,
            Path(tmp) / "arc1",
            source=str(args.data),
            num_aug=args.num_aug,
            options=OPTIONS,
            progress=False,
        )
        build_s = time.perf_counter() - start
    for line in summary.lines():
        print("   ", line)
    verdict = "OK" if build_s <= 180 and peak_rss_gb() <= 4 else "over target"
    print(
        f"build:    {build_s:6.1f} s, peak RSS {peak_rss_gb():.2f} GB (target <= 180 s and "
        f"<= 4 GB: {verdict}; reference builder ~900 s, ~14 GB)"
    )


if __name__ == "__main__":
    main()
