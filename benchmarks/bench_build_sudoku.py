"""Benchmark: build Sudoku-Extreme 1k x 1000 augmentations (issue 3 target: <= 15 s).

Usage: python benchmarks/bench_build_sudoku.py [CSV_OR_DIR] [--num-aug 1000] [--puzzles N]

Without a path the shared 1k training file (../shared/data/sudoku-extreme/train-1k.csv.gz)
is used when present, else 1000 generated puzzles. Prints the configuration, the augmenter's
vectorised speed against its per-grid `apply` baseline (measured in the same run), and the
wall time of the whole `build_dataset` call (source read, augmentation, encoding, store).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from trmkit.data.build import build_dataset
from trmkit.plugins import get_task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "sudoku-extreme"


def augmenter_ratio(task, num_aug: int, probes: int = 5) -> tuple[float, float]:
    """Seconds per puzzle (draw + apply to puzzle and solution): batched vs per-grid."""
    aug = task.augmenter
    rng = np.random.default_rng(0)
    grid = np.random.default_rng(1).integers(0, 10, (9, 9))
    start = time.perf_counter()
    for _ in range(probes):
        transforms = np.stack(aug.draw(None, num_aug, rng))
        stack = np.repeat(grid[None], len(transforms), axis=0)
        aug.apply_batch(transforms, stack)
        aug.apply_batch(transforms, stack)
    batched = (time.perf_counter() - start) / probes
    start = time.perf_counter()
    transforms = aug.draw(None, num_aug, rng)
    for t in transforms:
        aug.apply(t, grid)
        aug.apply(t, grid)
    per_grid = time.perf_counter() - start
    return batched, per_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=None)
    parser.add_argument("--num-aug", type=int, default=1000)
    parser.add_argument("--puzzles", type=int, default=1000)
    args = parser.parse_args()
    task = get_task("sudoku-extreme")
    source, options = args.source, {}
    if source is None and (SHARED / "train-1k.csv.gz").exists():
        source = str(SHARED / "train-1k.csv.gz")
    if source is None:
        source, options = "generate", {"count": str(args.puzzles), "test_count": "0"}
    elif args.puzzles < 1000:
        options = {"subsample": str(args.puzzles)}
    print(
        f"config: task=sudoku-extreme source={source} options={options} "
        f"num_aug={args.num_aug} puzzles<={args.puzzles}"
    )
    batched, per_grid = augmenter_ratio(task, args.num_aug)
    print(
        f"augmenter per puzzle ({args.num_aug} transforms x 2 grids): batched "
        f"{batched * 1e3:.1f} ms, per-grid apply {per_grid * 1e3:.1f} ms "
        f"(x{per_grid / batched:.1f} faster)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = build_dataset(
            task,
            Path(tmp) / "store",
            source=source,
            num_aug=args.num_aug,
            seed=0,
            options=options,
            progress=False,
        )
        seconds = time.perf_counter() - start
    rows = sum(s.examples for s in summary.splits.values())
    print(
        f"build_dataset: {seconds:.2f} s for {rows:,} rows "
        f"({rows / seconds:,.0f} rows/s; target <= 15 s); disk {summary.disk_bytes / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
