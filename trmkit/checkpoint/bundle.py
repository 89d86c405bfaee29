"""Checkpoint bundles: safetensors weights + manifest.json, written atomically, loaded unpickled.

Layout of one bundle (``<run>/checkpoints/step_<N>/``)::

    manifest.json          `Manifest`: model name + config, task, dataset metadata, step, recipe
    model.safetensors      raw weights and persistent buffers (incl. the puzzle-embedding table)
    ema.safetensors        EMA shadow of the trainable parameters (if EMA is on)
    puzzle_ids.*           id -> (group name, transform) table, for tasks with per-variant ids
    train_state.{json,safetensors}    optimisers, EMA, schedule step, loader, metrics (rank 0)
    rank_<r>.{json,safetensors}       per-process state: RNG states and the ACT carry

Everything is written into ``.tmp-step_<N>.<pid>@<host>`` (the writer's token,
`trmkit.checkpoint.rundir.writer_token`) and renamed to ``step_<N>`` only when complete (the
rename is atomic on POSIX), so a process killed mid-write leaves the previous bundles
untouched and the half-written directory is never picked up. A writer removes only its own
temporaries and those whose writer provably died; the trainer, which holds the run's lock,
removes every leftover one when it starts. Pruning renames a bundle out of the ``step_<N>``
names before deleting it, so a reader never sees a half-deleted bundle, and `load_bundle`
falls back to the newest bundle still there when the one it resolved is pruned under it.
The official code saves only ``model.state_dict()`` with torch.save: no optimiser, carry or
RNG state, hence no exact resume, and pickles (docs/engine.md, deviation 7).

Writing: the trainer (several processes) uses `begin_write` / `write_weights` /
`write_manifest` / `commit`; a single process that has weights in hand (an importer) calls
`write_bundle`. Reading: `load_bundle` (also `trmkit.load`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from trmkit import atomic
from trmkit.checkpoint.hub import fetch_hub, is_hub
from trmkit.checkpoint.manifest import Manifest, check_model_compute, check_store_matches
from trmkit.checkpoint.manifest import check_task_matches as _check_task
from trmkit.checkpoint.puzzle_ids import write_puzzle_ids
from trmkit.checkpoint.rundir import held_by_another, owner_is_dead, writer_token
from trmkit.checkpoint.state import read_json, read_safetensors, save_safetensors
from trmkit.checkpoint.weights_header import TensorInfo, dtype_name, read_header
from trmkit.errors import CheckpointError, OptionError, TrmkitError, first_line
from trmkit.models.protocol import RecursiveModel
from trmkit.oserrors import check_writable_dir, writing
from trmkit.task import Task

MANIFEST_DEPTH = 64
"""a manifest nests about 5 levels (the recipe's data.options); deeper is refused."""
_STEP_DIR = re.compile(r"^step_(\d+)$")
_OWNED_TMP = re.compile(r"^\.tmp-.*\.(\d+@[^.@/]+(?:\.[^.@/]+)*)$")
"""``.tmp-<what>.<pid>@<host>``: a temporary (bundle being written or pruned) and its writer."""
_PRUNED = ".tmp-pruned-"


def step_dir_name(step: int) -> str:
    return f"step_{step}"


def tmp_dir(root: Path, step: int, owner: str | None = None) -> Path:
    """Where ``owner`` (default: this process, `writer_token`) writes bundle ``step``."""
    return root / f".tmp-{step_dir_name(step)}.{owner or writer_token()}"


def remove_temporaries(root: Path, *, owner: str | None = None, every: bool = False) -> None:
    """Delete leftover ``.tmp-*`` directories under ``root``: those of ``owner`` (default
    this process) and of writers that provably died; with ``every`` (the caller holds the
    run's lock, so no other writer is live) all of them, older unowned names included."""
    if not root.is_dir():
        return
    mine = owner or writer_token()
    for child in root.glob(".tmp-*"):
        match = _OWNED_TMP.match(child.name)
        who = match.group(1) if match else None
        if every or who == mine or (who is not None and owner_is_dead(who)):
            shutil.rmtree(child, ignore_errors=True)


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete bundles under ``root`` (those with a manifest), oldest first."""
    if not root.is_dir():
        return []
    _recover(root)
    return sorted(
        (int(match.group(1)), child)
        for child in root.iterdir()
        if (match := _STEP_DIR.match(child.name)) and (child / "manifest.json").is_file()
    )


def _recover(root: Path) -> None:
    """Undo a `commit` killed between its two renames (`trmkit.atomic.recover_dir`), unless
    another process holds the run's lock: then the backup is a swap in progress."""
    if held_by_another(root.parent):
        return
    for child in root.glob(f"{atomic.BACKUP_MARK}step_*"):
        atomic.try_recover_dir(root / child.name[len(atomic.BACKUP_MARK) :])


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def begin_write(root: Path, step: int, owner: str | None = None) -> Path:
    """Create a clean temporary directory for bundle ``step`` (rank 0 only); ``owner`` is
    the writer's token (default this process), shared by every rank of a run."""
    root.mkdir(parents=True, exist_ok=True)
    remove_temporaries(root, owner=owner)
    path = tmp_dir(root, step, owner)
    path.mkdir()
    return path


def write_weights(path: Path, name: str, state: Mapping[str, torch.Tensor]) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    # safetensors refuses views into a larger storage: clone those
    tensors = {k: v.clone() if v.storage_offset() else v for k, v in tensors.items()}
    save_safetensors(tensors, path / f"{name}.safetensors", metadata={"format": "pt"})


def write_manifest(path: Path, manifest: Manifest) -> None:
    atomic.write_text(path / "manifest.json", json.dumps(manifest.to_json(), indent=1))


def commit(root: Path, step: int, keep: int, owner: str | None = None) -> Path:
    """Rename the finished temporary directory into place and prune to the last ``keep``."""
    src = tmp_dir(root, step, owner)
    dst = root / step_dir_name(step)
    # re-saving the same step (e.g. end of a resumed run) replaces it; a kill between the
    # two renames leaves .old-step_<N>, which list_checkpoints renames back
    atomic.replace_dir(src, dst)  # fsyncs root after each rename
    if keep > 0:
        for _, old in list_checkpoints(root)[:-keep]:
            prune(old, owner)
    return dst


def prune(bundle: Path, owner: str | None = None) -> None:
    """Delete ``bundle``: first renamed out of the ``step_<N>`` names (one atomic step, so a
    reader sees the whole bundle or none), then removed."""
    gone = bundle.with_name(f"{_PRUNED}{bundle.name}.{owner or writer_token()}")
    try:
        os.replace(bundle, gone)
    except OSError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def write_bundle(
    path: str | os.PathLike,
    manifest: Manifest,
    weights: Mapping[str, torch.Tensor],
    *,
    ema: Mapping[str, torch.Tensor] | None = None,
    store: Any = None,
    force: bool = False,
) -> Path:
    """Write a loadable (not resumable: no optimiser, RNG or carry state) bundle at ``path``
    in one go, atomically: model weights, optional EMA weights, the puzzle-id table of
    ``store`` (a `trmkit.data.store.Store`, for tasks with per-variant puzzle ids) and the
    manifest (``manifest.ema`` is set to match ``ema``)."""
    dst = Path(path).expanduser()
    if dst.exists() and not force:
        raise CheckpointError(f"{dst} exists; pass force=True to replace it")
    check_writable_dir(dst.parent, "directory of the bundle")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".tmp-{dst.name}.{writer_token()}"  # this process's own temporary
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with writing(dst, "bundle"):
            tmp.mkdir()
            write_weights(tmp, "model", weights)
            if ema is not None:
                write_weights(tmp, "ema", ema)
            if store is not None and manifest.dataset.num_puzzle_identifiers > 1:
                write_puzzle_ids(tmp, store)
            write_manifest(tmp, attrs.evolve(manifest, ema=ema is not None))
            atomic.replace_dir(tmp, dst)  # fsyncs dst.parent after each rename
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written stays behind
        raise
    return dst


# ----------------------------------------------------------------------------------- loading


def resolve_bundle(path: str | os.PathLike) -> Path:
    """A bundle dir, a run dir or its ``checkpoints`` dir -> the newest complete bundle;
    ``hf://OWNER/REPO[@REVISION][/PATH]`` -> that repository's folder in the hub cache,
    downloaded when needed (`trmkit.checkpoint.hub.fetch_hub`). Every checkpoint argument
    (`trmkit.load`, eval, solve, adapt, checkpoint info/export) is resolved here."""
    p = fetch_hub(path) if is_hub(path) else Path(path).expanduser()
    if not p.exists():
        atomic.try_recover_dir(p)  # a replacement killed between its renames
    if not p.exists():
        if str(path).startswith("hf:/"):  # pathlib folded hf:// into hf:/
            raise CheckpointError(
                f"{p}: no such checkpoint; pass a hub repository as the string "
                f"'hf://{str(path)[4:].lstrip('/')}', not a Path"
            )
        raise CheckpointError(f"{p}: no such checkpoint (give a step_<N> dir or a run dir)")
    if (p / "manifest.json").is_file():
        return p
    latest = latest_checkpoint(p / "checkpoints") or latest_checkpoint(p)
    if latest is not None:
        return latest
    if is_hub(path):
        raise CheckpointError(
            f"{path}: holds no trmkit bundle (no manifest.json); push one with trmkit push, "
            "or import an official run with trmkit checkpoint import"
        )
    raise CheckpointError(
        f"{p}: not a checkpoint bundle (no manifest.json) and holds none; give a step_<N> "
        "bundle directory or a run directory with checkpoints"
    )


def read_manifest(bundle: Path) -> Manifest:
    file = bundle / "manifest.json"
    return Manifest.from_json(read_json(file, max_depth=MANIFEST_DEPTH), file)


@attrs.define
class Bundle:
    """A loaded checkpoint: ``model, manifest = trmkit.load(path)`` also works."""

    model: RecursiveModel
    manifest: Manifest
    path: Path

    def __iter__(self):
        return iter((self.model, self.manifest))

    @property
    def task_name(self) -> str:
        return self.manifest.task.name

    @property
    def task(self) -> Task:
        """The registered task as the model's data was built (its plugin must be installed;
        build options such as ARC's canvas from the manifest: `Task.for_store`)."""
        from trmkit import plugins

        return plugins.get_task(self.task_name).for_store(self.manifest.dataset.store)

    @property
    def step(self) -> int:
        return self.manifest.step


def build_model_from_manifest(
    manifest: Manifest, where: Path | str = "manifest", device: str | torch.device | None = None
) -> RecursiveModel:
    """The manifest's model; every config field is type-checked against the registered
    config class first (a hand-edited manifest is one CheckpointError naming the field)."""
    from trmkit.config import _check_model_fields
    from trmkit.models import build_model, make_config

    spec = manifest.model
    try:
        fields = _check_model_fields(spec.name, spec.config, str(where))
        check_model_compute(manifest, fields, where)
        cfg = make_config(spec.name, fields)
        with contextlib.nullcontext() if device is None else torch.device(device):
            return build_model(spec.name, cfg)
    except CheckpointError:
        raise
    except TrmkitError as exc:  # ConfigError, or a component name no plugin registers
        text = str(exc) if str(exc).startswith(str(where)) else f"{where}: {exc}"
        raise CheckpointError(
            f"{text}; {Path(where).name} does not fit model {spec.name!r}"
        ) from None
    except (KeyError, TypeError, ValueError, RuntimeError, ArithmeticError) as exc:
        raise CheckpointError(
            f"{where}: manifest model config does not fit model {spec.name!r}: "
            f"{first_line(exc, 160)}"
        ) from None


WEIGHTS = ("ema", "raw")
"""what `load_bundle` accepts as ``weights``."""


def weight_files(manifest: Manifest, bundle: Path) -> dict[str, Path]:
    """The weight files the manifest says ``bundle`` holds, by kind: ``model`` always,
    ``ema`` when ``weights.ema`` is true. The manifest is the truth: an EMA file it does
    not announce is refused, not ignored (docs/errors.md, "Bundles: the manifest is the
    truth")."""
    files = {"model": bundle / "model.safetensors"}
    ema = bundle / "ema.safetensors"
    if manifest.ema:
        if not ema.exists():  # a directory or pipe there: `read_header` says so
            raise CheckpointError(
                f"{ema}: missing, but manifest.json says weights.ema is true; the bundle is "
                "incomplete (copy the file back, or set weights.ema to false to use the raw "
                "weights)"
            )
        files["ema"] = ema
    elif ema.exists():
        raise CheckpointError(
            f"{ema}: present, but manifest.json says weights.ema is false; delete the file or "
            "set weights.ema to true if it belongs to these weights"
        )
    return files


def expected_tensors(model: torch.nn.Module, kind: str) -> dict[str, TensorInfo]:
    """What a weight file of ``kind`` must hold for ``model``: ``model``, every state-dict
    entry; ``ema``, the trainable parameters (what `trmkit.training.ema.EMA` averages)."""
    if kind == "ema":
        tensors = {k: v for k, v in model.named_parameters() if v.requires_grad}
    else:
        tensors = model.state_dict()
    return {
        k: TensorInfo(dtype=dtype_name(v.dtype), shape=tuple(v.shape)) for k, v in tensors.items()
    }


def _first(keys: list[str]) -> str:
    shown = ", ".join(repr(k[:60]) for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def check_tensors(
    expected: Mapping[str, TensorInfo], stored: Mapping[str, TensorInfo], file: Path, where: Path
) -> None:
    """``stored`` (a safetensors header) must hold exactly the keys of ``expected``, each
    with its shape and dtype (nothing is cast); one CheckpointError naming the first few."""
    missing = sorted(set(expected) - set(stored))
    unknown = sorted(set(stored) - set(expected))
    if missing or unknown:
        what = [f"missing {_first(missing)}"] if missing else []
        what += [f"unexpected {_first(unknown)}"] if unknown else []
        raise CheckpointError(
            f"{file}: holds {len(set(expected) & set(stored))} of the {len(expected)} tensors "
            f"the manifest's model needs ({'; '.join(what)}); {where.name} was edited or "
            "belongs to other weights"
        )
    for key, want in expected.items():
        have = stored[key]
        if have.shape != want.shape:
            raise CheckpointError(
                f"{where}: the manifest's model needs {key} of shape {want.shape}, "
                f"{file.name} holds {have.shape}; the manifest was edited or belongs to "
                "other weights"
            )
        if have.dtype != want.dtype:
            raise CheckpointError(
                f"{file}: tensor {key} is stored as {have.dtype}, the manifest's model "
                f"builds {want.dtype}; the weights were converted or edited (trmkit does "
                "not cast them)"
            )


def check_model_fits_weights(manifest: Manifest, where: Path, files: Mapping[str, Path]) -> None:
    """Build the manifest's model on torch's meta device (no memory) and compare the
    tensors it needs (keys, shapes, dtypes) with the headers of its weight files
    (`weight_files`; headers parsed by `read_header`, a duplicated key refused): a manifest
    asking for a larger model than the weights hold is refused before anything is
    allocated."""
    headers = {kind: read_header(file) for kind, file in files.items()}
    try:
        meta = build_model_from_manifest(manifest, where, device="meta")
    except CheckpointError:
        raise
    except Exception:  # noqa: BLE001 - a model that cannot be built on meta: load checks it
        return
    for kind, file in files.items():
        check_tensors(expected_tensors(meta, kind), headers[kind], file, where)


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device this torch build and machine can hold tensors on;
    otherwise one OptionError naming it (no device is assumed: the caller names one)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise OptionError(
            f"device {device!r}: not a torch device name; pass e.g. device='cpu' or 'cuda:0'"
        ) from None
    if dev.type == "meta":
        raise OptionError("device 'meta': holds no weights; pass a real device, e.g. device='cpu'")
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError, ValueError, TypeError) as exc:
        raise OptionError(
            f"device {str(dev)!r}: not available with this torch build on this machine "
            f"({first_line(exc, 160)}); pass device='cpu' or a device this machine has"
        ) from None
    return dev


_PRUNED_RETRIES = 5
"""how often `load_bundle` re-resolves a run whose newest bundle was pruned under it."""


def load_bundle(
    path: str | os.PathLike, *, weights: str = "ema", device: str | torch.device = "cpu"
) -> Bundle:
    """Load a bundle as a ready model in eval mode: the EMA weights when its manifest has
    them (``weights="ema"``, the default), else, or with ``weights="raw"``, the raw ones.

    A bundle that vanishes while it is read (a running trainer pruned or replaced it) is not
    "incomplete": the run is resolved again and its newest bundle still there is loaded."""
    # the Python API's arguments, before any file is looked at
    if not isinstance(weights, str) or weights not in WEIGHTS:
        raise OptionError(
            f"weights={weights!r}: not one of {', '.join(map(repr, WEIGHTS))}; pass "
            "weights='ema' (the EMA weights when the bundle has them) or weights='raw'"
        )
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str) or "\0" in text:
        raise OptionError(
            f"path {path!r}: expected a str or os.PathLike (without NUL) naming a bundle or "
            "run directory"
        )
    for _ in range(_PRUNED_RETRIES - 1):
        bundle = resolve_bundle(path)
        try:
            return _load_bundle_once(bundle, weights=weights, device=device)
        except (CheckpointError, OSError):
            if (bundle / "manifest.json").is_file():  # not vanished: a real fault
                raise
    return _load_bundle_once(resolve_bundle(path), weights=weights, device=device)


