"""The comparison's report from its runs' own files: ``compare.json``, ``compare.md``,
``compare.png`` (and ``compare-sweep.png`` with ``--sweep``).

Per run: the final evaluation of metrics.jsonl (exact and token accuracy, test-set size)
with the Wilson 95% interval of its exact accuracy, the step budget, the wall clock of
`trmkit.comparison.runner.timeline`, the first evaluation at or above the target accuracy.
Per variant: the mean over seeds with its Student-t 95% interval, parameters and FLOPs per
training step (the model of the run's config.json, built on torch's meta device). With two
or more variants: each other variant minus the first, paired by seed.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from trmkit import atomic
from trmkit.comparison.runner import (
    SWEEP_DIR,
    Run,
    end_step,
    eval_records,
    read_config,
    read_timing,
    timeline,
)
from trmkit.comparison.spec import CompareError
from trmkit.reports import figure, have_matplotlib
from trmkit.stats import Interval, accuracy_interval, mean_interval, paired_difference
from trmkit.textio import read_json

REPORT_FORMAT = 1


@attrs.define
class RunResult:
    """One run's line of compare.json (`to_dict`: the fields in this order)."""

    seed: int
    run_dir: Path
    steps: int
    exact_accuracy: float
    exact_accuracy_wilson95: Interval
    accuracy: float
    count: int
    minutes: float | None
    time_estimated: bool
    target_step: int | None
    target_minutes: float | None
    curve: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values: the run directory as a string, the Wilson interval
        as its ``[low, high]``."""
        return attrs.asdict(self, value_serializer=_json_value)


def _json_value(_: Any, field: attrs.Attribute | None, value: Any) -> Any:
    if isinstance(value, Interval):
        return [value.low, value.high]
    return str(value) if isinstance(value, Path) else value


def collect_run(run: Run, target: float) -> RunResult:
    total = end_step(run.run_dir)
    if total is None:
        raise CompareError(
            f"{run.run_dir}/config.json: no step budget (total_steps); the run never started, "
            "rerun the comparison"
        )
    evals = eval_records(run.run_dir)
    final = next((r for r in evals if int(r["step"]) == total), None)
    if final is None:
        raise CompareError(
            f"{run.run_dir}: no final evaluation (step {total}) in metrics.jsonl; rerun the "
            "comparison to finish the run"
        )
    times, estimated = timeline(read_timing(run.side_dir))
    minutes = {step: seconds / 60 for step, seconds in times.items()}
    curve: list[dict[str, Any]] = [
        {
            "step": int(r["step"]),
            "minutes": minutes.get(int(r["step"])),
            "exact_accuracy": float(r["exact_accuracy"]),
            "accuracy": float(r["accuracy"]),
        }
        for r in evals
    ]
    reached = next((c for c in curve if c["exact_accuracy"] >= target), {})
    count = int(final.get("count", 0))
    exact = float(final["exact_accuracy"])
    return RunResult(
        seed=run.seed,
        run_dir=run.run_dir,
        steps=int(total),
        exact_accuracy=exact,
        exact_accuracy_wilson95=(
            accuracy_interval(exact, count) if count else Interval(exact, None, None, 0)
        ),
        accuracy=float(final["accuracy"]),
        count=count,
        minutes=curve[-1]["minutes"],  # the final evaluation is in the curve
        time_estimated=estimated,
        target_step=reached.get("step"),
        target_minutes=reached.get("minutes"),
        curve=curve,
    )


def model_size(config: Mapping[str, Any]) -> tuple[int | None, float | None]:
    """(trainable parameters, training FLOPs per optimizer step at the global batch) of the
    run's model, built on the meta device; (None, None) when it cannot be built."""
    try:
        import torch

        from trmkit.models import build_model, count_parameters, make_config

        name = config["recipe"]["model"]["name"]
        with torch.device("meta"):
            model = build_model(name, make_config(name, dict(config["model_config"])))
        flops = model.step_flops(int(config["global_batch_size"]))
        return count_parameters(model), float(flops.train)
    except Exception:  # a model without a FLOP count, an old config: the column stays empty
        return None, None


