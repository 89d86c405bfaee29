"""`trmkit checkpoint import / export / info`: official-lineage runs <-> trmkit bundles;
`trmkit push`: a run's bundle and its model card to the Hugging Face hub."""

from __future__ import annotations

import json
from pathlib import Path

import click

CHECKPOINT = click.Path()
"""The type of every checkpoint argument (eval, solve, adapt, checkpoint export/info): the
text as given, so ``hf://OWNER/REPO`` reaches `trmkit.checkpoint.resolve_bundle` whole
(``path_type=Path`` would fold it into ``hf:/OWNER/REPO``)."""


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
@click.argument("checkpoint", type=CHECKPOINT)
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
def export_cmd(checkpoint: str, out: Path, raw: bool, eager: bool, force: bool) -> None:
    """Write CHECKPOINT (a trmkit bundle or run) as an official run directory."""
    from trmkit.interop.checkpoints import export_bundle

    path = export_bundle(checkpoint, out, raw=raw, compiled=not eager, force=force)
    click.echo(
        f"exported {checkpoint} to {path} (load it with pretrain.py "
        f"load_checkpoint={path}/step_<N>{' and DISABLE_COMPILE=1' if eager else ''})"
    )


@checkpoint_group.command(name="info")
@click.argument("path", type=CHECKPOINT)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info_cmd(path: str, as_json: bool) -> None:
    """What a trmkit bundle, an official run or hf://OWNER/REPO[@REV] holds: architecture,
    task, parameters, step."""
    from trmkit.interop.checkpoints import describe

    info = describe(path)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    width = max(len(k) for k in info)
    for key, value in info.items():
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        click.echo(f"{key.replace('_', ' '):<{width}}  {shown}")


@click.command(name="push")
@click.argument("checkpoint", type=CHECKPOINT)
@click.argument("repo")
@click.option(
    "--revision",
    "--branch",
    "revision",
    help="The branch to push to, created from main when missing (default: main).",
)
@click.option("--private", is_flag=True, help="Create the repository private.")
@click.option("--message", help="The commit message (default: task, architecture and step).")
@click.option(
    "--token",
    help="A hub token with write access (default: $HF_TOKEN, else `hf auth login`'s).",
)
def push_cmd(
    checkpoint: str,
    repo: str,
    revision: str | None,
    private: bool,
    message: str | None,
    token: str | None,
) -> None:
    """Upload CHECKPOINT (a run: its newest bundle; or a step_<N> bundle) to the Hugging Face
    hub repository REPO (OWNER/REPO) with a model card; load it as hf://OWNER/REPO."""
    from trmkit.checkpoint.hub import push

    result = push(
        checkpoint, repo, revision=revision, private=private, message=message, token=token
    )
    at = f"@{result.revision}" if result.revision else ""
    click.echo(
        f"pushed {result.bundle} ({', '.join(result.files)}) to {result.url}; load it with "
        f"trmkit.load('hf://{result.repo}{at}') or trmkit solve hf://{result.repo}{at} PUZZLE"
    )


COMMANDS = [checkpoint_group, push_cmd]
