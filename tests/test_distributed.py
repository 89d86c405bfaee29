"""`accelerate launch --cpu --num_processes 2` makes the same first update as one process
with the same global batch (gloo all-reduce of gradients, all-gathered sparse rows)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_training import build_tiny_data

from trmkit.checkpoint.state import read_safetensors

TESTS = Path(__file__).parent

_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from safetensors.torch import save_file
from tiny_training import tiny_trainer
tmp, data, out = Path({tmp!r}), Path({data!r}), Path({out!r})
trainer = tiny_trainer(tmp, data, run="run-" + out.stem, overrides=["train.eval_interval=0"])
trainer.run(until=1)
if trainer.accelerator.is_main_process:
    state = {{k: v.contiguous() for k, v in trainer.model.state_dict().items()}}
    save_file(state, str(out))
"""


@pytest.mark.slow  # two interpreter launches plus a gloo rendezvous: ~20-40 s here
def test_two_processes_make_the_same_first_update(tmp_path):
    accelerate = shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate CLI not on PATH")
    data = build_tiny_data(tmp_path / "data")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outs = {}
    for procs in (1, 2):
        out = tmp_path / f"p{procs}.safetensors"
        script = tmp_path / f"p{procs}.py"
        script.write_text(
            _SCRIPT.format(tests=str(TESTS), tmp=str(tmp_path), data=str(data), out=str(out))
        )
        cmd = (
            [sys.executable, str(script)]
            if procs == 1
            else [
                accelerate,
                "launch",
                "--cpu",
                "--num_processes",
                "2",
                "--num_machines",
                "1",
                "--mixed_precision",
                "no",
                "--dynamo_backend",
                "no",
                "--main_process_port",
                "29517",
                str(script),
            ]
        )
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[procs] = read_safetensors(out)
    one, two = outs[1], outs[2]
    assert one.keys() == two.keys()
    for key in one:
        # summation order differs (two half-batch gradients all-reduced): float tolerance
        assert torch.allclose(one[key], two[key], atol=1e-6, rtol=1e-5), key
    # and the update was real: the puzzle table (sign-SGD, lr warmup 1/2 * 1e-2) moved
    table = next(k for k in one if k.endswith("puzzle_emb.weights"))
    assert one[table].abs().sum() > 0 and torch.equal(one[table], two[table])
