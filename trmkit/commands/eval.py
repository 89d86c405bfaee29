"""`trmkit eval`: metrics, per-step accuracy and the halting histogram of a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import click


def default_out(bundle: Path) -> Path:
    if bundle.parent.name == "checkpoints":
        return bundle.parent.parent / "eval" / f"{bundle.name}-cli"
    return Path(f"eval-{bundle.name}")


@click.command(name="eval")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--data", "data_dir", type=click.Path(path_type=Path),
              help="Dataset store (default: the one the checkpoint was trained on).")
@click.option("--out", type=click.Path(path_type=Path), help="Where to write reports.")
@click.option("--steps", type=click.IntRange(min=1),
              help="Supervision steps (default: the trained N_sup; more is allowed).")
@click.option("--adaptive", is_flag=True,
              help="Headline metrics from each sequence's own halting step.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--max-examples", type=click.IntRange(min=0), default=0,
              help="Only the first N test rows (0 = all).")
@click.option("--raw", is_flag=True, help="Use the raw weights instead of the EMA weights.")
def eval_cmd(checkpoint, data_dir, out, steps, adaptive, batch_size, max_examples, raw):
    """Evaluate CHECKPOINT (a step_<N> bundle or a run directory)."""
    import torch

    from trmkit import plugins
    from trmkit.checkpoint import check_task_matches, load_bundle, open_test_split
    from trmkit.evaluation import evaluate

    device = "cuda" if torch.cuda.is_available() else "cpu"
    bundle = load_bundle(checkpoint, weights="raw" if raw else "ema", device=device)
    task = plugins.get_task(bundle.task_name)
    check_task_matches(bundle, task)
    split = open_test_split(bundle, task, data_dir)
    out = out or default_out(bundle.path)
    report = evaluate(bundle.model, split, task, batch_size=batch_size, steps=steps,
                      adaptive=adaptive, out_dir=out, max_examples=max_examples,
                      progress=True)
    report.write(out)
    m = report.metrics
    click.echo(json.dumps(dict(m.items()), indent=2))
    click.echo(
        f"exact accuracy {m['exact_accuracy']:.4f} ({'adaptive' if adaptive else 'fixed'} "
        f"{report.steps} steps); adaptive halting: {m['adaptive_exact_accuracy']:.4f} with "
        f"{m['adaptive_mean_steps']:.2f} mean steps; reports in {out}")


COMMANDS = (eval_cmd,)
