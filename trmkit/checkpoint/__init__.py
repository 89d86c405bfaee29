"""Checkpoint bundles: the one owner of the on-disk format (docs/architecture.md).

    from trmkit.checkpoint import load_bundle, write_bundle, Manifest
    bundle = load_bundle("runs/x")            # newest bundle of a run; EMA weights, eval mode
    bundle.model, bundle.manifest.task.name, bundle.manifest.dataset.seq_len

`bundle` (layout, atomic write, load), `manifest` (typed manifest.json, task/store
compatibility), `puzzle_ids` (embedding row -> puzzle variant), `state` (pickle-free trees
of training state for exact resume).
"""

from trmkit.checkpoint.bundle import (
    Bundle,
    begin_write,
    check_task_matches,
    commit,
    latest_checkpoint,
    list_checkpoints,
    load_bundle,
    open_test_split,
    read_manifest,
    resolve_bundle,
    step_dir_name,
    tmp_dir,
    write_bundle,
    write_manifest,
    write_weights,
)
from trmkit.checkpoint.manifest import (
    FORMAT,
    FORMAT_VERSION,
    DatasetRecord,
    Manifest,
    ModelRecord,
    TaskRecord,
    check_store_matches,
)
from trmkit.checkpoint.puzzle_ids import PuzzleIdArrays, PuzzleIdTable, write_puzzle_ids
from trmkit.checkpoint.state import read_json, read_safetensors

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Bundle",
    "DatasetRecord",
    "Manifest",
    "ModelRecord",
    "PuzzleIdArrays",
    "PuzzleIdTable",
    "TaskRecord",
    "begin_write",
    "check_store_matches",
    "check_task_matches",
    "commit",
    "latest_checkpoint",
    "list_checkpoints",
    "load_bundle",
    "open_test_split",
    "read_json",
    "read_manifest",
    "read_safetensors",
    "resolve_bundle",
    "step_dir_name",
    "tmp_dir",
    "write_bundle",
    "write_manifest",
    "write_puzzle_ids",
    "write_weights",
]
