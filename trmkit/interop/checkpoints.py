"""`trmkit checkpoint import / export / info`: official runs <-> trmkit checkpoint bundles.

``import_run`` reads an official run (``trmkit.interop.official``), builds the trmkit model
its ``all_config.yaml`` describes for the dataset's dimensions, loads the renamed weights
strictly, and writes a bundle (manifest.json + model.safetensors) that ``trmkit eval``,
``trmkit solve`` and ``trmkit.load`` open like a trained one. ``export_bundle`` goes the
other way. docs/interop.md has the commands and the name map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from trmkit import plugins
from trmkit.checkpoint.bundle import build_model_from_manifest, load_bundle, write_bundle
from trmkit.checkpoint.hub import fetch_hub, is_hub
from trmkit.checkpoint.manifest import DatasetRecord, Manifest, ModelRecord, TaskRecord
from trmkit.errors import CheckpointError, TrmkitError, UnknownNameError
from trmkit.interop import official
from trmkit.task import Task


@attrs.frozen
class ImportResult:
    bundle: Path
    model_name: str
    task: str
    step: int
    parameters: int
    dims_source: str
    task_source: str
    compiled: bool


def infer_task(seq_len: int, vocab_size: int) -> tuple[Task, str]:
    """The installed task with this encoding, when exactly one plugin's primary task fits."""
    fits = [
        e
        for e in plugins.task_entries().values()
        if e.task.codec.seq_len == seq_len and e.task.codec.vocab_size == vocab_size
    ]
    if len(fits) == 1:
        how = f"inferred: the only installed task with seq_len {seq_len} and vocab {vocab_size}"
        return fits[0].task, how
    # a plugin's primary task is the one aliased by the plugin's own name (sudoku, maze)
    primary = [e for e in fits if e.plugin in e.aliases]
    if len(primary) == 1:
        others = ", ".join(sorted(e.task.name for e in fits if e is not primary[0]))
        return primary[0].task, (
            f"inferred: plugin {primary[0].plugin!r}'s primary task for "
            f"seq_len {seq_len}, vocab {vocab_size} (same encoding: "
            f"{others})"
        )
    if not fits:
        raise CheckpointError(
            f"no installed task encodes seq_len {seq_len} with vocab "
            f"{vocab_size}; install its plugin and pass --task NAME"
        )
    names = ", ".join(sorted(e.task.name for e in fits))
    raise CheckpointError(
        f"several tasks encode seq_len {seq_len} with vocab {vocab_size} "
        f"({names}); pass --task NAME"
    )


def _resolve_task(name: str | None, dims: official.Dims) -> tuple[Task, str]:
    if name is None:
        return infer_task(dims.seq_len, dims.vocab_size)
    task = plugins.get_task(name)
    codec = task.codec
    if (codec.seq_len, codec.vocab_size) != (dims.seq_len, dims.vocab_size):
        raise CheckpointError(
            f"--task {name}: encodes seq_len {codec.seq_len} with vocab {codec.vocab_size}, "
            f"the checkpoint's data has {dims.seq_len} and {dims.vocab_size} ({dims.source})"
        )
    return task, "--task"


def import_run(
    source: str | Path,
    out: Path,
    *,
    data: Path | None = None,
    task_name: str | None = None,
    step: int | None = None,
    force: bool = False,
) -> ImportResult:
    """Turn an official run directory or step file into a trmkit bundle at ``out``."""
    from trmkit.models import count_parameters, make_config

    path = fetch_hub(source) if is_hub(source) else Path(source).expanduser()
    out = Path(out).expanduser()
    official.check_replaceable(out, force, "manifest.json", "a checkpoint bundle")
    run = official.read_run(path, step)
    task_seq = plugins.get_task(task_name).codec.seq_len if task_name else None
    dims = official.resolve_dims(run, data, task_seq)
    task, task_source = _resolve_task(task_name, dims)
    fields = official.model_fields(run, dims)
    where = run.weights_file.parent / official.CONFIG_FILE
    try:
        config = make_config(run.model_name, fields)
    except TrmkitError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    manifest = _manifest(run, config, task, dims, path, data)
    # the config and dataset.json size the model: bound its compute and fit the step file's
    # tensors to a model on the meta device before any memory is allocated (docs/errors.md,
    # "Bundles: the manifest is the truth"); mapped again below for the real model, whose
    # own values fill what the official file lacks (the single-z inits)
    official.to_trmkit_state(run, build_model_from_manifest(manifest, where, device="meta"))
    model = build_model_from_manifest(manifest, where)
    state = official.to_trmkit_state(run, model)
    model.load_state_dict(state, strict=True)
    write_bundle(out, manifest, model.state_dict(), force=True)  # replaceable: checked above
    return ImportResult(
        bundle=out,
        model_name=run.model_name,
        task=task.name,
        step=run.step,
        parameters=count_parameters(model),
        dims_source=dims.source,
        task_source=task_source,
        compiled=run.compiled,
    )