def _load_bundle_once(bundle: Path, *, weights: str, device: str | torch.device) -> Bundle:
    """Load the resolved ``bundle``. Only JSON and safetensors are read: no pickle, so an
    untrusted checkpoint cannot run code. Every weight file the manifest names must hold
    exactly the tensors (keys, shapes, dtypes) of the manifest's model (docs/errors.md,
    "Bundles: the manifest is the truth")."""
    dev = check_device(device)
    manifest = read_manifest(bundle)
    where = bundle / "manifest.json"
    files = weight_files(manifest, bundle)
    check_model_fits_weights(manifest, where, files)
    model = build_model_from_manifest(manifest, where)
    for kind, file in files.items():
        if kind == "ema" and weights == "raw":
            continue
        # again against the real model: covers models that cannot be built on meta
        check_tensors(expected_tensors(model, kind), read_header(file), file, where)
        model.load_state_dict(read_safetensors(file), strict=kind == "model")
    model.to(dev)
    model.eval()
    return Bundle(model=model, manifest=manifest, path=bundle)


# ----------------------------------------------------------------------------- compatibility


def check_task_matches(bundle: Bundle, task: Task) -> None:
    """The bundle must have been trained on this task's encoding (version, seq_len, vocab)."""
    _check_task(bundle.manifest, task, bundle.path)


