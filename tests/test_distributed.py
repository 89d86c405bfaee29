"""Several processes really train together (docs/training.md, "Several processes").

`torchrun --nproc_per_node 2` starts two ranks; they make the same first update as one
process with the same global batch (gloo all-reduce of the dense gradients, the sparse
puzzle table's rows all-gathered). Each rank records the world it saw, so a launch that
quietly starts one process fails here. `accelerate launch --cpu --num_processes 2`, which
starts ONE process with accelerate 1.x, is refused before any work."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_training import build_tiny_data, write_recipe

from trmkit.checkpoint.state import read_safetensors

TESTS = Path(__file__).parent

_SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from safetensors.torch import save_file
from tiny_training import tiny_trainer
tmp, data, out = Path({tmp!r}), Path({data!r}), Path({out!r})
trainer = tiny_trainer(tmp, data, run="run-" + out.stem, overrides=["train.eval_interval=0"])
rank = trainer.accelerator.process_index
(tmp / f"{{out.stem}}-rank{{rank}}.json").write_text(json.dumps(
    {{"rank": rank, "world": trainer.accelerator.num_processes}}))
trainer.run(until=1)
if trainer.accelerator.is_main_process:
    state = {{k: v.contiguous() for k, v in trainer.model.state_dict().items()}}
    save_file(state, str(out))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# two interpreters plus a gloo rendezvous, ~15-25 s here: in the default suite because the
# all-reduce and the table's all-gather are exercised by no other test
def test_two_real_ranks_make_the_same_first_update_as_one(tmp_path):
    data = build_tiny_data(tmp_path / "data")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outs = {}
    for procs in (1, 2):
        out = tmp_path / f"p{procs}.safetensors"
        script = tmp_path / f"p{procs}.py"
        script.write_text(
            _SCRIPT.format(tests=str(TESTS), tmp=str(tmp_path), data=str(data), out=str(out))
        )
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(procs),
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
        ]
        proc = subprocess.run(
            [*launcher, str(script)], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        seen = sorted(
            json.loads(p.read_text())["world"] for p in tmp_path.glob(f"p{procs}-rank*.json")
        )
        assert seen == [procs] * procs, f"{procs} processes asked, ranks saw worlds {seen}"
        outs[procs] = read_safetensors(out)
    one, two = outs[1], outs[2]
    assert one.keys() == two.keys()
    for key in one:
        # summation order differs (two half-batch gradients all-reduced): float tolerance
        assert torch.allclose(one[key], two[key], atol=1e-6, rtol=1e-5), key
    # the update was real and the same on both: the puzzle table (sign-SGD over rows that
    # each rank all-gathers from the other) moved
    table = next(k for k in one if k.endswith("puzzle_emb.weights"))
    assert one[table].abs().sum() > 0 and torch.equal(one[table], two[table])


def test_accelerates_one_process_cpu_launch_is_refused_before_any_work(tmp_path):
    """What `accelerate launch --cpu --num_processes 2` exports (and nothing else)."""
    recipe = write_recipe(tmp_path)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "ACCELERATE_USE_CPU": "True",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
    }
    for var in ("WORLD_SIZE", "RANK", "LOCAL_WORLD_SIZE"):
        env.pop(var, None)
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "trmkit.cli", "train", "--recipe", str(recipe), "--out", str(run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "started ONE process" in lines[0] and "torchrun" in lines[0]
    assert not run.exists()


def test_check_launch_accepts_real_launchers():
    from trmkit.errors import ConfigError
    from trmkit.training.launch import check_launch

    check_launch({})  # a plain `trmkit train`
    check_launch({"ACCELERATE_USE_CPU": "False", "MASTER_PORT": "1"})  # GPU simple launch
    check_launch({"ACCELERATE_USE_CPU": "True"})  # --cpu --num_processes 1: no rendezvous
    check_launch({"ACCELERATE_USE_CPU": "True", "MASTER_PORT": "1", "WORLD_SIZE": "2"})
    check_launch({"ACCELERATE_USE_CPU": "true", "MASTER_PORT": "1", "PMI_SIZE": "2"})  # MPI
    with pytest.raises(ConfigError, match="started ONE process"):
        check_launch({"ACCELERATE_USE_CPU": "true", "MASTER_PORT": "29500"})