def _manifest(
    run: official.OfficialRun,
    config: Any,
    task: Task,
    dims: official.Dims,
    source: Path,
    data: Path | None,
) -> Manifest:
    info = dims.info
    meta: dict[str, Any] = {
        "pad_id": int(info.get("pad_id", task.codec.pad_id)),
        "ignore_label_id": int(info.get("ignore_label_id", task.codec.ignore_label_id)),
        "official_path": str(Path(data).resolve()) if data is not None else "",
    }
    for key in ("total_groups", "mean_puzzle_examples", "total_puzzles"):
        if key in info:
            meta[key] = info[key]
    cfg = run.config
    recipe: dict[str, Any] = {"optim": {}, "train": {}}
    for key, (section, ours, _, _) in official.RECIPE_KEYS.items():
        recipe[section][ours] = cfg.get(key)
    recipe["official_config"] = json.loads(json.dumps(cfg, default=str))
    provenance = {
        "source": "official",
        "imported_from": str(source),
        "weights_file": run.weights_file.name,
        "arch_name": str(run.arch.get("name")),
        "compiled": run.compiled,
        "dimensions_from": dims.source,
        # the official step file holds the EMA copy when ema is on: these ARE those weights
        "official_ema": bool(cfg.get("ema", False)),
    }
    return Manifest(
        step=run.step,
        model=ModelRecord(name=run.model_name, config=attrs.asdict(config)),
        task=TaskRecord(name=task.name, version=task.version),
        dataset=DatasetRecord(
            seq_len=dims.seq_len,
            vocab_size=dims.vocab_size,
            num_puzzle_identifiers=dims.num_puzzle_identifiers,
            blank_identifier_id=int(info.get("blank_identifier_id", 0)),
            path="",
            store=provenance,
            meta=meta,
        ),
        recipe=recipe,
    )


def export_bundle(
    checkpoint: Path, out: Path, *, raw: bool = False, compiled: bool = True, force: bool = False
) -> Path:
    """Write a trmkit bundle as an official run directory (step_<N> + all_config.yaml)."""
    bundle = load_bundle(checkpoint, weights="raw" if raw else "ema")
    manifest = bundle.manifest
    name = manifest.model.name
    state = official.to_official_state(name, bundle.model.state_dict(), compiled=compiled)
    paths = [p for p in (manifest.dataset.meta.get("official_path"),) if p]
    config = official.official_config(
        name, manifest.model.config, manifest.recipe, paths, bundle.path / "manifest.json"
    )
    return official.write_run(out, manifest.step, state, config, force=force)


def describe(path: str | Path) -> dict[str, Any]:
    """What a trmkit bundle or an official run holds, for ``trmkit checkpoint info``; ``path``
    may be ``hf://OWNER/REPO[@REVISION][/PATH]`` (`trmkit.checkpoint.hub`)."""
    from trmkit.models import count_parameters

    p = fetch_hub(path) if is_hub(path) else Path(path).expanduser()
    is_official = p.is_file() or (p.is_dir() and (p / official.CONFIG_FILE).is_file())
    if not is_official:
        bundle = load_bundle(p)
        manifest = bundle.manifest
        return {
            "kind": "trmkit checkpoint bundle",
            "path": str(bundle.path),
            "architecture": manifest.model.name,
            "task": manifest.task.name,
            "step": manifest.step,
            "trainable_parameters": count_parameters(bundle.model),
            "puzzle_identifiers": manifest.dataset.num_puzzle_identifiers,
            "seq_len": manifest.dataset.seq_len,
            "vocab_size": manifest.dataset.vocab_size,
            "imported_from": manifest.dataset.store.get("imported_from"),
        }
    run = official.read_run(p)
    try:
        dims = official.resolve_dims(run, None, None)
        dims_text: dict[str, Any] = {
            "seq_len": dims.seq_len,
            "vocab_size": dims.vocab_size,
            "puzzle_identifiers": dims.num_puzzle_identifiers,
            "dimensions_from": dims.source,
        }
        try:
            task, how = infer_task(dims.seq_len, dims.vocab_size)
            dims_text["task"] = f"{task.name} ({how})"
        except (CheckpointError, UnknownNameError) as exc:
            dims_text["task"] = f"unknown ({exc})"
    except CheckpointError as exc:
        dims_text = {"dimensions": f"unknown ({exc})"}
    return {
        "kind": "official run" + (" (torch.compile'd)" if run.compiled else ""),
        "path": str(run.weights_file),
        "arch_name": run.arch.get("name"),
        "architecture": run.model_name,
        "step": run.step,
        "trainable_parameters": official.parameter_count(run.tensors),
        **dims_text,
    }
