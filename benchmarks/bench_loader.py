"""Loader throughput and memory on Sudoku- and ARC-shaped stores (no plugin needed).

Builds two synthetic stores in a temporary directory with the real StoreWriter:
- sudoku: 1000 groups x 1001 one-example puzzles = 1,001,000 rows x 81 tokens (vocab 11);
- arc: 960 groups of 2..6-example puzzles, ~500,000 rows x 900 tokens, mostly PAD with a
  random grid in the top-left corner (vocab 12), like the ARC encoding.
Then, each in a fresh process (so peak RSS is the loader's own), times TrainLoader at
global batch 768 (store opened from disk, split loaded to RAM), and a baseline measured in
the same process: a plain numpy fancy-index gather of exactly the same rows plus the int32
casts. Prints the configuration, batches/s, the ratio to the baseline and peak RSS against
the uncompressed arrays.

    python benchmarks/bench_loader.py [--batches N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GLOBAL_BATCH = 768
SHAPES = {
    "sudoku": {"seq_len": 81, "vocab": 11, "groups": 1000, "rows": 1_001_000},
    "arc": {"seq_len": 900, "vocab": 12, "groups": 960, "rows": 500_000},
}


def build(shape: str, out: Path) -> None:
    from trmkit.data.store import StoreWriter

    spec = SHAPES[shape]
    seq_len, vocab, groups, rows = spec["seq_len"], spec["vocab"], spec["groups"], spec["rows"]
    rng = np.random.default_rng(0)
    if shape == "sudoku":
        puzzle_sizes = np.ones(rows, np.int64)
        group_sizes = np.full(groups, rows // groups, np.int64)
    else:
        puzzle_sizes = rng.integers(2, 7, size=rows // 4)
        puzzle_sizes = puzzle_sizes[: np.searchsorted(np.cumsum(puzzle_sizes), rows)]
        cuts = np.sort(rng.choice(np.arange(1, len(puzzle_sizes)), groups - 1, replace=False))
        group_sizes = np.diff(np.concatenate([[0], cuts, [len(puzzle_sizes)]]))
    total = int(puzzle_sizes.sum())
    side = int(round(seq_len**0.5))
    with StoreWriter(out) as writer:
        split = writer.split("train", seq_len=seq_len, transform_size=1)
        p0 = 0
        for g0 in range(0, groups, 50):
            g1 = min(groups, g0 + 50)
            p1 = p0 + int(group_sizes[g0:g1].sum())
            n = int(puzzle_sizes[p0:p1].sum())
            tokens = rng.integers(1, vocab, size=(n, seq_len), dtype=np.uint8)
            if shape == "arc":
                h = rng.integers(1, side + 1, size=(n, 1, 1))
                w = rng.integers(1, side + 1, size=(n, 1, 1))
                r, c = np.arange(side)[None, :, None], np.arange(side)[None, None, :]
                tokens = np.where((r < h) & (c < w), tokens.reshape(n, side, side), 0)
                tokens = tokens.reshape(n, seq_len).astype(np.uint8)
            split.append(
                tokens,
                tokens,
                puzzle_sizes=puzzle_sizes[p0:p1],
                puzzle_ids=np.zeros(p1 - p0, np.int64),
                transforms=np.zeros((p1 - p0, 1), np.int64),
                group_sizes=group_sizes[g0:g1],
                group_names=[f"g{g}" for g in range(g0, g1)],
            )
            p0 = p1
        common = {
            "vocab_size": vocab,
            "pad_id": 0,
            "ignore_label_id": 0,
            "blank_identifier_id": 0,
            "num_puzzle_identifiers": 1,
        }
        writer.commit({"task": f"synthetic-{shape}", "task_version": "1"}, common, ["<blank>"])
    print(f"built {shape}: {total:,} rows x {seq_len} in {out}", flush=True)


def measure(store_dir: Path, batches: int) -> dict:
    import torch

    from trmkit.data.loader import TrainLoader
    from trmkit.data.store import open_store

    torch.set_num_threads(1)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # interpreter + torch
    split = open_store(store_dir)["train"]
    started = time.perf_counter()
    loader = TrainLoader(split, GLOBAL_BATCH, seed=0, epochs_per_iter=100_000)
    load_seconds = time.perf_counter() - started

    # the rows of the same batches, for the baseline
    plan, carry, epoch = [], np.zeros(0, np.int64), 0
    while len(plan) < batches:
        got, carry = loader._epoch_batches(0, epoch, carry)
        plan.extend(got)
        epoch += 1
    plan = plan[:batches]

    started = time.perf_counter()
    stream = iter(loader)  # one iteration of 100,000 epochs: never exhausted here
    for _ in range(batches):
        batch = next(stream)
    loader_seconds = time.perf_counter() - started
    assert batch["inputs"].shape == (GLOBAL_BATCH, split.meta.seq_len)

    inputs, labels = split.load()
    started = time.perf_counter()
    for rows in plan:
        torch.from_numpy(inputs[rows].astype(np.int32))
        torch.from_numpy(labels[rows].astype(np.int32))
    baseline_seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "rows": split.meta.total_examples,
        "seq_len": split.meta.seq_len,
        "uncompressed_bytes": split.nbytes,
        "open_and_load_seconds": load_seconds,
        "loader_batches_per_s": batches / loader_seconds,
        "baseline_batches_per_s": batches / baseline_seconds,
        "peak_rss_bytes": peak,
        "base_rss_bytes": base_rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="build the stores here (reused if present)")
    parser.add_argument("--build", nargs=2, metavar=("SHAPE", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.build[0], Path(args.build[1]))
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.batches)))
        return
    print(
        f"config: global batch {GLOBAL_BATCH}, {args.batches} batches per shape, rank 0 of 1, "
        f"split loaded to RAM, shapes {json.dumps(SHAPES)}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for shape in SHAPES:
            store_dir = root / shape
            if not store_dir.exists():
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, __file__, "--build", shape, str(store_dir)], check=True
                )
                print(f"  (synthetic build {time.perf_counter() - started:.1f} s)")
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--measure",
                    str(store_dir),
                    "--batches",
                    str(args.batches),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(output.strip().splitlines()[-1])
            ratio = r["loader_batches_per_s"] / r["baseline_batches_per_s"]
            print(
                f"{shape:<7} rows {r['rows']:,} x {r['seq_len']}: open+load "
                f"{r['open_and_load_seconds']:.1f} s; TrainLoader "
                f"{r['loader_batches_per_s']:.0f} batches/s, numpy gather baseline "
                f"{r['baseline_batches_per_s']:.0f} batches/s (ratio {ratio:.2f}); peak RSS "
                f"{r['peak_rss_bytes'] / 2**30:.2f} GiB = "
                f"{r['peak_rss_bytes'] / r['uncompressed_bytes']:.2f}x the uncompressed arrays "
                f"({r['uncompressed_bytes'] / 2**30:.2f} GiB); above the interpreter+torch "
                f"baseline ({r['base_rss_bytes'] / 2**30:.2f} GiB): "
                f"{(r['peak_rss_bytes'] - r['base_rss_bytes']) / r['uncompressed_bytes']:.2f}x"
            )


if __name__ == "__main__":
    main()
