"""The test-time-compute options `trmkit eval` and `trmkit solve` share
(docs/test-time-compute.md); they build one `trmkit.inference.InferencePolicy`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from trmkit.inference.policy import InferencePolicy


def inference_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --steps, --halt, --adaptive, --samples, --noise, --no-augment, --select, --seed."""
    options = [
        click.option(
            "--steps",
            type=int,
            default=None,
            help="Supervision steps K (default: the trained N_sup; more is allowed).",
        ),
        click.option(
            "--halt",
            "halt",
            default=None,
            metavar="NAME[:ARG]",
            help="When a trajectory stops: after K steps (fixed, default), when its "
            "halting head fires (q), when its answer has not changed for P "
            "steps (converged[:P], P=2), or a plugin's halting policy.",
        ),
        click.option("--adaptive", is_flag=True, help="Same as --halt q."),
        click.option(
            "--samples",
            type=int,
            default=1,
            show_default=True,
            help="Trajectories per puzzle, run as extra batch rows.",
        ),
        click.option(
            "--noise",
            type=float,
            default=0.0,
            show_default=True,
            help="Std of Gaussian noise on the reasoning latent of samples 2..S.",
        ),
        click.option(
            "--no-augment",
            "no_augment",
            is_flag=True,
            help="Do not vary samples by the task's augmentations (noise only).",
        ),
        click.option(
            "--select",
            default="vote",
            show_default=True,
            metavar="NAME[:ARG]",
            help="Choose among samples: highest halting confidence (q), most common "
            "answer (vote), most converged, one the task's checker accepts "
            "(valid, falling back to vote), or a plugin's selection rule.",
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Seed of the sample augmentations and noise.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def policy_from(options: dict[str, Any]) -> InferencePolicy:
    """The policy of the parsed options (pops them from ``options``); one-line errors."""
    halt = options.pop("halt")
    adaptive = options.pop("adaptive")
    if halt is not None and adaptive and halt != "q":
        raise click.UsageError(f"--adaptive means --halt q; it contradicts --halt {halt}")
    return InferencePolicy(  # halt and select convert from NAME[:ARG] text
        steps=options.pop("steps"),
        halt=("q" if adaptive else "fixed") if halt is None else halt,
        samples=options.pop("samples"),
        augment=not options.pop("no_augment"),
        noise=options.pop("noise"),
        select=options.pop("select"),
        seed=options.pop("seed"),
    ).validate()
