"""Checkpoints of the official TRM code (and forks sharing its ``pretrain.py``), both ways.

An official run directory holds ``all_config.yaml`` (the whole training config) and
``step_<N>`` files, each ``torch.save(model.state_dict())`` of the loss head around the
model: a plain dict of tensors under ``model.inner.`` (``_orig_mod.model.inner.`` when the
run was torch.compiled, the official default). Shapes say nothing about ``seq_len`` for
RoPE models; vocab, seq_len and the puzzle-id count live in the dataset's ``dataset.json``.

This module is the one place trmkit reads a torch pickle, and it reads it with
``torch.load(..., weights_only=True)``: only tensors and plain containers are unpickled,
never code. docs/interop.md lists what maps to what.
"""

from __future__ import annotations

import functools
import math
import os
import pickle
import re
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from trmkit import atomic
from trmkit.errors import CheckpointError, first_line
from trmkit.models.core import OfficialLayout, OfficialLineage
from trmkit.models.protocol import RecursiveModel
from trmkit.oserrors import check_writable_dir, writing
from trmkit.textio import read_json, read_text

CONFIG_FILE = "all_config.yaml"
_STEP_FILE = re.compile(r"^step_(\d+)$")
_INNER = "model.inner."
_COMPILED = "_orig_mod."

# tensors every official ACT model shares: official name (after model.inner.) -> trmkit name;
# the rest of each architecture's names is its config's `OfficialLayout` (trmkit.models.core)
_SHARED = {
    "embed_tokens.embedding_weight": "core.encoder.embed_tokens.weight",
    "embed_pos.embedding_weight": "core.encoder.embed_pos.weight",
    "puzzle_emb.weights": "core.encoder.puzzle_emb.weights",
    "lm_head.weight": "core.heads.lm_head.weight",
    "q_head.weight": "core.heads.q_head.weight",
    "q_head.bias": "core.heads.q_head.bias",
}


# arch fields every official ACT model shares: name -> (type, default; None: required); the
# rest is the layout's `fields`, and puzzle_emb_ndim and pos_encodings are read by hand
_ARCH: dict[str, tuple[type, Any]] = {
    "hidden_size": (int, None),
    "num_heads": (int, None),
    "expansion": (float, None),
    "rope_theta": (float, 10000.0),
    "rms_norm_eps": (float, 1e-5),
    "halt_max_steps": (int, None),
    "halt_exploration_prob": (float, None),
}

RECIPE_KEYS: dict[str, tuple[str, str, type, Any]] = {
    "global_batch_size": ("optim", "global_batch_size", int, 768),
    "lr": ("optim", "lr", float, 1e-4),
    "lr_min_ratio": ("optim", "lr_min_ratio", float, 1.0),
    "lr_warmup_steps": ("optim", "warmup_steps", int, 2000),
    "weight_decay": ("optim", "weight_decay", float, 1.0),
    "beta1": ("optim", "beta1", float, 0.9),
    "beta2": ("optim", "beta2", float, 0.95),
    "puzzle_emb_lr": ("optim", "puzzle_emb_lr", float, 1e-4),
    "puzzle_emb_weight_decay": ("optim", "puzzle_emb_weight_decay", float, 1.0),
    "ema": ("optim", "ema", bool, True),
    "ema_rate": ("optim", "ema_rate", float, 0.999),
    "epochs": ("train", "epochs", int, 50000),
    "eval_interval": ("train", "eval_interval", int, 5000),
    "seed": ("train", "seed", int, 0),
}
"""pretrain.py's training keys -> (trmkit recipe section, key, type, pretrain.py's default):
an import records them in the bundle's recipe, an export writes them back."""


def layouts() -> dict[str, OfficialLayout]:
    """trmkit model name -> its official layout, for every registered architecture whose
    config class declares one itself (``official`` in its own class body: a method that
    subclasses TRM's config, such as EqR, does not inherit TRM's official checkpoints)."""
    from trmkit import plugins

    return {
        name: layout
        for name, spec in plugins.model_specs().items()
        if isinstance(spec.config_cls, OfficialLineage)
        and isinstance(layout := vars(spec.config_cls).get("official"), OfficialLayout)
    }


