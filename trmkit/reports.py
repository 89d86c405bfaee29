"""Reports and plots: a run's metrics.jsonl, its curves, evaluation and trace PNGs.

metrics.jsonl: one JSON object per line,
``{"step": N, "split": "train"|"eval", "<metric>": value, ...}``.
The file is appended to (a resumed run continues it after dropping lines past the resume
step), so it is the single record of a run whatever trackers are configured. PNG rendering
needs matplotlib (the ``plots`` extra); without it every plot function returns False and
the caller prints a notice.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trmkit import atomic
from trmkit.traces import TraceStep


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def figure(out: Path, dpi: int = 100, **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """``plt.subplots(**subplots)`` as (figure, axes) for the block to draw on; when the block
    ends without an error the figure is laid out and written to ``out`` as a PNG atomically
    (`trmkit.atomic`). The figure is closed either way."""
    plt = pyplot()
    fig, axes = plt.subplots(**subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=dpi)
        atomic.write_bytes(out, png.getvalue())
    finally:
        plt.close(fig)


def plot_curves(
    records: Sequence[Mapping[str, Any]],
    out: Path,
    keys: Sequence[str] = ("lm_loss", "exact_accuracy", "accuracy", "steps"),
) -> bool:
    """Train and eval curves, one panel per metric. Returns False if matplotlib is missing."""
    if not have_matplotlib() or not records:
        return False
    with figure(out, ncols=len(keys), figsize=(4 * len(keys), 3.2)) as (_, axes):
        for ax, key in zip(axes, keys, strict=True):
            for split, style in (("train", "-"), ("eval", "o-")):
                pts = [
                    (r["step"], r[key])
                    for r in records
                    if r.get("split") == split and r.get(key) is not None
                ]
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, label=split, markersize=3)
            ax.set_title(key)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend()
    return True


def plot_eval_report(
    per_step: Sequence[Mapping[str, Any]], histogram: Sequence[int], out: Path
) -> bool:
    """Accuracy after each supervision step and the halting-step histogram, side by side."""
    if not have_matplotlib():
        return False
    with figure(out, ncols=2, figsize=(9, 3.4)) as (_, (left, right)):
        xs = [r["step"] for r in per_step]
        left.plot(xs, [r["exact_accuracy"] for r in per_step], "o-", label="exact", markersize=3)
        left.plot(xs, [r["accuracy"] for r in per_step], "s-", label="token", markersize=3)
        left.set_xlabel("supervision step")
        left.set_ylabel("accuracy")
        left.set_ylim(0, 1.02)
        left.grid(alpha=0.3)
        left.legend()
        labels = [*map(str, range(1, len(histogram))), "never"]
        right.bar(range(len(histogram)), histogram)
        right.set_xticks(range(len(histogram)), labels, fontsize=7, rotation=90)
        right.set_xlabel("first step with q_halt > 0")
        right.set_ylabel("sequences")
    return True


def plot_trace(
    steps: Sequence[TraceStep], title: str, out: Path, cell_text: Callable[[int], str] = str
) -> bool:
    """A trace (`trmkit.traces`) as a strip of grids, one panel per step titled with its
    number and confidence: cells coloured by value, the givens on grey in bold, the cells
    changed since the step before outlined in red; symbols (``cell_text``) up to 400 cells."""
    if not have_matplotlib() or not steps:
        return False
    from matplotlib.patches import Rectangle

    cols = min(len(steps), 8)
    rows = -(-len(steps) // cols)
    vmax = max(int(np.max(st.grid)) for st in steps)
    colours = pyplot().get_cmap("tab20", vmax + 3)(np.arange(vmax + 3))
    colours[:, 3] = 0.3
    colours[vmax + 2] = (0.72, 0.72, 0.72, 1.0)  # one grey for every given cell
    size = (2.2 * cols, 2.4 * rows)
    with figure(out, nrows=rows, ncols=cols, figsize=size, squeeze=False) as (fig, axes):
        for ax in axes.flat:
            ax.axis("off")
        for ax, st in zip(axes.flat, steps, strict=False):
            shade = np.where(st.given, vmax + 2, st.grid)
            ax.imshow(colours[np.clip(shade, 0, vmax + 2)], interpolation="nearest")
            if st.grid.size <= 400:
                font = 7 if st.grid.size <= 100 else 4
                for (r, c), v in np.ndenumerate(st.grid):
                    weight = "bold" if st.given[r, c] else "normal"
                    ax.text(c, r, cell_text(int(v)), ha="center", va="center")
                    ax.texts[-1].set(fontsize=font, fontweight=weight)
            for r, c in np.argwhere(st.changed):
                ax.add_patch(
                    Rectangle((c - 0.4, r - 0.4), 0.8, 0.8, fill=False, edgecolor="red", lw=1.5)
                )
            ax.set_title(f"step {st.step}, q {st.confidence:.3f}", fontsize=8)
        fig.suptitle(f"{title}: grey = given, red = changed", fontsize=9)
    return True


def pareto_front(points: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The points no other point beats on both axes (fewer forward passes per puzzle and
    higher exact accuracy), cheapest first: the best accuracy each compute budget buys."""
    front: list[Mapping[str, Any]] = []
    for p in sorted(points, key=lambda p: (p["forward_passes"], -p["exact_accuracy"])):
        if not front or p["exact_accuracy"] > front[-1]["exact_accuracy"]:
            front.append(p)
    return front


def plot_sweep(points: Sequence[Mapping[str, Any]], out: Path, title: str = "") -> bool:
    """Exact accuracy against forward passes per puzzle (log scale): the depth-only line of
    one exact trajectory, one line per (diversity source, selection) over sample counts at
    the sweep's largest depth with fixed halting, and the Pareto front over every point
    (any depth, halting and selection) with its settings named in ``sweep.json``."""
    if not have_matplotlib() or not points:
        return False
    top = max(int(p["depth"]) for p in points)
    lines: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for p in points:
        if p["samples"] > 1 and p["depth"] == top and p["halt"] == "fixed":
            key = (str(p["source"]), str(p["select"]))
            lines.setdefault(key, []).append((p["forward_passes"], p["exact_accuracy"]))
    depth_line = sorted(
        (p["forward_passes"], p["exact_accuracy"])
        for p in points
        if p["samples"] == 1 and p["halt"] == "fixed"
    )
    front = pareto_front(points)
    with figure(out, dpi=110, figsize=(9.0, 4.6)) as (_, ax):
        if depth_line:
            ax.plot(
                *zip(*depth_line, strict=True), "k.-", label="depth only (1 sample, fixed)", lw=2
            )
        for (source, select), pts in sorted(lines.items()):
            style = "-" if source == "augment" else "--"
            label = f"{source}, select {select} (depth {top})"
            ax.plot(*zip(*sorted(pts), strict=True), style, marker="o", ms=3, lw=1, label=label)
        ax.plot(
            [p["forward_passes"] for p in front],
            [p["exact_accuracy"] for p in front],
            color="red",
            linewidth=2.5,
            alpha=0.4,
            drawstyle="steps-post",
            label="best at each budget (any depth, halting, selection)",
        )
        ax.set_xscale("log")
        ax.set_xlabel("forward passes per puzzle (supervision steps x samples)")
        ax.set_ylabel("exact accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        if title:
            ax.set_title(title, fontsize=9)
    return True


def flat_params(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict (a recipe) as flat ``section.key`` scalars, e.g. for a tracker's
    hyper-parameter table; other values become their ``str``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flat_params(v, key + "."))
        else:
            out[key] = v if v is None or isinstance(v, (int, float, str, bool)) else str(v)
    return out
