"""`trmkit build` and `trmkit data info|export|import`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import click
import numpy as np

from trmkit import plugins
from trmkit.cli import command_task
from trmkit.errors import ConfigError, UnknownNameError
from trmkit.task import MAX_NUM_AUG


def _parse_options(values: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-o/--option {value!r}: expected KEY=VALUE")
        options[key.strip()] = text
    return options


@click.command("build")
@click.option("--task", "task_name", required=True, help="Task name (see `trmkit tasks`).")
@click.option("--source", help="A source name of the task, or a local file/directory.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Store directory.")
@click.option("--num-aug", type=int, help=f"Augmented variants per puzzle (0 to {MAX_NUM_AUG:,}).")
@click.option("--subsample", type=int, help="Keep N training puzzles.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--strict", is_flag=True, help="Never train on puzzles that have test examples.")
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Source option (repeatable).",
)
@click.option("--force", is_flag=True, help="Replace an existing store (once the new one is done).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def build_cmd(
    task_name: str,
    source: str | None,
    out: Path,
    num_aug: int | None,
    subsample: int | None,
    seed: int,
    strict: bool,
    options: tuple[str, ...],
    force: bool,
    no_progress: bool,
) -> None:
    """Build a task's dataset store: source -> augmenter -> codec -> Zarr."""
    from trmkit.data.build import build_dataset

    task = command_task(task_name)
    summary = build_dataset(
        task,
        out,
        source=source,
        num_aug=num_aug,
        subsample=subsample,
        seed=seed,
        strict=strict,
        options=_parse_options(options),
        force=force,
        progress=not no_progress,
    )
    for line in summary.lines():
        click.echo(line)


@click.group("data")
def data_group() -> None:
    """Inspect dataset stores and move them to and from the official layout."""


def _render_example(store, task_name: str) -> list[str]:
    try:
        task = command_task(task_name)
    except UnknownNameError:
        return [f"(task {task_name!r} is not installed: examples cannot be rendered)"]
    split = store.split(store.splits[0])
    if split.meta.total_examples == 0:
        return []
    inputs, labels = split.row_range(0, 1)
    lines = [f"example 0 of the {split.name} split (group {split.group_names[0]!r}):"]
    try:
        for title, tokens in (("input", inputs[0]), ("output", labels[0])):
            lines.append(f"{title}:")
            lines.extend("  " + row for row in task.render(task.codec.decode(tokens)).splitlines())
    except Exception as exc:  # a plugin's decode/render failing must not hide the metadata
        lines.append(f"(cannot render with task {task_name!r}: {type(exc).__name__}: {exc})")
    return lines


@data_group.command("info")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info_cmd(path: Path, as_json: bool) -> None:
    """Metadata, counts and sizes of a store, and one example rendered as a grid."""
    from trmkit.data.store import open_store

    store = open_store(path)
    splits = {
        split.name: {**attrs.asdict(split.meta), "uncompressed_bytes": split.nbytes}
        for split in map(store.split, store.splits)
    }
    info = {
        "path": str(store.path),
        "attributes": store.attrs,
        "splits": splits,
        "disk_bytes": store.disk_bytes(),
    }
    if as_json:
        click.echo(json.dumps(info, indent=2, default=_json_default))
        return
    a = store.attrs
    click.echo(
        f"store    {store.path}  (format {a.get('trmkit_format')}, "
        f"trmkit {a.get('trmkit_version')})"
    )
    click.echo(f"task     {a.get('task')} version {a.get('task_version')}")
    click.echo(f"source   {a.get('source')} {a.get('source_path') or ''}".rstrip())
    for file, digest in (a.get("source_files") or {}).items():
        click.echo(f"         {file}  sha256 {str(digest)[:16]}")
    click.echo(
        f"build    seed {a.get('seed')}  num_aug {a.get('num_aug')}  subsample "
        f"{a.get('subsample')}  strict {a.get('strict')}  options "
        f"{a.get('options') or {}}"
    )
    click.echo(
        f"tokens   seq_len {a.get('seq_len', '?')}  vocab {a.get('vocab_size')}  "
        f"pad {a.get('pad_id')}  ignore {a.get('ignore_label_id')}  identifiers "
        f"{a.get('num_puzzle_identifiers')} ({a.get('puzzle_ids')})"
    )
    for name, meta in splits.items():
        click.echo(
            f"{name:<8} groups {meta['total_groups']:,}  puzzles {meta['total_puzzles']:,}  "
            f"examples {meta['total_examples']:,}  mean/puzzle "
            f"{meta['mean_puzzle_examples']:.3f}  {meta['uncompressed_bytes'] / 2**20:.1f} MiB "
            f"uncompressed"
        )
    click.echo(f"on disk  {info['disk_bytes'] / 2**20:.1f} MiB")
    for line in _render_example(store, str(a.get("task"))):
        click.echo(line)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@data_group.command("export")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing export.")
def export_cmd(path: Path, out: Path, force: bool) -> None:
    """Write a store in the official layout (dataset.json + all__*.npy + identifiers.json)."""
    from trmkit.data.official import export_official
    from trmkit.data.store import open_store

    task_name = open_store(path).task_name
    installed = True
    try:
        convention = plugins.get_task(task_name).defaults.official_total_puzzles
    except UnknownNameError:
        convention, installed = "puzzles", False
    export_official(path, out, force=force, total_puzzles=convention)
    click.echo(f"exported {path} to {out} (total_puzzles counts {convention})")
    if not installed:
        click.echo(
            f"note: task {task_name!r} is not installed; dataset.json's total_puzzles counts "
            f"puzzles (install the task's plugin to write its official builder's convention)",
            err=True,
        )


@data_group.command("import")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--task", "task_name", required=True, help="The task the dataset encodes.")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing store.")
def import_cmd(src: Path, task_name: str, out: Path, force: bool) -> None:
    """Read a dataset in the official layout into a trmkit store."""
    from trmkit.data.official import import_official

    task = command_task(task_name)
    import_official(src, out, task, force=force)
    click.echo(f"imported {src} into {out}")


COMMANDS = (build_cmd, data_group)
