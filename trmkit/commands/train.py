"""`trmkit train`: train a recipe on Accelerate (one process, or `accelerate launch`)."""

from __future__ import annotations

from pathlib import Path

import click

from trmkit.errors import ConfigError


def resolve_recipe(task_name: str | None, recipe_name: str | None, overrides: tuple[str, ...]):
    """The recipe to run: ``--recipe`` or the task's default; ``--task`` must agree with it."""
    from trmkit import plugins
    from trmkit.cli import command_task
    from trmkit.config import load_recipe

    if task_name is None and recipe_name is None:
        raise ConfigError("give --task NAME (its default recipe) or --recipe NAME_OR_FILE")
    task = plugins.get_task(task_name) if task_name else None
    if recipe_name is None:
        assert task is not None
        if not task.defaults.recipe:
            raise ConfigError(f"task {task.name!r} names no default recipe; pass --recipe")
        recipe_name = task.defaults.recipe
    recipe = load_recipe(recipe_name, list(overrides))
    if not recipe.data.task:
        if task is None:
            raise ConfigError(f"recipe {recipe_name!r} names no data.task; pass --task")
        recipe.data.task = task.name
    recipe_task = command_task(recipe.data.task)
    if task is not None and recipe_task.name != task.name:
        if plugins.owner_of(recipe_task) != plugins.owner_of(task):
            raise ConfigError(
                f"--task {task_name} does not match recipe {recipe_name!r}, which trains task "
                f"{recipe_task.name!r}; drop --task or choose a recipe of {task.name!r}"
            )
        # A recipe may train a smaller variant from the same plugin (sudoku-quick: 6x6).
        click.echo(
            f"recipe {recipe.name or recipe_name!r} trains {recipe_task.name!r}, a "
            f"variant of {task.name!r} from the same plugin",
            err=True,
        )
    recipe.data.task = recipe_task.name
    return recipe


def default_run_dir(recipe) -> Path:
    import time

    from trmkit.names import safe_file_name

    stem = safe_file_name(recipe.name or recipe.data.task)  # a recipe name may hold '/'
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


@click.command(name="train")
@click.option("--task", "task_name", help="Task name (its default recipe unless --recipe).")
@click.option("--recipe", "recipe_name", help="Recipe name (tasks/NAME.toml) or TOML file.")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    help="A built dataset store (default: build the recipe's data, cached).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    help="Run directory (default runs/<recipe>-<time>).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe field, e.g. --set optim.lr=3e-4 (repeatable).",
)
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after N optimizer steps.")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly.")
@click.option(
    "--log-with",
    metavar="TRACKER",
    help="Also log to a tracker Accelerate knows (tensorboard, wandb, mlflow, ...; "
    "its package must be installed).",
)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option(
    "--no-preflight",
    is_flag=True,
    help="Skip the check that the run finishes within a day here and that one step "
    "fits in memory (docs/training.md, Preflight).",
)
def train_cmd(
    task_name,
    recipe_name,
    data_dir,
    out,
    overrides,
    max_steps,
    resume,
    log_with,
    no_progress,
    no_preflight,
):
    """Train a model; prints the final evaluation accuracy."""
    from trmkit.threads import configure_threads

    configure_threads()  # before any torch work: one thread per physical core by default
    from trmkit.training.trainer import Trainer

    recipe = resolve_recipe(task_name, recipe_name, overrides)
    if resume and out is None:
        raise ConfigError("--resume needs --out RUN (the run directory to continue)")
    if log_with:
        check_tracker(log_with)
    # before the data is built or the model allocated: a step that cannot fit is refused
    checked = None if no_preflight else run_preflight(recipe, data_dir, max_steps, refuse=True)
    run_dir = out or default_run_dir(recipe)
    trainer = Trainer(
        recipe,
        run_dir=run_dir,
        data_dir=data_dir,
        max_steps=max_steps,
        resume=resume,
        log_with=log_with,
        progress=not no_progress,
        check_memory=not no_preflight,
    )
    if checked is not None and checked.steps is None and trainer.accelerator.is_main_process:
        # the step budget needed the data, which is built now: check the run time again
        run_preflight(recipe, trainer.data_dir, trainer.total_steps, memory=False)
    result = trainer.run()
    if trainer.accelerator.is_main_process:
        m = result.eval_metrics
        if m:
            click.echo(
                f"final: exact accuracy {m['exact_accuracy']:.4f}, token accuracy "
                f"{m['accuracy']:.4f} on {m['count']} held-out puzzles after "
                f"{result.step} steps ({result.seconds / 60:.1f} min)"
            )
        else:
            click.echo(f"finished {result.step} steps (no test split to evaluate)")
        click.echo(f"checkpoint: {result.checkpoint}")


def run_preflight(
    recipe, data_dir: Path | None, steps: int | None, memory: bool = True, refuse: bool = False
):
    """`trmkit.training.preflight` on the main process; its lines go to stderr. With
    ``refuse``, a step that does not fit in memory is a one-line error (exit 1)."""
    import os

    from trmkit.errors import TrmkitError
    from trmkit.training.preflight import preflight

    if int(os.environ.get("RANK", "0")) != 0:
        return None
    try:
        return preflight(
            recipe,
            data_dir=data_dir,
            max_steps=steps,
            memory=memory,
            refuse=refuse,
            echo=lambda line: click.echo(line, err=True),
        )
    except TrmkitError:
        raise
    except Exception as exc:  # a check that cannot run must not stop the run it checks
        click.echo(
            f"preflight: skipped ({type(exc).__name__}: {exc}); --no-preflight silences this",
            err=True,
        )
        return None


def check_tracker(name: str) -> None:
    """``name`` must be a tracker Accelerate knows (built in, or added with
    ``accelerate.tracking.register_tracker_class``) whose package is installed."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers
    from accelerate.utils import LoggerType

    if name not in LOGGER_TYPE_TO_CLASS:
        known = ", ".join(sorted(LOGGER_TYPE_TO_CLASS))
        raise ConfigError(f"--log-with {name}: not a tracker Accelerate knows; known: {known}")
    builtin = {str(t) for t in LoggerType if t != LoggerType.ALL}
    if name in builtin and name not in {str(t) for t in get_available_trackers()}:
        raise ConfigError(
            f"--log-with {name}: its package is not installed (e.g. pip install {name})"
        )


COMMANDS = (train_cmd,)
