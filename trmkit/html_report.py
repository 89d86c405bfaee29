"""`trmkit report`'s page: one self-contained HTML file (docs/reports.md, "The run report").

Everything is inline: the CSS, the script, the charts (SVG drawn here, no plotting library)
and the traces (JSON the script draws as tables). Nothing is fetched, so the file opens
offline and can be mailed or attached as it is. The page's script draws every trace at each
of its steps once when it loads (``data-visited`` on each trace: the steps it drew), then
sets ``document.body.dataset.status`` to ``"ok"``; an error in it is written into
``#errors`` and sets ``"error"`` (what tests/test_report_html.py checks in Chromium).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from trmkit.traces import TraceStep


@attrs.frozen
class TraceView:
    """One puzzle's trace as the page shows it."""

    title: str
    steps: Sequence[TraceStep]
    symbols: Mapping[int, str]
    """every value in the steps' grids -> its symbol (`Task.cell_text`)."""


@attrs.frozen
class ReportData:
    """What the page shows; `trmkit.commands.report` gathers it."""

    title: str
    facts: Sequence[tuple[str, str]]
    """(name, value) rows of the summary table."""
    records: Sequence[Mapping[str, Any]]
    """metrics.jsonl's records (`trmkit.training.metrics_log`)."""
    per_step: Sequence[Mapping[str, Any]]
    """accuracy after each supervision step (per_step.json's ``per_step``)."""
    histogram: Sequence[int]
    """sequences whose halting head first fired at step i + 1; the last entry: never."""
    evaluation: str
    """where ``per_step`` and ``histogram`` come from, shown under their charts."""
    traces: Sequence[TraceView]


COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
WIDTH, HEIGHT = 460, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 14, 30, 44
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
MAX_POINTS = 1000
"""points drawn per series at most, so the page stays small for a long run."""


def _num(value: float) -> str:
    """A tick label: whole numbers as they are (step 1154, not 1.15e+03), others to 3 digits."""
    if float(value).is_integer() and abs(value) < 1e7:
        return f"{int(value)}"
    return f"{value:.3g}"


def _points(
    records: Sequence[Mapping[str, Any]], split: str, key: str, need_count: bool = False
) -> list[tuple[float, float]]:
    """(step, value) of ``records`` of ``split`` with a finite ``key`` (train records that
    counted no halted sequence, ``count`` 0, carry no accuracy and are skipped with
    ``need_count``)."""
    return [
        (float(r["step"]), float(value))
        for r in records
        if r.get("split") == split and (r.get("count") or not need_count)
        if isinstance(value := r.get(key), (int, float)) and not isinstance(value, bool)
        if math.isfinite(value)
    ]


def _frame(name: str, title: str, xlabel: str, body: str, y0: float, y1: float) -> str:
    """The chart's ``<svg>``: title, axis label, five y ticks with grid lines, ``body``."""
    ticks = []
    for i in range(5):
        value = y0 + (y1 - y0) * i / 4
        y = HEIGHT - BOTTOM - PLOT_H * i / 4
        ticks.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_num(value)}</text>'
        )
    return (
        f'<svg class="chart" data-chart="{name}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{html.escape(title)}">'
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" class="title">'
        f"{html.escape(title)}</text>{''.join(ticks)}"
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" class="axis"/>'
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" '
        f'y2="{HEIGHT - BOTTOM}" class="axis"/>'
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{html.escape(xlabel)}</text>{body}</svg>"
    )


