"""What a resumable bundle holds beyond a loadable one, and the checks before a run resumes.

A training bundle (`trmkit.checkpoint.bundle` has the layout) adds ``train_state`` (rank 0:
step, optimisers, last evaluation) and ``rank_<r>`` (each process: RNG states, loader, ACT
carry) to the weights and the manifest. The trainer writes and reads them only through
`write_train_files`, `write_rank_state` and `read_train_files`, so the file names live here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from trmkit.checkpoint.bundle import latest_checkpoint, read_manifest, write_manifest, write_weights
from trmkit.checkpoint.manifest import Manifest, dataset_mismatch
from trmkit.checkpoint.puzzle_ids import write_puzzle_ids
from trmkit.checkpoint.state import load_tree, read_safetensors, save_tree
from trmkit.config import Recipe, resume_mismatch
from trmkit.errors import CheckpointError, ConfigError

TRAIN_STATE = "train_state"


def checkpoints_dir(run_dir: Path) -> Path:
    """Where a run's bundles ``step_<N>`` live."""
    return Path(run_dir) / "checkpoints"


def write_rank_state(bundle: Path, rank: int, state: Mapping[str, Any]) -> None:
    save_tree(dict(state), bundle, f"rank_{rank}")


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


@attrs.frozen
class TrainFiles:
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    shared: dict[str, Any]
    """train_state: step, total_steps, world_size, optimizers, last_eval."""
    mine: dict[str, Any]
    """rank_<r>: rng, loader, carry, step."""


def read_train_files(bundle: Path, rank: int, world: int, ema: bool) -> TrainFiles:
    """The state of ``bundle`` that process ``rank`` of ``world`` resumes from."""
    shared = load_tree(bundle, TRAIN_STATE)
    if int(shared["world_size"]) != world:
        raise CheckpointError(
            f"{bundle} was written by {shared['world_size']} processes, this run has "
            f"{world}; exact resume needs the same number of processes"
        )
    return TrainFiles(
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
    train = store.split("train").meta if "train" in store.splits else None
    problem = dataset_mismatch(saved.dataset, store.attrs, train)
    if problem is not None:
        raise ConfigError(
            f"--resume: {data_dir} is not the dataset the run {run_dir} was trained on "
            f"({problem}); pass --data with that store "
            f"({saved.dataset.path or 'path not recorded'})"
        )
