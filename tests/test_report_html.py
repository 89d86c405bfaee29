"""`trmkit report RUN` (docs/reports.md, "The run report"): one self-contained HTML file,
opened in real headless Chromium (its script runs without error, steps every trace's slider
through every step, and the page renders), never fetching anything.

Chromium comes from the system packages (`.ci/run` installs it); where it is absent the
browser tests skip with that reason."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tiny_training import build_tiny_data, one_thread, tiny_trainer

from trmkit.cli import cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)"
)
TRACES = 2
STEPS = 3  # the tiny recipe's halt_max_steps
CELLS = 16  # 4x4 sudoku


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    before = one_thread()
    tmp = tmp_path_factory.mktemp("report")
    data = build_tiny_data(tmp / "data")
    tiny_trainer(tmp, data, overrides=["train.epochs=3"]).run()
    run = tmp / "run"
    result = CliRunner().invoke(cli, ["report", str(run), "--traces", str(TRACES)])
    assert result.exit_code == 0, result.output
    assert result.output == f"report: {run / 'report.html'}\n"
    yield run, run / "report.html"
    torch.set_num_threads(before)


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp / 'profile'}",
            "--virtual-time-budget=5000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_report_is_one_self_contained_file(report):
    run, page = report
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # nothing to fetch
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|\bhref=|@import|url\(", text)
    charts = re.findall(r'<svg class="chart" data-chart="([a-z-]+)"', text)
    assert charts == ["loss", "accuracy", "per-step", "halting"]
    assert text.count('class="bar"') == STEPS + 1  # steps 1..K and "never"
    assert (
        re.findall(r'<section class="trace" id="trace-\d" data-steps="(\d+)">', text)
        == [str(STEPS)] * TRACES
    )
    # the per-step chart comes from the training's evaluation of the newest checkpoint
    assert "eval/step_12/per_step.json (the whole test split)" in text
    data = json.loads(re.search(r'id="trace-data">(.*?)</script>', text, re.S).group(1))
    assert [len(t["steps"]) for t in data] == [STEPS] * TRACES
    assert data[0]["symbols"]["0"] == "." and all(
        len(st["grid"]) == 4 and 0.0 <= st["confidence"] <= 1.0 for st in data[0]["steps"]
    )
    assert sorted(p.name for p in run.iterdir() if "report" in p.name) == ["report.html"]


@needs_chromium
def test_report_runs_in_chromium(report, tmp_path):
    _, page = report
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert '<body data-status="ok">' in dom, dom[:2000]
    assert re.search(r'<pre id="errors">\s*</pre>', dom)
    assert re.findall(r'data-visited="(\d+)"', dom) == [str(STEPS)] * TRACES
    assert re.findall(r'data-shown="(\d+)"', dom) == [str(STEPS)] * TRACES
    tables = re.findall(r'<table class="grid">(.*?)</table>', dom, re.S)
    assert [t.count("<td") for t in tables] == [CELLS] * TRACES
    assert all("given" in t for t in tables)
    captions = re.findall(r'<span class="caption">([^<]*)</span>', dom)
    assert (
        all(
            re.fullmatch(rf"step {STEPS}/{STEPS}, confidence \d\.\d{{3}}, \d+ cells? changed", c)
            for c in captions
        )
        and len(captions) == TRACES
    )

    shot = tmp_path / "report.png"
    _chromium(tmp_path, "--window-size=1000,1600", f"--screenshot={shot}", page.as_uri())
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (1000, 1600)
    # a page of one word screenshots to 8.5 kB at this size, this report to about 100 kB
    assert len(png) > 50_000, len(png)


def test_report_refuses_what_is_not_a_run(tmp_path):
    runner = CliRunner()
    for where, why in ((tmp_path, "has no metrics.jsonl"), (tmp_path / "nope", "is not a dir")):
        result = runner.invoke(cli, ["report", str(where)])
        assert result.exit_code == 1
        assert result.output.startswith(f"Error: {where}: not a run directory ({why}")
        assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_report_computes_per_step_when_the_run_has_no_evaluation(report, tmp_path):
    run, _ = report
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval", "report.html"))
    out = tmp_path / "new" / "elsewhere.html"  # its directory is created
    result = CliRunner().invoke(cli, ["report", str(copy), "--out", str(out), "--traces", "0"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "computed now on the first 32 test rows (no evaluation of step 12 in" in text
    assert "no test puzzle to trace" in text and 'class="trace"' not in text
    assert text.count('class="bar"') == STEPS + 1
    assert not (copy / "report.html").exists()