def line_chart(
    name: str,
    title: str,
    xlabel: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    y_range: tuple[float, float] | None = None,
) -> str:
    """An SVG line chart of ``series`` ((label, points) each; a series of at most 60 points
    also gets a dot per point), with its legend; "no data" when every series is empty."""
    pts = [p for _, ps in series for p in ps]
    if not pts:
        note = f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>'
        return _frame(name, title, xlabel, note, 0.0, 1.0)
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = y_range or (min(p[1] for p in pts), max(p[1] for p in pts))
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def xy(x: float, y: float) -> str:
        return (
            f"{LEFT + PLOT_W * (x - x0) / (x1 - x0):.1f},{TOP + PLOT_H * (y1 - y) / (y1 - y0):.1f}"
        )

    body = [
        f'<text x="{LEFT}" y="{HEIGHT - 24}" text-anchor="middle">{_num(x0)}</text>'
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 24}" text-anchor="end">{_num(x1)}</text>'
    ]
    for i, (label, ps) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        if len(ps) > MAX_POINTS:  # a long run logs 10^5 steps: every k-th, and the last
            ps = [*ps[:: -(-len(ps) // MAX_POINTS)], ps[-1]]
        if ps:
            line = " ".join(xy(x, y) for x, y in ps)
            body.append(f'<polyline points="{line}" fill="none" stroke="{colour}"/>')
            if len(ps) <= 60:
                for x, y in ps:
                    cx, cy = xy(x, y).split(",")
                    body.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
        ly = TOP + 6 + 14 * i
        body.append(
            f'<rect x="{WIDTH - RIGHT - 150}" y="{ly - 8}" width="10" height="10" '
            f'fill="{colour}"/><text x="{WIDTH - RIGHT - 136}" y="{ly + 1}">'
            f"{html.escape(label)}</text>"
        )
    return _frame(name, title, xlabel, "".join(body), y0, y1)


def bar_chart(name: str, title: str, xlabel: str, bars: Sequence[tuple[str, float]]) -> str:
    """An SVG bar chart, one labelled bar per entry (``class="bar"``)."""
    top = max([v for _, v in bars] + [1.0])
    slot = PLOT_W / max(len(bars), 1)
    body = []
    for i, (label, value) in enumerate(bars):
        h = PLOT_H * value / top
        x = LEFT + slot * i
        body.append(
            f'<rect class="bar" x="{x + slot * 0.15:.1f}" y="{TOP + PLOT_H - h:.1f}" '
            f'width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{COLOURS[0]}">'
            f"<title>{html.escape(label)}: {_num(value)}</title></rect>"
            f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">'
            f"{html.escape(label)}</text>"
        )
    return _frame(name, title, xlabel, "".join(body), 0.0, top)


def charts(data: ReportData) -> list[str]:
    """The four charts: training loss, accuracy, accuracy per supervision step, halting."""
    recs = data.records
    per_step = [
        (label, [(float(r["step"]), float(r[key])) for r in data.per_step])
        for label, key in (("exact", "exact_accuracy"), ("token", "accuracy"))
    ]
    labels = [*map(str, range(1, len(data.histogram))), "never"]
    halting = list(zip(labels, map(float, data.histogram), strict=False))  # [] for []
    loss = _points(recs, "train", "lm_loss")
    return [
        line_chart("loss", "training loss", "training step", [("lm_loss", loss)]),
        line_chart(
            "accuracy",
            "accuracy",
            "training step",
            [
                ("eval exact", _points(recs, "eval", "exact_accuracy")),
                ("eval token", _points(recs, "eval", "accuracy")),
                ("train token", _points(recs, "train", "accuracy", need_count=True)),
            ],
            (0.0, 1.0),
        ),
        line_chart(
            "per-step",
            "accuracy after each supervision step",
            "supervision step",
            per_step,
            (0.0, 1.0),
        ),
        bar_chart(
            "halting",
            "first step the halting head says stop",
            "supervision step",
            halting,
        ),
    ]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _script_json(value: Any) -> str:
    """JSON that cannot end its ``<script>`` element early."""
    return json.dumps(value, allow_nan=False).replace("</", "<\\/")


CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1000px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; }
table.facts td { padding: 2px 12px 2px 0; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.chart { border: 1px solid #ddd; background: #fff; font-size: 11px; }
svg.chart .title { font-size: 13px; font-weight: 600; }
svg.chart .grid { stroke: #eee; } svg.chart .axis { stroke: #888; }
svg.chart polyline { stroke-width: 1.5; }
.note { color: #666; font-size: 12px; }
section.trace { border-top: 1px solid #ddd; padding: 8px 0; }
section.trace input[type=range] { width: 280px; vertical-align: middle; }
table.grid { border-collapse: collapse; margin-top: 8px; font: 13px monospace; }
table.grid td { width: 20px; height: 20px; text-align: center; border: 1px solid #ccc;
  white-space: pre; }
table.grid td.given { background: #bbb; font-weight: bold; }
table.grid td.changed { outline: 2px solid #d62728; outline-offset: -3px; }
.legend span { display: inline-block; padding: 0 6px; margin-right: 8px; border: 1px solid #ccc; }
#errors { color: #b00; }
"""

SCRIPT = """
(function () {
  const traces = JSON.parse(document.getElementById("trace-data").textContent);
  function draw(section, trace, index) {
    const st = trace.steps[index];
    const keys = (cells) => new Set(cells.map((rc) => rc[0] + "," + rc[1]));
    const given = keys(st.given), changed = keys(st.changed);
    const table = section.querySelector("table.grid");
    table.replaceChildren();
    st.grid.forEach(function (row, r) {
      const tr = table.insertRow();
      row.forEach(function (v, c) {
        const td = tr.insertCell();
        td.textContent = v in trace.symbols ? trace.symbols[v] : String(v);
        if (given.has(r + "," + c)) td.classList.add("given");
        if (changed.has(r + "," + c)) td.classList.add("changed");
      });
    });
    const conf = st.confidence === null ? "n/a" : st.confidence.toFixed(3);
    const n = st.changed.length;
    section.querySelector(".caption").textContent = "step " + st.step + "/" +
      trace.steps.length + ", confidence " + conf + ", " + n + " cell" +
      (n === 1 ? "" : "s") + " changed";
    section.dataset.shown = String(st.step);
  }
  document.querySelectorAll("section.trace").forEach(function (section, i) {
    const trace = traces[i];
    const slider = section.querySelector("input[type=range]");
    slider.addEventListener("input", function () {
      draw(section, trace, Number(slider.value) - 1);
    });
    let visited = 0;
    for (let s = 1; s <= trace.steps.length; s++) {
      slider.value = String(s);
      slider.dispatchEvent(new Event("input"));
      if (section.dataset.shown === String(s)) visited++;
    }
    section.dataset.visited = String(visited);
  });
  document.body.dataset.status = "ok";
})();
"""

ON_ERROR = """
window.onerror = function (message, source, line) {
  document.getElementById("errors").textContent += message + " (line " + line + ")\\n";
  document.body.dataset.status = "error";
};
"""


def render_report(data: ReportData) -> str:
    """The page as one string (see the module docstring)."""
    esc = html.escape
    drawn = charts(data)
    facts = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in data.facts)
    sections = []
    for i, view in enumerate(data.traces):
        k = len(view.steps)
        sections.append(
            f'<section class="trace" id="trace-{i}" data-steps="{k}"><h3>{esc(view.title)}</h3>'
            f'<label>step <input type="range" min="1" max="{k}" value="{k}" '
            f'aria-label="supervision step"></label> <span class="caption"></span>'
            '<table class="grid"></table></section>'
        )
    trace_json = [
        {
            "symbols": {str(v): s for v, s in view.symbols.items()},
            "steps": [{**st.to_json(), "confidence": _finite(st.confidence)} for st in view.steps],
        }
        for view in data.traces
    ]
    no_traces = "" if data.traces else '<p class="note">no test puzzle to trace</p>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(data.title)}</title><style>{CSS}</style></head>"
        f'<body data-status="loading"><pre id="errors"></pre><script>{ON_ERROR}</script>'
        f'<h1>{esc(data.title)}</h1><table class="facts">{facts}</table>'
        f'<h2>Training</h2><div class="charts">{"".join(drawn[:2])}</div>'
        f'<h2>Supervision steps</h2><div class="charts">{"".join(drawn[2:])}</div>'
        f'<p class="note">{esc(data.evaluation)}</p>'
        '<h2>Traces</h2><p class="legend"><span class="given-key" style="background:#bbb">'
        '<b>given</b></span><span style="outline:2px solid #d62728">changed since the step '
        "before</span>drag the slider to step through the supervision steps</p>"
        f"{''.join(sections)}{no_traces}"
        f'<script type="application/json" id="trace-data">{_script_json(trace_json)}</script>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )
