"""Helpers shared by the trainer / checkpoint / eval / CLI tests: a tiny 4x4-sudoku dataset
and a tiny recipe (a few thousand parameters, a fraction of a second per step on CPU)."""

from __future__ import annotations

from pathlib import Path

TINY_RECIPE = """
name = "tiny"
description = "tiny test recipe"

[data]
task = "sudoku-4x4"
num_aug = 2
seed = 0
options = { count = "64", test_count = "32" }

[model]
name = "trm"
mixer = "mlp_t"
pos_encodings = "none"
hidden_size = 32
num_heads = 2
h_cycles = 2
l_cycles = 2
l_layers = 1
puzzle_emb_ndim = 32
puzzle_emb_len = 1
halt_max_steps = 3

[optim]
global_batch_size = 16
lr = 1e-3
warmup_steps = 2
weight_decay = 0.1
puzzle_emb_lr = 1e-2
puzzle_emb_weight_decay = 0.1
ema = true
ema_rate = 0.9

[train]
epochs = 2
eval_interval = 1
log_every = 1
checkpoint_keep = 5
"""
"""64 train groups x 1 example / batch 16 = 4 steps per epoch: checkpoints at 4, 8."""


TINY_MODEL = dict(
    hidden_size=16,
    num_heads=2,
    puzzle_emb_ndim=16,
    halt_max_steps=2,
    mixer="mlp_t",
    pos_encodings="none",
    h_cycles=1,
    l_cycles=1,
    l_layers=1,
)
"""The smallest TRM the bundle/loading tests build (a few thousand parameters)."""


def tiny_model_config(**dims):
    """`TINY_MODEL` with the data's dimensions (seq_len, vocab_size, ...) and overrides."""
    return {**TINY_MODEL, **dims}


def one_thread():
    """Fixture body: torch on one thread for the module. The 2-core test machine is shared;
    with 2 threads per process, small matmuls oversubscribe the cores and run ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return before


def write_recipe(directory: Path, extra: str = "") -> Path:
    path = directory / "tiny.toml"
    path.write_text(TINY_RECIPE + extra)
    return path


def build_tiny_data(out: Path) -> Path:
    from trmkit import plugins
    from trmkit.data.build import build_dataset

    build_dataset(
        plugins.get_task("sudoku-4x4"),
        out,
        num_aug=2,
        seed=0,
        options={"count": "64", "test_count": "32"},
        progress=False,
    )
    return out


def tiny_trainer(tmp: Path, data: Path, run: str = "run", overrides=(), **kwargs):
    from trmkit.config import load_recipe
    from trmkit.training.trainer import Trainer

    recipe = load_recipe(write_recipe(tmp), list(overrides))
    return Trainer(recipe, run_dir=tmp / run, data_dir=data, progress=False, **kwargs)
