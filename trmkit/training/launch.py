"""Did the launcher start the processes it was asked for? (docs/training.md, "Several
processes").

accelerate's ``launch --cpu --num_processes N`` (1.x) hands a non-MPI CPU launch to its
*simple* launcher, which starts ONE process: it exports ``MASTER_ADDR``/``MASTER_PORT``
(because N > 1) but no ``WORLD_SIZE``/``RANK``, so `Accelerator` sees a single process and
the run trains alone while the user believes N ranks share the batch. Several CPU processes
on one machine come from ``torchrun --nproc_per_node N`` (or accelerate's torchrun path,
``accelerate launch --multi_gpu``, which works on a CPU-only machine with gloo). This module
recognises the one-process trap from the environment and refuses it before any work.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from trmkit.checkpoint.rundir import RunLock, lock_run_dir, writer_token
from trmkit.errors import ConfigError, RunDirError

# Variables by which a launcher tells a process how many peers it has.
_WORLD_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def check_launch(env: Mapping[str, str]) -> None:
    """Refuse a launch that asked accelerate for several CPU processes but got one.

    The signature of accelerate's simple launcher with ``--num_processes`` > 1:
    ``ACCELERATE_USE_CPU`` true, a rendezvous address (``MASTER_PORT``) set, and no
    world size from any launcher."""
    cpu = env.get("ACCELERATE_USE_CPU", "").strip().lower() in {"1", "true", "yes", "y", "on"}
    if not cpu or "MASTER_PORT" not in env or any(var in env for var in _WORLD_VARS):
        return
    raise ConfigError(
        "accelerate launch --cpu --num_processes N started ONE process (accelerate starts "
        "several CPU processes only through MPI); launch N with: torchrun --nproc_per_node N "
        "-m trmkit.cli train ... (or accelerate launch --multi_gpu --num_processes N ..., "
        "which uses gloo on a CPU-only machine)"
    )


def start_accelerator(run_dir: Path, cpu: bool | None, log_with: str | None) -> Any:
    """The run's `Accelerator`, once `check_launch` passes: on the CPU (fp32) when ``cpu`` or
    no CUDA device, else bf16 mixed precision."""
    from accelerate import Accelerator

    check_launch(os.environ)  # N processes asked for, one started: refuse
    use_cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    return Accelerator(
        cpu=use_cpu,
        mixed_precision="no" if use_cpu else "bf16",
        log_with=log_with,
        project_dir=str(run_dir),
    )


def lock_for_ranks(accelerator: Any, run_dir: Path) -> tuple[RunLock | None, str]:
    """The main process locks the run directory (`trmkit.checkpoint.rundir`); every rank
    learns whether it got the lock (all fail alike) and the token naming the run's
    temporaries."""
    from accelerate.utils import broadcast_object_list

    lock, problem, token = None, "", writer_token()
    if accelerator.is_main_process:
        try:
            lock = lock_run_dir(run_dir)
        except RunDirError as exc:
            problem = str(exc)
    if accelerator.num_processes > 1:
        box = [problem, token]
        broadcast_object_list(box)
        problem, token = box
    if problem:
        raise RunDirError(problem)
    return lock, token


def broadcast_weights(model: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(tensor.data, src=0)


def allreduce_grads(params: Iterable[torch.nn.Parameter]) -> None:
    """Sum the gradients over processes in one flat buffer (as the official code)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        g.copy_(part.view_as(g))


__all__ = [
    "allreduce_grads",
    "broadcast_weights",
    "check_launch",
    "lock_for_ranks",
    "start_accelerator",
]