def layout_of(model_name: str) -> OfficialLayout:
    found = layouts()
    if model_name not in found:
        raise CheckpointError(
            f"model {model_name!r} has no counterpart in the official code "
            f"(exportable: {', '.join(sorted(found))})"
        )
    return found[model_name]


def _mapped(table: Mapping[str, str], key: str) -> str | None:
    """``key`` renamed by a name table (exact names, or prefixes ending in ".")."""
    for source, target in table.items():
        if key == source:
            return target
        if source.endswith(".") and key.startswith(source):
            return target + key[len(source) :]
    return None


@attrs.frozen
class OfficialRun:
    """What an official run directory (or one of its step files) holds, read and checked."""

    weights_file: Path
    step: int
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    """keys without the ``_orig_mod.`` and ``model.inner.`` prefixes."""
    compiled: bool

    @property
    def arch(self) -> dict[str, Any]:
        return self.config["arch"]

    @property
    def model_name(self) -> str:
        return model_name_for(str(self.arch.get("name", "")), self.weights_file.parent)


@attrs.frozen
class Dims:
    """The dataset dimensions a model is built for, and where they were read."""

    seq_len: int
    vocab_size: int
    num_puzzle_identifiers: int
    source: str
    info: dict[str, Any] = attrs.field(factory=dict)
    """the dataset.json read (empty when the dimensions came from elsewhere)."""


# ----------------------------------------------------------------------------- reading


def find_run(path: Path, step: int | None = None) -> tuple[Path, Path]:
    """(run directory, weights file) for a run directory or a ``step_<N>`` file."""
    path = Path(path).expanduser()
    atomic.try_recover_dir(path)  # an export killed between its two renames
    if not path.exists():
        raise CheckpointError(
            f"{path}: no such file or directory (give an official run "
            f"directory with {CONFIG_FILE} and step_<N> files, or a step file)"
        )
    if path.is_file():
        if step is not None:
            raise CheckpointError(f"{path}: --step applies to a run directory, not a step file")
        return path.parent, path
    steps = {
        int(m.group(1)): child
        for child in path.iterdir()
        if child.is_file() and (m := _STEP_FILE.match(child.name))
    }
    if not steps:
        raise CheckpointError(
            f"{path}: holds no step_<N> weights file (not an official run directory?)"
        )
    if step is None or step in steps:
        return path, steps[max(steps) if step is None else step]
    have = ", ".join(str(n) for n in sorted(steps))
    raise CheckpointError(f"{path}: no step_{step} (steps present: {have})")