def _interval(
    values: Sequence[float], lo: float = -math.inf, hi: float = math.inf
) -> dict[str, Any] | None:
    """The mean's interval cut to [lo, hi] as JSON; None for no values."""
    return mean_interval(values).clipped(lo, hi).to_dict() if values else None


def summarize(
    spec: Mapping[str, Any], runs: Mapping[str, Sequence[RunResult]], target: float
) -> dict[str, Any]:
    """compare.json as a dict (``runs``: per variant label, its runs in seed order)."""
    variants = []
    for v in spec["variants"]:
        label = v["label"]
        results = list(runs[label])
        params, flops = model_size(read_config(results[0].run_dir) or {})
        reached_steps = [float(r.target_step) for r in results if r.target_step is not None]
        reached_minutes = [r.target_minutes for r in results if r.target_minutes is not None]
        variants.append(
            {
                "label": label,
                "recipe": v["recipe"],
                "overrides": v["overrides"],
                "seeds": [r.seed for r in results],
                "steps": sorted({r.steps for r in results}),
                "exact_accuracy": _interval([r.exact_accuracy for r in results], 0.0, 1.0),
                "accuracy": _interval([r.accuracy for r in results], 0.0, 1.0),
                "minutes": _interval([r.minutes for r in results if r.minutes is not None], 0.0),
                "target": {
                    "reached": len(reached_steps),
                    "of": len(results),
                    "minutes": _interval(reached_minutes, 0.0),
                    "steps": _interval(reached_steps),
                },
                "parameters": params,
                "train_flops_per_step": flops,
                "runs": [r.to_dict() for r in results],
            }
        )
    paired = []
    base = spec["variants"][0]["label"]
    a = {r.seed: r for r in runs[base]}
    for v in spec["variants"][1:]:
        b = {r.seed: r for r in runs[v["label"]]}
        seeds = sorted(set(a) & set(b))
        if not seeds:
            continue
        paired.append(
            {
                "a": base,
                "b": v["label"],
                "seeds": seeds,
                **{
                    key: paired_difference(
                        [getattr(a[s], key) for s in seeds], [getattr(b[s], key) for s in seeds]
                    )
                    .clipped(-1.0, 1.0)
                    .to_dict()
                    for key in ("exact_accuracy", "accuracy")
                },
            }
        )
    return {
        "format": REPORT_FORMAT,
        "task": spec["task"],
        "budget_steps": spec["budget_steps"],
        "budget_minutes": sorted(
            {float(v["resolved"].get("train", {}).get("max_minutes", 0)) for v in spec["variants"]}
        ),
        "seeds": spec["seeds"],
        "target": target,
        "test_split": spec["data"]["test"],
        "data": spec["data"]["path"],
        "variants": variants,
        "paired": paired,
    }


# ----------------------------------------------------------------------------- markdown


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ci(
    d: Mapping[str, Any] | None, scale: float = 100.0, unit: str = "%", form: str = ".1f"
) -> str:
    """An interval's value and bounds, scaled; ``form`` "+.1f" for a signed difference."""
    if d is None:
        return "n/a"
    value = f"{scale * d['value']:{form}}{unit}"
    if d["low"] is None:
        return f"{value} (1 seed: no interval)"
    return f"{value} [{scale * d['low']:{form}}, {scale * d['high']:{form}}]"


def _count(n: float | None, unit: str = "") -> str:
    if n is None:
        return "n/a"
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {suffix}{unit}"
    return f"{n:.0f} {unit}".rstrip()


