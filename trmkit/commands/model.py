"""`trmkit model`: print a recipe's architecture, parameter counts, FLOPs per step and the
preflight's activation estimate, all asked of the model (the model contract, docs/engine.md)."""

from __future__ import annotations

import contextlib

import click

from trmkit.errors import TrmkitError

# seq_len / vocab of the paper tasks, used when the task plugin is not installed
KNOWN_TASKS = {
    **dict.fromkeys(("sudoku-extreme", "sudoku"), (81, 11)),
    **dict.fromkeys(("maze-hard", "maze"), (900, 6)),
    **dict.fromkeys(("arc-agi-1", "arc-agi-2", "arc"), (900, 12)),
}


def _fmt(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} "


def describe(recipe, batch_size: int | None = None) -> list[str]:
    """Lines describing the model of a recipe (built on the meta device: no memory)."""
    import torch

    from trmkit import plugins
    from trmkit.memory import gib
    from trmkit.models import build_model, count_parameters
    from trmkit.models.schedule import schedule_pieces
    from trmkit.training.preflight import activation_bytes, scheduled_train_flops

    batch = batch_size or recipe.optim.global_batch_size
    fields = {"num_puzzle_identifiers": 1, "batch_size": batch, **recipe.model.fields}
    if "seq_len" not in fields or "vocab_size" not in fields:
        # the installed task as built with the recipe's data options (ARC's canvas), else a
        # known paper task's shape
        shape = KNOWN_TASKS.get(recipe.data.task)
        with contextlib.suppress(TrmkitError):
            codec = plugins.get_task(recipe.data.task).with_options(recipe.data.options).codec
            shape = int(codec.seq_len), int(codec.vocab_size)
        if shape is None:
            raise TrmkitError(
                f"task {recipe.data.task!r} is not installed and not a known paper task: pass "
                "--set model.seq_len=N --set model.vocab_size=V"
            )
        fields = {"seq_len": shape[0], "vocab_size": shape[1], **fields}
    cfg = recipe.model_config(**fields)
    with torch.device("meta"):
        model = build_model(recipe.model.name, cfg)
    flops = model.step_flops(batch)
    table = model.puzzle_emb
    saved = activation_bytes(model, batch)
    lines = [
        f"recipe: {recipe.name}  model: {recipe.model.name}",
        str(model),
        "",
        f"sequence: {cfg.seq_len} tokens, vocab {cfg.vocab_size}",
        f"trainable parameters: {count_parameters(model)}",
        "puzzle embedding table: none"
        if table is None
        else f"puzzle embedding table: {table.num_ids} x {table.dim} = "
        f"{table.num_ids * table.dim} values (buffer, trained by sign-SGD)",
        f"FLOPs per supervision step (batch {batch}): train {_fmt(flops.train)}FLOP "
        f"(forward {_fmt(flops.forward)}FLOP, backward {_fmt(flops.backward)}FLOP"
        + (f", ACT-continue pass {_fmt(flops.extra_forward)}FLOP" if flops.extra_forward else "")
        + f"), eval {_fmt(flops.eval)}FLOP; per sample train {_fmt(flops.train / batch)}FLOP",
        f"activations per training step (batch {batch}, fp32): "
        + ("unknown (the model does not implement StepMemory)" if saved is None else gib(saved)),
    ]
    # the mean over the schedule (docs/engine.md, "Training progress and schedules")
    if len(schedule_pieces(cfg)) > 1:
        mean = scheduled_train_flops(model, cfg, batch)
        lines.append(
            f"model.schedule: train {_fmt(mean)}FLOP per step on average over the budget "
            f"({mean / flops.train:.2f}x the final values)"
        )
    return lines


@click.command(name="model")
@click.option("--recipe", "recipe_name", required=True, help="Recipe name or TOML file.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe field, e.g. model.hidden_size=128 (repeatable).",
)
@click.option(
    "--batch-size",
    type=int,
    default=None,
    help="Batch for the FLOP count (default: the recipe's global batch).",
)
def model_cmd(recipe_name: str, overrides: tuple[str, ...], batch_size: int | None) -> None:
    """Print the architecture, trainable parameters, puzzle-table size and FLOPs per step."""
    from trmkit.config import load_recipe

    recipe = load_recipe(recipe_name, list(overrides))
    for line in describe(recipe, batch_size):
        click.echo(line)


COMMANDS = (model_cmd,)