_ZIP_METHODS = {
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
"""the names of the zip compression methods a step file must not use (`read_weights`)."""

MAX_CONFIG_BYTES = 16 << 20
"""an all_config.yaml or dataset.json larger than 16 MiB is refused unread."""
MAX_YAML_ALIASES = 100
"""aliases (``*name``) an all_config.yaml may use (pretrain.py writes none)."""
MAX_YAML_NODES = 1_000_000
"""nodes the config may hold once every alias is expanded (an alias bomb stops here)."""


class YamlRefused(ValueError):
    """A YAML structure the bounded loader will not build (the message says why)."""


@functools.cache
def bounded_yaml_loader() -> type:
    """A `yaml.SafeLoader` that refuses more than `MAX_YAML_ALIASES` aliases, an alias to a
    node that contains it (a recursive structure) and a document whose aliases expand to more
    than `MAX_YAML_NODES` nodes (docs/errors.md, "Resources: bounded before any promise")."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.aliases = 0
            self.open_anchors: set[str] = set()
            self.weights: dict[int, int] = {}

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            anchor = event.anchor
            if isinstance(event, yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    raise YamlRefused(f"more than {MAX_YAML_ALIASES} YAML aliases (*name)")
                if anchor in self.open_anchors:
                    raise YamlRefused(
                        f"YAML alias *{anchor} refers to a node that contains it "
                        "(a recursive structure)"
                    )
                return super().compose_node(parent, index)
            if anchor is not None:
                self.open_anchors.add(anchor)
            try:
                node = super().compose_node(parent, index)
            finally:
                if anchor is not None:
                    self.open_anchors.discard(anchor)
            self.weigh(node)
            return node

        def weigh(self, node: Any) -> None:
            """Nodes under ``node`` with every alias expanded (children weighed first)."""
            if isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            elif isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            else:
                children = []
            weight = 1 + sum(self.weights.get(id(child), 1) for child in children)
            if weight > MAX_YAML_NODES:
                raise YamlRefused(
                    f"YAML aliases expand to more than {MAX_YAML_NODES:,} nodes (an alias bomb)"
                )
            self.weights[id(node)] = weight

    return BoundedLoader


def read_config(run_dir: Path) -> dict[str, Any]:
    """``all_config.yaml`` as a dict, with ``arch`` and ``arch.name`` checked."""
    import yaml

    file = run_dir / CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(
            f"{file}: missing; an official run directory has the "
            f"{CONFIG_FILE} that pretrain.py writes beside its step files"
        )
    text = read_text(
        file, max_bytes=MAX_CONFIG_BYTES, error=CheckpointError, what="training config"
    )
    try:
        config = yaml.load(text, Loader=bounded_yaml_loader())  # noqa: S506 - a SafeLoader
    except RecursionError:
        raise CheckpointError(f"{file}: not valid YAML (nested too deeply)") from None
    except YamlRefused as exc:
        raise CheckpointError(
            f"{file}: {exc}; an official training config is a plain mapping without them"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise CheckpointError(f"{file}: not valid YAML{where}") from None
    if not isinstance(config, dict) or not isinstance(config.get("arch"), dict):
        raise CheckpointError(f"{file}: has no 'arch' section (not an official training config)")
    if not isinstance(config["arch"].get("name"), str):
        example = layouts()["trm"].arch if "trm" in layouts() else "module@Class"
        raise CheckpointError(f"{file}: arch.name is missing (e.g. {example!r})")
    return config


def model_name_for(arch_name: str, where: Path) -> str:
    module = arch_name.split("@", 1)[0].rsplit(".", 1)[-1]
    found = layouts()
    for name, layout in found.items():
        if layout.module == module:
            return name
    known = ", ".join(sorted(layout.arch for layout in found.values()))
    raise CheckpointError(
        f"{where / CONFIG_FILE}: arch.name {arch_name!r} is not an "
        f"architecture trmkit can import (known: {known})"
    )


def read_weights(file: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """The tensors of a step file (prefixes stripped) and whether the run was compiled.

    ``weights_only=True``: a file that holds anything but tensors and plain containers is
    refused by torch's restricted unpickler before any object is built.
    """
    if file.stat().st_size == 0:
        raise CheckpointError(f"{file}: empty file (a truncated or failed save)")
    with open(file, "rb") as handle:
        head = handle.read(2)
    if head != b"PK" and head[:1] != b"\x80":  # torch's zip format, or a legacy pickle
        raise CheckpointError(
            f"{file}: not a torch checkpoint (neither torch's zip format nor "
            f"a pickle: corrupt, or another kind of file)"
        )
    if head == b"PK":  # torch does not check the zip records' CRCs; a damaged tensor loads
        try:
            with zipfile.ZipFile(file) as archive:
                # torch.save stores its records; torch.load would inflate a compressed one
                # into memory whatever its size (a 64 KiB file can hold a 64 MiB record), so
                # only stored records are read: memory stays within the file's size
                packed = [i for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED]
                bad = None if packed else archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CheckpointError(
                f"{file}: not a readable torch checkpoint (truncated or corrupt? {exc})"
            ) from None
        if packed:
            method = _ZIP_METHODS.get(packed[0].compress_type, f"method {packed[0].compress_type}")
            raise CheckpointError(
                f"{file}: record {packed[0].filename!r} is compressed ({method}, "
                f"{packed[0].file_size} bytes once inflated); torch.save writes records "
                "uncompressed (a zip bomb?): save the checkpoint again with torch.save"
            )
        if bad is not None:
            raise CheckpointError(
                f"{file}: record {bad!r} fails its CRC check (the file is "
                f"corrupt; copy or download it again)"
            )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        culprit = [line for line in lines if "Unsupported global" in line]
        if culprit:
            raise CheckpointError(
                f"{file}: holds objects other than tensors, refused (trmkit reads official "
                f"checkpoints with weights_only=True and never runs pickled code): "
                f"{culprit[0][:160]}"
            ) from None
        if any("Unsupported operand" in line for line in lines):
            raise CheckpointError(
                f"{file}: a pickle that is not a torch.save file of tensors, refused (trmkit "
                f"reads official checkpoints with weights_only=True and never runs pickled code)"
            ) from None
        reason = next(
            (line for line in lines if "load key" in line or "pickle" in line.lower()),
            lines[0] if lines else type(exc).__name__,
        )
        raise CheckpointError(
            f"{file}: not a readable torch checkpoint (truncated or corrupt? {reason[:160]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"{file}: not a readable torch checkpoint (truncated or corrupt? "
            f"{first_line(exc, 160)})"
        ) from None
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{file}: holds a {type(state).__name__}, expected the dict of "
            f"tensors that pretrain.py saves"
        )
    compiled = bool(state) and all(str(k).startswith(_COMPILED) for k in state)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{file}: entry {key!r} is a {type(value).__name__}, not a "
                f"tensor (expected model.state_dict())"
            )
        name = key[len(_COMPILED) :] if compiled else key
        if not name.startswith(_INNER):
            raise CheckpointError(
                f"{file}: tensor {key!r} is not under '{_INNER}' (not a "
                f"checkpoint of the official ACT model)"
            )
        tensors[name[len(_INNER) :]] = value
    if not tensors:
        raise CheckpointError(f"{file}: holds no tensors")
    return tensors, compiled


def read_run(path: Path, step: int | None = None) -> OfficialRun:
    run_dir, file = find_run(path, step)
    config = read_config(run_dir)
    model_name_for(str(config["arch"]["name"]), run_dir)  # refuse an unknown arch early
    tensors, compiled = read_weights(file)
    match = _STEP_FILE.match(file.name)
    number = int(match.group(1)) if match else 0
    return OfficialRun(
        weights_file=file, step=number, config=config, tensors=tensors, compiled=compiled
    )


# ---------------------------------------------------------------------- dimensions


_DIMENSIONS = ("seq_len", "vocab_size", "num_puzzle_identifiers")


def _dataset_dims(folder: Path, label: str) -> Dims | None:
    """The dimensions in the first of ``folder``'s train/, root and test/ dataset.json, or
    None when it has none; ``label`` opens `Dims.source`."""
    found = [folder / sub / "dataset.json" for sub in ("train", ".", "test")]
    candidate = next((file for file in found if file.is_file()), None)
    if candidate is None:
        return None
    try:
        info = read_json(
            candidate, max_bytes=MAX_CONFIG_BYTES, error=CheckpointError, what="dataset.json"
        )
    except CheckpointError as exc:
        detail = str(exc).removeprefix(f"{candidate}: ")
        raise CheckpointError(f"{candidate}: unreadable JSON ({detail})") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{candidate}: expected a JSON object")
    for key in _DIMENSIONS:
        value = info.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CheckpointError(
                f"{candidate}: field {key!r} must be a positive integer, not {value!r}"
            )
    dims = {key: info[key] for key in _DIMENSIONS}
    return Dims(**dims, source=f"{label} {candidate}", info=info)


def _prefix_len(arch: Mapping[str, Any], model_name: str) -> int:
    """The official prefix: puzzle_emb_len where the architecture has that field, else (and
    when 0) ceil(ndim / D), HRM's rule."""
    ndim = int(arch.get("puzzle_emb_ndim", 0) or 0)
    hidden = int(arch["hidden_size"])
    if ndim <= 0:
        return 0
    row = next((f for f in layout_of(model_name).fields if f.ours == "puzzle_emb_len"), None)
    length = 0 if row is None else int(arch.get(row.official, row.default))
    return length if length > 0 else -(ndim // -hidden)


def resolve_dims(run: OfficialRun, data: Path | None, task_seq_len: int | None) -> Dims:
    """Dimensions from --data, else the config's data_paths, else the tensors (+ the task)."""
    if data is not None:
        dims = _dataset_dims(Path(data).expanduser(), "--data")
        if dims is None:
            raise CheckpointError(
                f"{data}: no train/dataset.json or dataset.json (give the "
                f"official dataset directory the run was trained on)"
            )
        return dims
    run_dir = run.weights_file.parent
    paths = run.config.get("data_paths") or []
    if isinstance(paths, str):
        paths = [paths]
    for entry in paths if isinstance(paths, list) else []:
        for base in (run_dir, Path.cwd()):
            folder = (base / str(entry)).expanduser()
            found = _dataset_dims(folder, "data_paths") if folder.is_dir() else None
            if found is not None:
                return found
    tensors, arch = run.tensors, run.arch
    embed = tensors.get("embed_tokens.embedding_weight")
    if embed is None or embed.ndim != 2:
        raise CheckpointError(
            f"{run.weights_file}: no embed_tokens.embedding_weight [vocab, "
            f"D] tensor; cannot tell the vocabulary size"
        )
    vocab = int(embed.shape[0])
    table = tensors.get("puzzle_emb.weights")
    num_ids = int(table.shape[0]) if table is not None and table.ndim == 2 else 1
    total = None
    for key, value in tensors.items():
        if key.endswith("mlp_t.gate_up_proj.weight") and value.ndim == 2:
            total = int(value.shape[1])
            break
    pos = tensors.get("embed_pos.embedding_weight")
    if total is None and pos is not None and pos.ndim == 2:
        total = int(pos.shape[0])
    if total is not None:
        seq_len = total - _prefix_len(arch, run.model_name)
        source = "the tensor shapes (no dataset.json found)"
    elif task_seq_len is not None:
        seq_len = task_seq_len
        source = "the tensor shapes and --task's seq_len (no dataset.json found)"
    else:
        raise CheckpointError(
            f"{run.weights_file}: the weights do not fix seq_len (RoPE model) and no "
            f"dataset.json was found; pass --data DATASET_DIR or --task NAME"
        )
    if seq_len < 1:
        raise CheckpointError(f"{run.weights_file}: the tensor shapes give seq_len {seq_len}")
    return Dims(seq_len=seq_len, vocab_size=vocab, num_puzzle_identifiers=num_ids, source=source)


# ----------------------------------------------------------------------- model config


def _arch_value(arch: Mapping[str, Any], key: str, default: Any, where: Path) -> Any:
    """``arch[key]``, else ``default``; a key without a default that is absent is one line."""
    value = arch.get(key, default)
    if value is None and key not in arch:
        raise CheckpointError(f"{where}: arch.{key} is missing")
    return value


def model_fields(run: OfficialRun, dims: Dims) -> dict[str, Any]:
    """trmkit config fields of the model an official config describes."""
    arch, where = run.arch, run.weights_file.parent / CONFIG_FILE
    raw_loss = arch.get("loss")
    loss = raw_loss if isinstance(raw_loss, dict) else {}
    pos = str(arch.get("pos_encodings", "rope"))
    try:
        fields: dict[str, Any] = {
            "seq_len": dims.seq_len,
            "vocab_size": dims.vocab_size,
            "num_puzzle_identifiers": dims.num_puzzle_identifiers,
            "batch_size": int(run.config.get("global_batch_size", 768)),
            **{
                k: kind(_arch_value(arch, k, default, where))
                for k, (kind, default) in _ARCH.items()
            },
            "puzzle_emb_ndim": int(arch.get("puzzle_emb_ndim", 0) or 0),
            "pos_encodings": pos if pos in ("rope", "learned") else "none",
            "loss_type": str(loss.get("loss_type", "stablemax_cross_entropy")),
        }
        layout = layout_of(run.model_name)
        for row in layout.fields:
            if row.ours is not None:
                fields[row.ours] = row.read(_arch_value(arch, row.official, row.default, where))
        fields.update(layout.fixed)
    except (TypeError, ValueError, OverflowError) as exc:  # int(1e400): OverflowError
        raise CheckpointError(f"{where}: an arch field has the wrong type ({exc})") from None
    return fields


# ------------------------------------------------------------------------- mapping


def to_trmkit_state(run: OfficialRun, model: RecursiveModel) -> dict[str, torch.Tensor]:
    """The official tensors renamed (and rows stacked, e.g. the multi-z inits) for ``model``."""
    name, file = run.model_name, run.weights_file
    layout = layout_of(name)
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    rows: dict[str, dict[int, torch.Tensor]] = {ours: {} for ours in layout.rows}
    patterns = {
        ours: re.compile(re.escape(pattern).replace(r"\{\}", r"(\d+)") + "$")
        for ours, pattern in layout.rows.items()
    }
    for key, tensor in run.tensors.items():
        target = _mapped(_SHARED, key) or _mapped(layout.tensors, key)
        if target is None:
            row = next(((o, m) for o, p in patterns.items() if (m := p.match(key))), None)
            if row is not None:
                rows[row[0]][int(row[1].group(1))] = tensor
                continue
        if target is None or target not in own:
            raise CheckpointError(
                f"{file}: tensor {key!r} has no place in trmkit's {name!r} "
                f"model built from {CONFIG_FILE}"
            )
        out[target] = tensor
    for ours, found in rows.items():
        want, pattern = own[ours].shape[0], layout.rows[ours]
        if sorted(found) != list(range(1, want + 1)):
            raise CheckpointError(
                f"{file}: expected {pattern.format(1)}..{pattern.format(want)}, found "
                f"{', '.join(pattern.format(i) for i in sorted(found)) or 'none'}"
            )
        out[ours] = torch.stack([found[i] for i in range(1, want + 1)])
    missing = sorted(set(own) - set(out) - layout.unused)
    if missing:
        raise CheckpointError(
            f"{file}: lacks {missing[0]!r} (official name "
            f"{official_name(layout, missing[0])!r}) that the {CONFIG_FILE} "
            f"config's model needs"
        )
    for key in layout.unused:
        out[key] = own[key]
    for key, tensor in out.items():
        if tuple(tensor.shape) != tuple(own[key].shape):
            raise CheckpointError(
                f"{file}: tensor {official_name(layout, key)!r} has shape "
                f"{tuple(tensor.shape)}, but the model of {CONFIG_FILE} (and the dataset "
                f"dimensions) needs {tuple(own[key].shape)}"
            )
        if not tensor.is_floating_point():
            raise CheckpointError(
                f"{file}: tensor {official_name(layout, key)!r} is "
                f"{tensor.dtype}, expected floating point"
            )
        out[key] = tensor.to(own[key].dtype).contiguous()
    return out


def official_name(layout: OfficialLayout, key: str) -> str:
    """The official state-dict name (after ``model.inner.``) of trmkit tensor ``key``: the
    layout's tables read backwards (``key`` itself when it has none)."""
    inverse = {ours: official for official, ours in (*_SHARED.items(), *layout.tensors.items())}
    return _mapped(inverse, key) or layout.rows.get(key, "").format("<i>") or key


def to_official_state(
    model_name: str, state: Mapping[str, torch.Tensor], *, compiled: bool
) -> dict[str, torch.Tensor]:
    """trmkit weights as the official model's state dict (prefix ``_orig_mod.`` if compiled)."""
    layout = layout_of(model_name)
    prefix = (_COMPILED if compiled else "") + _INNER
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key in layout.unused:
            continue
        if key in layout.rows:
            for i, row in enumerate(tensor, start=1):
                out[prefix + layout.rows[key].format(i)] = row.clone()
            continue
        official = official_name(layout, key)
        if official == key:
            raise CheckpointError(f"tensor {key!r} of model {model_name!r} has no official name")
        out[prefix + official] = tensor.detach().cpu().contiguous()
    return out


def official_config(
    model_name: str,
    fields: Mapping[str, Any],
    recipe: Mapping[str, Any],
    data_paths: list[str],
    where: Path | str = "manifest.json",
) -> dict[str, Any]:
    """An ``all_config.yaml`` for trmkit model config ``fields`` (pretrain.py's schema);
    ``recipe``'s training keys (`RECIPE_KEYS`) typed, a damaged one a CheckpointError
    naming ``where``."""
    layout = layout_of(model_name)
    f = dict(fields)
    arch: dict[str, Any] = {
        "name": layout.arch,
        "loss": {"name": "losses@ACTLossHead", "loss_type": f["loss_type"]},
        **{key: f[key] for key in (*_ARCH, "puzzle_emb_ndim", "pos_encodings")},
        "forward_dtype": "bfloat16"
        if f.get("forward_dtype", "auto") == "auto"
        else f["forward_dtype"],
    }
    try:
        for key, value in layout.fixed.items():
            if f.get(key, value) != value:
                raise ValueError(f"model.{key} {f[key]!r}: the official code has only {value!r}")
        for row in layout.fields:
            arch[row.official] = row.default if row.ours is None else row.write(f[row.ours])
    except ValueError as exc:
        raise CheckpointError(f"{exc}; model {model_name!r} cannot be exported") from None
    sections: dict[str, dict[str, Any]] = {
        s: recipe[s] if isinstance(recipe.get(s), dict) else {} for s in ("optim", "train")
    }
    sections["optim"] = {"global_batch_size": f.get("batch_size", 768), **sections["optim"]}
    training: dict[str, Any] = {}
    for key, (section, ours, kind, default) in RECIPE_KEYS.items():
        # None: an imported run whose all_config.yaml left the key out (pretrain.py's default)
        value = sections[section].get(ours)
        value = default if value is None else value
        if not isinstance(value, (bool, int, float)) or isinstance(value, bool) != (kind is bool):
            raise CheckpointError(
                f"{where}: field recipe.{section}.{ours} is {value!r:.40}, expected "
                f"{'true or false' if kind is bool else 'a number'}; the manifest's recipe is "
                "damaged or was edited (delete the field to export pretrain.py's default)"
            )
        training[key] = kind(value)
    return {
        "arch": arch,
        "data_paths": data_paths,
        "data_paths_test": [],
        "evaluators": [],
        **training,
        "checkpoint_every_eval": True,
        "load_checkpoint": None,
        "freeze_weights": False,
    }


def check_replaceable(out: Path, force: bool, marker: str, what: str) -> None:
    """``out`` may be written: absent, or with ``force`` an empty directory or one holding
    ``marker`` (it is ``what``); never the user's other files."""
    if out.exists():
        if not force:
            raise CheckpointError(f"{out} already exists; pass --force to replace it")
        if not out.is_dir() or (any(out.iterdir()) and not (out / marker).is_file()):
            raise CheckpointError(
                f"{out} exists and is not {what}; refusing to replace it (choose another --out)"
            )


def write_run(
    out: Path,
    step: int,
    state: Mapping[str, torch.Tensor],
    config: dict[str, Any],
    *,
    force: bool = False,
) -> Path:
    """Write ``out/step_<step>`` and ``out/all_config.yaml`` atomically (temp dir + rename)."""
    import yaml

    out = Path(out).expanduser()
    check_replaceable(out, force, CONFIG_FILE, "an official run directory")
    check_writable_dir(out.parent, "directory of the exported run")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with writing(out, "exported run"):
            tmp.mkdir()
            # a Python file object, so that a full disk surfaces as the file's OSError
            # (torch's own writer reports it as an "unexpected pos" RuntimeError)
            with open(tmp / f"step_{step}", "wb") as fh:
                torch.save(dict(state), fh)
                fh.flush()
                os.fsync(fh.fileno())
            (tmp / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=True), encoding="utf-8")
            atomic.replace_dir(tmp, out)  # fsynced; a kill between renames is recovered
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def parameter_count(tensors: Mapping[str, torch.Tensor]) -> int:
    """Trainable parameters of an official state dict (buffers excluded, as the official
    ``num_params``: the puzzle table and the init latents are buffers)."""
    return sum(
        int(math.prod(t.shape))
        for k, t in tensors.items()
        if not (k.startswith("puzzle_emb.") or k.endswith("_init"))
    )