def _minutes(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def markdown(report: Mapping[str, Any]) -> str:
    target = report["target"]
    budget = report["budget_steps"]
    budget_minutes = [m for m in report.get("budget_minutes", []) if m > 0]
    test = report["test_split"]
    seeds = report["seeds"]
    lines = [
        f"# Comparison on `{report['task']}`: {len(report['variants'])} variant(s) x "
        f"{seeds} seed(s)",
        "",
        f"Budget: {f'{budget} steps for every run' if budget else 'each recipe its own steps'}"
        + (
            f", and at most {' / '.join(f'{m:g}' for m in budget_minutes)} minutes of wall clock "
            "(train.max_minutes; a run out of time ends at that step)."
            if budget_minutes
            else "."
        )
        + f" Test split: {test['examples']} rows, sha256 `{test['sha256'][:16]}`, the same for "
        "every run. Seed s is `train.seed=s`.",
        "",
        "| variant | recipe | steps | exact, mean [95% CI over seeds] | token, mean [95% CI] "
        f"| training min | to {_pct(target)} exact | parameters | train FLOPs/step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in report["variants"]:
        recipe = v["recipe"] + "".join(f" `{o}`" for o in v["overrides"])
        t = v["target"]
        to_target = f"{t['reached']}/{t['of']} runs"
        if t["minutes"] is not None:
            to_target += f", {_ci(t['minutes'], 1.0, ' min')}"
        lines.append(
            f"| {v['label']} | {recipe} | {', '.join(map(str, v['steps']))} | "
            f"{_ci(v['exact_accuracy'])} | {_ci(v['accuracy'])} | "
            f"{_ci(v['minutes'], 1.0, '')} | {to_target} | "
            f"{_count(v['parameters'])} | {_count(v['train_flops_per_step'], 'FLOP')} |"
        )
    lines += [
        "",
        "## Runs",
        "",
        "| variant | seed | steps | exact [Wilson 95%] | token | test puzzles | training min "
        f"| to {_pct(target)} exact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in report["variants"]:
        for r in v["runs"]:
            lo, hi = r["exact_accuracy_wilson95"]
            wilson = "" if lo is None else f" [{100 * lo:.1f}, {100 * hi:.1f}]"
            minutes = _minutes(r["minutes"]) + (" (est.)" if r["time_estimated"] else "")
            to_target = (
                "not reached"
                if r["target_step"] is None
                else f"step {r['target_step']}, {_minutes(r['target_minutes'])} min"
            )
            lines.append(
                f"| {v['label']} | {r['seed']} | {r['steps']} | {_pct(r['exact_accuracy'])}"
                f"{wilson} | {_pct(r['accuracy'])} | {r['count']} | {minutes} | {to_target} |"
            )
    if report["paired"]:
        lines += ["", "## Paired difference (by seed)", ""]
        for p in report["paired"]:
            e, a = p["exact_accuracy"], p["accuracy"]
            verdict = _verdict(e)
            lines.append(
                f"- **{p['b']} - {p['a']}**, seeds {', '.join(map(str, p['seeds']))}: exact "
                f"{_ci(e, 100, ' pp', '+.1f')}, token {_ci(a, 100, ' pp', '+.1f')}. {verdict}"
            )
    lines += [
        "",
        "Intervals over seeds are Student-t 95% intervals of the mean (n - 1 degrees of "
        "freedom: with 2 seeds t = 12.71, so they are wide), cut to the values an accuracy "
        "(or a difference of two) can take; a run's own interval is the "
        "Wilson 95% interval of its exact accuracy on its test puzzles. Training minutes are "
        "wall clock from the start of the run's process to its last evaluation (start-up "
        "and evaluations included; '(est.)': a resumed run whose clock was interpolated). "
        "Curves: `compare.png`.",
        "",
    ]
    return "\n".join(lines)


def _verdict(d: Mapping[str, Any]) -> str:
    if d["low"] is None:
        return "One seed gives no interval; run more seeds."
    if d["low"] > 0 or d["high"] < 0:
        return "The 95% interval excludes 0."
    return "The 95% interval includes 0: these seeds do not settle the difference."


# ----------------------------------------------------------------------------- plots


def plot_compare(report: Mapping[str, Any], out: Path) -> bool:
    """Exact accuracy against wall clock and against steps: per variant the mean over
    seeds at each evaluated step, with a band from the lowest to the highest seed."""
    if not have_matplotlib():
        return False
    with figure(out, ncols=2, figsize=(10, 3.8)) as (fig, (by_time, by_step)):
        for i, v in enumerate(report["variants"]):
            curves = [r["curve"] for r in v["runs"]]
            steps = sorted(set.intersection(*({c["step"] for c in curve} for curve in curves)))
            at = [{c["step"]: c for c in curve} for curve in curves]  # the run's points by step
            acc = [[points[s]["exact_accuracy"] for points in at] for s in steps]
            minutes = [[points[s]["minutes"] for points in at] for s in steps]
            timed = [
                (sum(t) / len(t), a) for t, a in zip(minutes, acc, strict=True) if None not in t
            ]
            label = f"{v['label']} ({len(curves)} seed{'s' if len(curves) > 1 else ''})"
            # by step every evaluated step, by time those every seed has a time for (its mean)
            for ax, xs, ys in (
                (by_step, steps, acc),
                (by_time, [t for t, _ in timed], [a for _, a in timed]),
            ):
                if xs:
                    mean = [sum(a) / len(a) for a in ys]
                    ax.plot(xs, mean, "o-", color=f"C{i}", label=label, markersize=3)
                    lows, highs = [min(a) for a in ys], [max(a) for a in ys]
                    ax.fill_between(xs, lows, highs, color=f"C{i}", alpha=0.2)
        by_time.set_xlabel("wall clock (min, mean over seeds)")
        by_step.set_xlabel("optimizer step")
        for ax in (by_time, by_step):
            ax.set_ylabel("exact accuracy")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(
            f"{report['task']}: mean over seeds, band = lowest to highest seed", fontsize=9
        )
    return True


def read_sweep(run_dir: Path) -> list[dict[str, Any]] | None:
    path = run_dir / "eval" / SWEEP_DIR / "sweep.json"
    if not path.is_file():
        return None
    data = read_json(path, error=CompareError, what="sweep report")
    points = data.get("points") if isinstance(data, dict) else None
    return points if isinstance(points, list) else None


def best_within_budget(points: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
    """At every forward-pass count of the sweep, the best exact accuracy of any setting
    costing at most that (the cost curve; `trmkit.reports.pareto_front` keeps only the
    points where it rises)."""
    cheapest_first = sorted(points, key=lambda p: p["forward_passes"])
    best = itertools.accumulate((float(p["exact_accuracy"]) for p in cheapest_first), max)
    # one entry per cost, holding the last (so the best) running maximum at it
    at_cost = dict(zip((float(p["forward_passes"]) for p in cheapest_first), best, strict=True))
    return list(at_cost), list(at_cost.values())


def plot_sweeps(report: Mapping[str, Any], out: Path) -> bool:
    """Every run's test-time cost curve (the best exact accuracy at each forward-pass
    budget, `trmkit eval --sweep`), one colour per variant; False (no file) when no run
    has a sweep."""
    if not have_matplotlib():
        return False
    curves = [
        (i, j, v["label"], r["seed"], points)
        for i, v in enumerate(report["variants"])
        for j, r in enumerate(v["runs"])
        if (points := read_sweep(Path(r["run_dir"])))
    ]
    if not curves:
        return False
    with figure(out, figsize=(8, 4.4)) as (_, ax):
        for i, j, label, seed, points in curves:
            ax.plot(
                *best_within_budget(points),
                color=f"C{i}",
                linestyle=("-", "--", ":", "-.")[j % 4],
                drawstyle="steps-post",
                marker="o",
                markersize=3,
                label=f"{label} seed {seed}",
            )
        ax.set_xscale("log")
        ax.set_xlabel("forward passes per puzzle (supervision steps x samples)")
        ax.set_ylabel("exact accuracy (best at each budget)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return True


def write_report(
    out: Path, spec: Mapping[str, Any], runs: Mapping[str, Sequence[RunResult]], target: float
) -> tuple[dict[str, Any], list[Path]]:
    report = summarize(spec, runs, target)
    written = [out / "compare.json", out / "compare.md"]
    atomic.write_text(written[0], json.dumps(report, indent=2) + "\n")
    atomic.write_text(written[1], markdown(report))
    if plot_compare(report, out / "compare.png"):
        written.append(out / "compare.png")
    if plot_sweeps(report, out / "compare-sweep.png"):  # only where a run has a sweep
        written.append(out / "compare-sweep.png")
    return report, written


__all__ = [
    "RunResult",
    "collect_run",
    "markdown",
    "model_size",
    "plot_compare",
    "plot_sweeps",
    "summarize",
    "write_report",
]
