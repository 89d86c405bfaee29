"""`trmkit checkpoint import / export / info`: official-lineage runs <-> trmkit bundles."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group(name="checkpoint")
def checkpoint_group() -> None:
    """Bring in checkpoints of the official TRM code (and its forks), or write one out."""


@checkpoint_group.command(name="import")
@click.argument("source")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="The trmkit checkpoint bundle to write (a directory).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="The official dataset directory (with train/dataset.json) of the run.",
)
@click.option("--task", "task_name", help="The trmkit task of the data (default: inferred).")
@click.option("--step", type=click.IntRange(min=0), help="Which step_<N> (default: newest).")
@click.option("--force", is_flag=True, help="Replace an existing bundle at --out.")
def import_cmd(
    source: str, out: Path, data: Path | None, task_name: str | None, step: int | None, force: bool
) -> None:
    """Import SOURCE: an official run directory, a step_<N> file, or hf://OWNER/REPO[/DIR]."""
    from trmkit.interop.checkpoints import import_run

    result = import_run(source, out, data=data, task_name=task_name, step=step, force=force)
    click.echo(
        f"imported {result.model_name} step {result.step} ({result.parameters:,} trainable "
        f"parameters{', compiled run' if result.compiled else ''}) as task {result.task!r} "
        f"[{result.task_source}]; dimensions from {result.dims_source}; bundle: {result.bundle}"
    )


@checkpoint_group.command(name="export")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="The official run directory to write (step_<N> + all_config.yaml).",
)
@click.option("--raw", is_flag=True, help="Export the raw weights instead of the EMA weights.")
@click.option(
    "--eager",
    is_flag=True,
    help="Keys without '_orig_mod.' (for pretrain.py with DISABLE_COMPILE=1).",
)
@click.option("--force", is_flag=True, help="Replace an existing run directory at --out.")
def export_cmd(checkpoint: Path, out: Path, raw: bool, eager: bool, force: bool) -> None:
    """Write CHECKPOINT (a trmkit bundle or run) as an official run directory."""
    from trmkit.interop.checkpoints import export_bundle

    path = export_bundle(checkpoint, out, raw=raw, compiled=not eager, force=force)
    click.echo(
        f"exported {checkpoint} to {path} (load it with pretrain.py "
        f"load_checkpoint={path}/step_<N>{' and DISABLE_COMPILE=1' if eager else ''})"
    )


@checkpoint_group.command(name="info")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info_cmd(path: Path, as_json: bool) -> None:
    """What a trmkit bundle or an official run holds: architecture, task, parameters, step."""
    from trmkit.interop.checkpoints import describe

    info = describe(path)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    width = max(len(k) for k in info)
    for key, value in info.items():
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        click.echo(f"{key.replace('_', ' '):<{width}}  {shown}")


COMMANDS = [checkpoint_group]
