"""Engine throughput on this machine: one training supervision step (forward + backward +
optimizer) and one eval step, against a 4096^3 fp32 matmul timed in the same run.

    python benchmarks/bench_engine.py [--quick] [--compile] [--repeats N]

FLOPs are counted from the architecture (trmkit.models.flops: matmuls only), so the
"fraction of peak" is matmul work per second over the measured peak matmul rate.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch

from trmkit.models import build_model, compile_model
from trmkit.models.flops import step_flops
from trmkit.training.optim import AdamATan2, SparseSignSGD


def peak_gflops(n: int, repeats: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def make_batch(b: int, seq: int, vocab: int) -> dict[str, torch.Tensor]:
    return {
        "inputs": torch.randint(0, vocab, (b, seq), dtype=torch.int32),
        "labels": torch.randint(0, vocab, (b, seq), dtype=torch.int32),
        "puzzle_identifiers": torch.zeros(b, dtype=torch.int32),
    }


def bench(label: str, fields: dict, batch: int, repeats: int, peak: float, compile_: bool):
    torch.manual_seed(0)
    model = build_model("trm", {**fields, "batch_size": batch})
    if compile_:
        compile_model(model)
    dense = AdamATan2([p for p in model.parameters()], lr=1e-4, weight_decay=1.0)
    sparse = SparseSignSGD(model.puzzle_emb, lr=1e-4, weight_decay=1.0)
    data = make_batch(batch, fields["seq_len"], fields["vocab_size"])
    flops = step_flops(model.config, batch)

    def train_step(carry):
        carry, loss, _, _, _ = model(carry, data)
        (loss / batch).backward()
        dense.step()
        sparse.step()
        dense.zero_grad(set_to_none=True)
        return carry

    model.train()
    carry = train_step(model.initial_carry(data))  # warm-up (and compile)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        carry = train_step(carry)
        times.append(time.perf_counter() - t0)
    train_t = min(times)

    model.eval()
    with torch.inference_mode():
        ecarry = model.initial_carry(data)
        ecarry, *_ = model(ecarry, data)
        etimes = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            ecarry, *_ = model(ecarry, data)
            etimes.append(time.perf_counter() - t0)
    eval_t = min(etimes)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tg, eg = flops.train / train_t / 1e9, flops.eval / eval_t / 1e9
    print(
        f"{label:<28} train {train_t:7.3f} s/step {batch / train_t:8.1f} samples/s "
        f"{tg:6.1f} GFLOP/s ({tg / peak:5.1%} of peak) | eval {eval_t:7.3f} s/step "
        f"{batch / eval_t:8.1f} samples/s {eg:6.1f} GFLOP/s ({eg / peak:5.1%}) | "
        f"peak RSS so far {rss:7.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches, 1 repeat")
    parser.add_argument("--compile", action="store_true", help="torch.compile the shared net")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, compile={args.compile}"
    )
    peak = peak_gflops(2048 if args.quick else 4096, 2 if args.quick else 3)
    print(f"peak fp32 matmul ({2048 if args.quick else 4096}^3): {peak:.1f} GFLOP/s")
    sudoku = dict(seq_len=81, vocab_size=11, h_cycles=3, l_cycles=6)
    paper_batch, small_batch = (8, 32) if args.quick else (64, 256)
    configs = [
        ("D512 MLP-t (paper)", {**sudoku, "mixer": "mlp_t", "pos_encodings": "none"}, paper_batch),
        ("D512 attention (paper)", {**sudoku, "mixer": "attention"}, paper_batch),
        (
            "D128 MLP-t (small)",
            {
                **sudoku,
                "mixer": "mlp_t",
                "pos_encodings": "none",
                "hidden_size": 128,
                "num_heads": 2,
                "puzzle_emb_ndim": 128,
            },
            small_batch,
        ),
        (
            "D128 attention (small)",
            {
                **sudoku,
                "mixer": "attention",
                "hidden_size": 128,
                "num_heads": 2,
                "puzzle_emb_ndim": 128,
            },
            small_batch,
        ),
    ]
    for label, fields, batch in configs:
        print(f"config {label}: batch {batch}, T=3 n=6, seq 81+16")
        bench(label, fields, batch, repeats, peak, args.compile)


if __name__ == "__main__":
    main()
