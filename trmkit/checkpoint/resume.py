"""What a resumable bundle holds beyond a loadable one, and the checks before a run resumes.

A training bundle (`trmkit.checkpoint.bundle` has the layout) adds ``train_state`` (rank 0:
step, optimisers, last evaluation) and ``rank_<r>`` (each process: RNG states, loader, ACT
carry) to the weights and the manifest. The trainer writes and reads them only through
`save_training_bundle` and `read_train_files`, so the file names live here.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from trmkit.checkpoint.bundle import (
    begin_write,
    commit,
    latest_checkpoint,
    read_manifest,
    remove_temporaries,
    step_dir_name,
    tmp_dir,
    trained_store,
    write_manifest,
    write_weights,
)
from trmkit.checkpoint.manifest import Manifest, dataset_mismatch
from trmkit.checkpoint.puzzle_ids import write_puzzle_ids
from trmkit.checkpoint.rundir import check_fresh_run_dir
from trmkit.checkpoint.state import load_tree, read_safetensors, save_tree
from trmkit.config import Recipe, resume_mismatch
from trmkit.errors import CheckpointError, ConfigError, TrmkitError
from trmkit.oserrors import check_writable_dir, writing
from trmkit.task import Task

TRAIN_STATE = "train_state"


def checkpoints_dir(run_dir: Path) -> Path:
    """Where a run's bundles ``step_<N>`` live."""
    return Path(run_dir) / "checkpoints"


def prepare_run_dir(run_dir: Path, *, fresh: bool, main: bool) -> None:
    """Before a run starts (under the run's lock): a fresh run refuses a directory holding
    bundles; the main process removes leftover temporaries and checks that the checkpoints
    and evaluations can be written now, not after the last step."""
    root = checkpoints_dir(run_dir)
    if fresh:
        existing = latest_checkpoint(root)
        check_fresh_run_dir(run_dir, holds_checkpoints=existing.name if existing else None)
    if main:  # no other writer is live: any temporary is a leftover
        remove_temporaries(root, every=True)
        for entry in ("checkpoints", "eval"):
            check_writable_dir(Path(run_dir) / entry, f"run's {entry} directory")


def trained_store_path(saved: Manifest, run_dir: Path, task: Task) -> Path | None:
    """On --resume without --data: the store the run was trained on when it is still there
    (else None: the recipe's data is prepared and compared)."""
    try:
        return Path(trained_store(saved, checkpoints_dir(run_dir), task).path)
    except TrmkitError:
        return None


def write_train_files(
    bundle: Path,
    *,
    model: Mapping[str, torch.Tensor],
    ema: Mapping[str, torch.Tensor] | None,
    shared: Mapping[str, Any],
    manifest: Manifest,
    store: Any,
) -> None:
    """Rank 0's share: weights, EMA shadow, puzzle-id table (per-variant ids), train_state and
    the manifest."""
    write_weights(bundle, "model", model)
    if ema is not None:
        write_weights(bundle, "ema", ema)
    if manifest.dataset.num_puzzle_identifiers > 1:
        write_puzzle_ids(bundle, store)
    save_tree(dict(shared), bundle, TRAIN_STATE)
    write_manifest(bundle, manifest)


def save_training_bundle(
    root: Path,
    step: int,
    *,
    owner: str,
    keep: int,
    rank: int,
    main: bool,
    barrier: Callable[[], Any],
    rank_state: Mapping[str, Any],
    main_files: Callable[[], Mapping[str, Any]],
) -> Path:
    """Write bundle ``step_<N>`` atomically from every process of a run: each its
    ``rank_<r>``, the main one `write_train_files` (``main_files()`` gives its arguments), then
    the main one commits and prunes to the last ``keep``; ``barrier`` syncs the processes.
    A fault while writing (a full disk) is one line naming the bundle; the partial temporary
    is removed and the earlier bundles stay (docs/errors.md, "Write boundaries")."""
    tmp = tmp_dir(root, step, owner)
    try:
        with writing(root / step_dir_name(step), "checkpoint"):
            if main:
                begin_write(root, step, owner)
            barrier()
            save_tree(dict(rank_state), tmp, f"rank_{rank}")
            if main:
                write_train_files(tmp, **main_files())
            barrier()
            final = commit(root, step, keep, owner) if main else root / step_dir_name(step)
            barrier()
            return final
    except BaseException:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


@attrs.frozen
class TrainFiles:
    bundle: Path
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    shared: dict[str, Any]
    """train_state: step, total_steps, world_size, optimizers, last_eval."""
    mine: dict[str, Any]
    """rank_<r>: rng, loader, carry, step."""


def read_train_files(root: Path, rank: int, world: int, ema: bool) -> TrainFiles:
    """The state of the newest bundle under ``root`` that process ``rank`` of ``world``
    resumes from."""
    bundle = latest_checkpoint(root)
    if bundle is None:  # checked before the run was built; the lock keeps other writers out
        raise CheckpointError(f"--resume: {root} holds no complete checkpoint")
    shared = load_tree(bundle, TRAIN_STATE)
    if int(shared["world_size"]) != world:
        raise CheckpointError(
            f"{bundle} was written by {shared['world_size']} processes, this run has "
            f"{world}; exact resume needs the same number of processes"
        )
    return TrainFiles(
        bundle=bundle,
        model=read_safetensors(bundle / "model.safetensors"),
        ema=read_safetensors(bundle / "ema.safetensors") if ema else None,
        shared=shared,
        mine=load_tree(bundle, f"rank_{rank}"),
    )


def resumable_manifest(run_dir: Path, recipe: Recipe, max_steps: int | None) -> Manifest:
    """The newest bundle's manifest, once ``recipe`` may resume it (`resume_mismatch`)."""
    root = checkpoints_dir(run_dir)
    latest = latest_checkpoint(root)
    if latest is None:
        raise CheckpointError(f"--resume: {root} holds no complete checkpoint")
    saved = read_manifest(latest)
    mismatch = resume_mismatch(saved.recipe, recipe)
    if mismatch is not None:
        raise ConfigError(
            f"--resume: {mismatch} (run {run_dir}); resume with the same recipe and "
            "--set values (only budget, logging and checkpoint settings may change)"
        )
    check_budget(run_dir, saved.step, max_steps, max_steps)
    return saved


def check_budget(run_dir: Path, step: int, budget: int | None, max_steps: int | None) -> None:
    """A resumed run's step budget must not be below the step it is at."""
    if budget is None or budget >= step:
        return
    given = f"--max-steps {max_steps}" if max_steps else f"the budget {budget}"
    raise ConfigError(
        f"--resume: the run {run_dir} is at step {step}; {given} is below it; pass a "
        f"--max-steps of at least {step} (or none)"
    )


def check_same_data(saved: Manifest, store: Any, data_dir: Path, run_dir: Path) -> None:
    """The store a run resumes on is the one it was trained on."""
    problem = dataset_mismatch(saved.dataset, store)
    if problem is not None:
        raise ConfigError(
            f"--resume: {data_dir} is not the dataset the run {run_dir} was trained on "
            f"({problem}); pass --data with that store "
            f"({saved.dataset.path or 'path not recorded'})"
        )
