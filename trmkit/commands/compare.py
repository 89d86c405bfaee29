"""`trmkit compare`: variants (recipes, or one recipe with other settings) trained over
seeds at one budget on one test split, with intervals and one report (docs/compare.md)."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from trmkit.errors import OptionError


def _count(text: str, option: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise OptionError(f"{option} {text}: expected a whole number, {what}") from None
    if value < 1:
        raise OptionError(f"{option} {text}: must be at least 1 ({what})")
    return value


def _fraction(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise OptionError(f"{option} {text}: expected an accuracy in (0, 1], e.g. 0.9")
    return value


@click.command(name="compare")
@click.option("--task", "task_name", help="The task every variant trains (checked).")
@click.option(
    "--recipe",
    "recipes",
    multiple=True,
    required=True,
    metavar="[LABEL=]NAME",
    help="A variant: a recipe name or TOML file, optionally labelled (repeatable; the same "
    "recipe twice is two variants).",
)
@click.option(
    "--set",
    "set_all",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe field in every variant (repeatable).",
)
@click.option(
    "--set-for",
    "set_for",
    multiple=True,
    nargs=2,
    metavar="VARIANT KEY=VALUE",
    help="Override a field in one variant, named by label or 1-based position (repeatable).",
)
@click.option(
    "--seeds", "seeds_text", default="3", show_default=True, metavar="N", help="Seeds per variant."
)
@click.option(
    "--budget-steps",
    "budget_text",
    default=None,
    metavar="N",
    help="Optimizer steps of every run (default: each recipe's own budget).",
)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="The comparison directory."
)
@click.option(
    "--jobs", "jobs_text", default="1", show_default=True, metavar="J", help="Runs at a time."
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    help="A built dataset store (default: the recipes' data, built once and cached).",
)
@click.option(
    "--target",
    "target_text",
    default="0.9",
    metavar="ACC",
    show_default=True,
    help="Exact accuracy whose first crossing is reported (time and steps).",
)
@click.option(
    "--sweep",
    is_flag=True,
    help="Also the test-time cost curve of every final checkpoint (trmkit eval --sweep).",
)
@click.option(
    "--sweep-samples",
    default=None,
    metavar="S1,S2,...",
    help="Sample counts of the sweep (default: eval's).",
)
def compare_cmd(
    task_name,
    recipes,
    set_all,
    set_for,
    seeds_text,
    budget_text,
    out,
    jobs_text,
    data_dir,
    target_text,
    sweep,
    sweep_samples,
):
    """Train variants over seeds at one budget and report them side by side."""
    from trmkit.commands.train import resolve_recipe
    from trmkit.comparison import runner, spec
    from trmkit.comparison.report import collect_run, write_report
    from trmkit.config import save_recipe
    from trmkit.oserrors import check_writable_dir

    seeds = _count(seeds_text, "--seeds", "the number of seeds per variant")
    jobs = _count(jobs_text, "--jobs", "the number of runs at a time")
    budget = None if budget_text is None else _count(budget_text, "--budget-steps", "steps")
    target = _fraction(target_text, "--target")

    args = [spec.VariantArg.parse(text) for text in recipes]
    labels = spec.default_labels(args)
    overrides = spec.variant_overrides(labels, set_all, set_for)
    variants = [
        spec.Variant(label, arg.recipe, tuple(sets), resolve_recipe(task_name, arg.recipe, sets))
        for label, arg, sets in zip(labels, args, overrides, strict=True)
    ]
    spec.check_variants(variants)
    old = spec.read_spec(out)
    make_spec = functools.partial(spec.make_spec, variants, seeds=seeds, budget_steps=budget)
    placeholder = make_spec(data_path=Path(), test={"sha256": "", "examples": 0})
    spec.refuse_if_other(out, old, placeholder, data=False)
    check_writable_dir(out, "comparison directory")

    data_path, store = _test_data(variants[0].recipe, data_dir)
    test = spec.test_split_digest(store)
    new = make_spec(data_path=data_path, test=test)
    spec.refuse_if_other(out, old, new, data=True)

    runs = {
        v.label: [
            runner.Run(
                v.label, s, runner.run_dir_of(out, v.label, s), out / v.label / "recipe.toml"
            )
            for s in range(seeds)
        ]
        for v in variants
    }
    for run in [r for group in runs.values() for r in group]:
        runner.check_not_running(run)
    spec.write_spec(out, new)
    for v in variants:
        (out / v.label).mkdir(parents=True, exist_ok=True)
        save_recipe(v.recipe, out / v.label / "recipe.toml")

    # seed by seed: with --jobs = variants the runs of a pair train side by side, under the
    # same machine load (what a wall-clock budget needs, docs/compare.md)
    ordered = [group[s] for s in range(seeds) for group in runs.values()]
    todo = [run for run in ordered if runner.run_state(run.run_dir)[0] != "finished"]
    click.echo(
        f"compare: {len(variants)} variant(s) x {seeds} seed(s) on {new['task']} "
        f"({test['examples']} test rows, sha256 {test['sha256'][:12]}); "
        f"{len(ordered) - len(todo)} run(s) finished, {len(todo)} to train, {jobs} at a time; "
        f"{out}"
    )
    launcher = runner.Launcher(jobs, click.echo)
    with runner.sigterm_as_interrupt():  # a killed compare stops its runs (resumable)
        outcomes = launcher.map([runner.train_task(launcher, r, data_path, budget) for r in todo])
        runner.raise_failures(outcomes, "training")
        if sweep:
            pending = [r for g in runs.values() for r in g if not runner.sweep_done(r)]
            tasks = [runner.sweep_task(launcher, r, sweep_samples) for r in pending]
            runner.raise_failures(launcher.map(tasks), "the test-time sweep")

    results = {label: [collect_run(r, target) for r in group] for label, group in runs.items()}
    report, written = write_report(out, new, results, target)
    for v in report["variants"]:
        e = v["exact_accuracy"]
        interval = "" if e["low"] is None else f" [{e['low']:.4f}, {e['high']:.4f}]"
        click.echo(f"{v['label']}: exact accuracy {e['value']:.4f}{interval} over {e['n']} seed(s)")
    for p in report["paired"]:
        d = p["exact_accuracy"]
        interval = "" if d["low"] is None else f" [{d['low']:+.4f}, {d['high']:+.4f}]"
        click.echo(f"{p['b']} - {p['a']}: exact accuracy {d['value']:+.4f}{interval} (paired)")
    click.echo(f"wrote {', '.join(str(p) for p in written)}")


def _test_data(recipe, data_dir: Path | None):
    """``--data`` as given, else the recipes' dataset from the cache (built on first use),
    and its store, which must have the test split every run is scored on."""
    from trmkit.cli import command_task
    from trmkit.data.cache import build_cached, cached_dataset_path, is_built
    from trmkit.data.store import open_store
    from trmkit.errors import StoreError

    task = command_task(recipe.data.task)
    path = data_dir or cached_dataset_path(task, recipe.data)
    if data_dir is None and not is_built(path):
        click.echo(f"building dataset {path.name} (cached for later runs)", err=True)
        build_cached(task, recipe.data, path, progress=False)
    store = open_store(path, task)
    if "test" not in store.splits:
        raise StoreError(
            f"{path}: the store has no test split; a comparison scores every run on it"
        )
    return path, store


COMMANDS = (compare_cmd,)
