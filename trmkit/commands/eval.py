"""`trmkit eval`: metrics, per-step accuracy and the halting histogram of a checkpoint, with
the test-time-compute options (docs/test-time-compute.md) and the cost-curve sweep."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import click

from trmkit.commands.checkpoint import CHECKPOINT
from trmkit.commands.inference_options import inference_options, policy_from
from trmkit.errors import OptionError
from trmkit.inference.policy import MAX_SAMPLES, MAX_STEPS, InferencePolicy, parse_int_list
from trmkit.oserrors import check_writable_dir
from trmkit.stats import describe_exact_interval, exact_interval_fields


def options_label(
    policy: InferencePolicy,
    *,
    raw: bool = False,
    max_examples: int = 0,
    sweep: bool = False,
) -> str:
    """The evaluation's options that differ from the defaults, as a directory-name part
    (docs/training.md, "`trmkit eval`"): "" for the defaults, else e.g.
    ``steps32-halt_q-samples8-select_valid``. Two evaluations with different options never
    share a directory; a label over 96 characters becomes ``opts-<hash>`` (options.json in the
    directory spells it out). ``--data`` is not part of it: a store must hold the data the
    checkpoint was trained on, so it names the same evaluation."""
    default = InferencePolicy()
    changed = {
        "sweep": sweep,
        f"steps{policy.steps}": policy.steps is not None,
        f"halt_{policy.halt}": policy.halt != default.halt,
        f"select_{policy.select}": policy.select != default.select,
        f"samples{policy.samples}": policy.samples != default.samples,
        "no_augment": policy.augment != default.augment,
        f"noise{policy.noise:g}": policy.noise != default.noise,
        f"seed{policy.seed}": policy.seed != default.seed,
        "raw": raw,
        f"first{max_examples}": max_examples,
    }
    parts = [part for part, differs in changed.items() if differs]
    label = "-".join(re.sub(r"[^A-Za-z0-9._]+", "", part) for part in parts)
    if len(label) > 96:
        label = "opts-" + hashlib.sha256(label.encode()).hexdigest()[:12]
    return label


def default_out(bundle: Path, label: str = "", source: str | Path = "") -> Path:
    """The first free ``<run>/eval/step_N-cli[-LABEL][-K]`` (``eval-step_N[-LABEL][-K]``
    outside a run; ``eval-OWNER--REPO[@REV]-step_N[-LABEL][-K]`` for an ``hf://`` ``source``,
    never inside the hub cache), LABEL from `options_label`: a later eval writes beside an
    earlier one, never over it."""
    from trmkit.checkpoint import read_manifest
    from trmkit.checkpoint.hub import HUB_SCHEME, is_hub

    suffix = f"-{label}" if label else ""
    if is_hub(source):
        repo = str(source)[len(HUB_SCHEME) :].strip("/").replace("/", "--")
        base = Path(f"eval-{repo}-step_{read_manifest(bundle).step}{suffix}")
    elif bundle.parent.name == "checkpoints":
        base = bundle.parent.parent / "eval" / f"{bundle.name}-cli{suffix}"
    else:
        base = Path(f"eval-{bundle.name}{suffix}")
    out, k = base, 1
    while out.exists() or out.is_symlink():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def write_options(
    out: Path, policy: InferencePolicy, checkpoint, *, raw: bool, max_examples: int, data_dir
) -> None:
    """Write options.json in a report directory: every option of the evaluation."""
    from trmkit import atomic

    record = {
        "checkpoint": str(checkpoint),
        "steps": policy.steps,
        "halt": str(policy.halt),
        "select": str(policy.select),
        "samples": policy.samples,
        "augment": policy.augment,
        "noise": policy.noise,
        "seed": policy.seed,
        "weights": "raw" if raw else "ema",
        "max_examples": max_examples,
        "data": None if data_dir is None else str(data_dir),
    }
    atomic.write_text(out / "options.json", json.dumps(record, indent=2) + "\n")


def check_out(out: Path, force: bool) -> None:
    """An explicit --out must be new or an empty directory unless --force (docs/errors.md,
    "Run directories: one writer, the right data"): reports are never silently replaced."""
    if (out.exists() or out.is_symlink()) and not out.is_dir():
        raise OptionError(f"--out {out}: exists and is not a directory; choose another --out")
    if out.is_dir() and not force and any(out.iterdir()):
        raise OptionError(
            f"--out {out}: not empty (an earlier report?); pass --force to write over it, or "
            "choose another --out"
        )


@click.command(name="eval")
@click.argument("checkpoint", type=CHECKPOINT)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    help="Dataset store (default: the one the checkpoint was trained on).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Where to write reports: a new or empty directory (default: a new "
    "<run>/eval/step_N-cli[-OPTIONS][-K]).",
)
@click.option("--force", is_flag=True, help="Write over the reports in an existing --out.")
@inference_options
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Forward rows per batch (with S samples, batch-size / S puzzles).",
)
@click.option(
    "--max-examples",
    type=click.IntRange(min=0),
    default=0,
    help="Only the first N test rows (0 = all).",
)
@click.option("--raw", is_flag=True, help="Use the raw weights instead of the EMA weights.")
@click.option(
    "--sweep",
    is_flag=True,
    help="Accuracy against compute over depth x samples x halting x selection x "
    "diversity source: writes sweep.json and sweep.png.",
)
@click.option(
    "--sweep-steps",
    default=None,
    metavar="K1,K2,...",
    help="Depths of the sweep (default 1, 2, 4, ... up to 2 x N_sup).",
)
@click.option(
    "--sweep-samples",
    default="1,2,4,8,16",
    show_default=True,
    metavar="S1,S2,...",
    help="Sample counts of the sweep.",
)
@click.option(
    "--sweep-sources",
    default=None,
    metavar="augment,noise",
    help="Diversity sources of the sweep's samples (default: every one the checkpoint supports).",
)
def eval_cmd(
    checkpoint,
    data_dir,
    out,
    force,
    batch_size,
    max_examples,
    raw,
    sweep,
    sweep_steps,
    sweep_samples,
    sweep_sources,
    **options,
):
    """Evaluate CHECKPOINT (a step_<N> bundle or a run directory)."""
    policy = policy_from(options)
    # bounded before anything is loaded (docs/errors.md, "Resources: bounded before any promise")
    if sweep:
        depths = parse_int_list(sweep_steps, "--sweep-steps", MAX_STEPS) if sweep_steps else None
        counts = parse_int_list(sweep_samples, "--sweep-samples", MAX_SAMPLES)
        sources = (
            tuple(x.strip() for x in sweep_sources.split(",") if x.strip())
            if sweep_sources
            else None
        )
    if out is not None:
        check_out(out, force)
    from trmkit.threads import configure_threads

    configure_threads()  # one thread per physical core unless OMP/TRMKIT_NUM_THREADS say
    import torch

    from trmkit.checkpoint import check_task_matches, load_bundle, open_test_split
    from trmkit.evaluation import evaluate

    device = "cuda" if torch.cuda.is_available() else "cpu"
    bundle = load_bundle(checkpoint, weights="raw" if raw else "ema", device=device)
    task = bundle.task
    check_task_matches(bundle, task)
    label = options_label(policy, raw=raw, max_examples=max_examples, sweep=sweep)
    out = out or default_out(bundle.path, label, checkpoint)
    check_writable_dir(out, "report directory")  # before the evaluation, not after it
    created = not out.exists()
    try:
        split = open_test_split(bundle, task, data_dir)
        if sweep:
            from trmkit.inference.sweep import DEFAULT_NOISE, default_grid, run_sweep

            grid = default_grid(
                bundle.model,
                task,
                int(split.meta.num_puzzle_identifiers) > 1,
                depths=depths,
                samples=counts,
                noise=policy.noise or DEFAULT_NOISE,
                seed=policy.seed,
                sources=sources,
            )
            swept = run_sweep(
                bundle.model,
                split,
                task,
                grid,
                batch_size=batch_size,
                max_examples=max_examples,
                progress=True,
            )
            lines = _sweep_lines(swept, swept.write(out))
        else:
            report = evaluate(
                bundle.model,
                split,
                task,
                batch_size=batch_size,
                policy=policy,
                out_dir=out,
                max_examples=max_examples,
                progress=True,
            )
            m = report.metrics
            m.update(exact_interval_fields(m))  # Wilson 95%, trmkit.stats
            report.write(out)
            lines = [
                json.dumps(m, indent=2),
                f"exact accuracy {m['exact_accuracy']:.4f} {describe_exact_interval(m)}"
                f"({report.steps} steps, {policy.describe()}; {m['forward_passes']:.2f} forward "
                f"passes per puzzle); adaptive halting: {m['adaptive_exact_accuracy']:.4f} with "
                f"{m['adaptive_mean_steps']:.2f} mean steps; reports in {out}",
            ]
        write_options(
            out, policy, checkpoint, raw=raw, max_examples=max_examples, data_dir=data_dir
        )
    except BaseException:
        if created:  # a report cut short (a full disk, a crash) is not left half-written
            shutil.rmtree(out, ignore_errors=True)
        raise
    for line in lines:
        click.echo(line)


def _sweep_lines(report, written: list[Path]) -> list[str]:
    """The sweep's table, its baseline and its best point within 8x the baseline's compute."""

    def name(p):
        return (
            f"depth {p['depth']}, {p['samples']} samples, halt {p['halt']}, "
            f"select {p['select']}, source {p['source']}"
        )

    base, best = report.baseline(), report.best_within(8.0)
    err_base, err_best = 1 - base["exact_accuracy"], 1 - best["exact_accuracy"]
    return [
        f"{'source':8} {'halt':12} {'select':9} {'depth':>5} {'samples':>7} "
        f"{'exact':>7} {'token':>7} {'passes':>8} {'ms/puzzle':>10}",
        *(
            f"{p['source']:8} {p['halt']:12} {p['select']:9} {p['depth']:5d} "
            f"{p['samples']:7d} {p['exact_accuracy']:7.4f} {p['accuracy']:7.4f} "
            f"{p['forward_passes']:8.2f} {1000 * p['seconds_per_puzzle']:10.3f}"
            for p in report.points
        ),
        f"baseline ({name(base)}): exact {base['exact_accuracy']:.4f}",
        f"best within 8x compute ({name(best)}): exact {best['exact_accuracy']:.4f} "
        f"at {best['forward_passes'] / max(base['forward_passes'], 1e-9):.1f}x; error "
        f"{err_base:.4f} -> {err_best:.4f}",
        f"wrote {', '.join(str(p) for p in written)}",
    ]


COMMANDS = (eval_cmd,)