def open_test_split(bundle: Bundle, task: Task, data_dir: Path | None = None) -> Any:
    """The test split to evaluate ``bundle`` on: of ``data_dir``, else of the store it was
    trained on (`trained_store`); checked against the manifest (`check_store_matches`)."""
    from trmkit.data.store import open_store

    if data_dir is not None:
        store = open_store(data_dir, task)
    else:
        store = trained_store(bundle.manifest, bundle.path, task)
    if "test" not in store.splits:
        raise TrmkitError(f"{store.path} has no test split to evaluate on")
    split = store.split("test")
    check_store_matches(bundle.manifest, split.meta, store.path)
    return split


def trained_store(manifest: Manifest, bundle: Path, task: Task) -> Any:
    """The store the bundle at ``bundle`` was trained on, found from ``manifest``'s
    ``dataset.path`` (as written: absolute, or relative to the working directory, then, when
    relative, to each directory above the bundle: the run was started from one of them) and
    checked against the identity the manifest records (`dataset_mismatch`): a store of
    other data at that path is refused, naming both, rather than evaluated on."""
    from trmkit.checkpoint.manifest import dataset_mismatch
    from trmkit.data.store import open_store

    recorded = manifest.dataset.path
    path = Path(recorded).expanduser()
    above = [] if path.is_absolute() else [parent / path for parent in bundle.resolve().parents]
    found = [p for p in (path, *above) if (p / "zarr.json").is_file()]
    if not recorded or not found:
        raise CheckpointError(
            f"the dataset this checkpoint was trained on ({recorded or 'not recorded'}) is "
            f"gone; pass --data DIR (build it with: trmkit build --task {task.name} --out DIR)"
        )
    first_problem = None
    for path in dict.fromkeys(p.resolve() for p in found):
        store = open_store(path, task)
        problem = dataset_mismatch(manifest.dataset, store)
        if problem is None:
            return store
        first_problem = first_problem or (path, problem)
    path, problem = first_problem
    raise CheckpointError(
        f"{path}: not the store {bundle} was trained on ({problem}); pass --data with "
        "the training store, or rebuild it as it was"
    )
