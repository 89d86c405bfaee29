"""`trmkit compare` (issue 20): the interval maths pinned to hand-computed values, the wall
clock over resumed attempts, the spec's refusals, and a tiny comparison of two variants x 2
seeds on the 4x4-sudoku recipe of tests/tiny_training.py: trained two at a time, extended
from 1 seed to 2 with one run "killed" (its final checkpoint removed) and resumed, the
finished run skipped, a rerun training nothing, bad input refused with one line and nothing
of the comparison changed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_training import write_recipe

from trmkit.cli import cli
from trmkit.comparison.runner import run_state, timeline
from trmkit.comparison.spec import (
    VariantArg,
    default_labels,
    spec_difference,
    variant_overrides,
)
from trmkit.errors import OptionError
from trmkit.stats import (
    T95,
    exact_interval_fields,
    mean_interval,
    paired_difference,
    t_quantile_95,
    wilson,
)

# ----------------------------------------------------------------------------- stats


def test_wilson_matches_hand_computed_intervals():
    # 9/10: center (0.9 + z^2/20) / (1 + z^2/10), half z sqrt(0.009 + z^2/400) / (1 + z^2/10)
    ci = wilson(9, 10)
    assert ci.value == 0.9
    assert ci.low == pytest.approx(0.59585, abs=1e-5)
    assert ci.high == pytest.approx(0.98212, abs=1e-5)
    zero, full = wilson(0, 10), wilson(10, 10)
    assert zero.low == 0.0 and zero.high == pytest.approx(0.27753, abs=1e-5)
    assert full.low == pytest.approx(0.72247, abs=1e-5) and full.high == 1.0
    half = wilson(150, 300)  # symmetric about 0.5
    assert half.low + half.high == pytest.approx(1.0)
    assert half.high == pytest.approx(0.55622, abs=1e-5)  # 0.5 + 0.056220


def test_t_quantiles_table_and_expansion():
    assert t_quantile_95(1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile_95(2) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile_95(10) == pytest.approx(2.2281, abs=1e-4)
    assert t_quantile_95(30) == pytest.approx(2.0423, abs=1e-4)
    assert t_quantile_95(40) == pytest.approx(2.0211, abs=1e-4)
    assert t_quantile_95(60) == pytest.approx(2.0003, abs=1e-4)
    assert t_quantile_95(120) == pytest.approx(1.9799, abs=1e-4)
    assert list(T95) == sorted(T95, reverse=True)
    with pytest.raises(ValueError):
        t_quantile_95(0)


def test_mean_and_paired_intervals_by_hand():
    one = mean_interval([0.4])
    assert (one.value, one.low, one.high) == (0.4, None, None)
    two = mean_interval([0.5, 0.7])  # sd 0.1414, se 0.1, t(1) 12.7062
    assert two.value == pytest.approx(0.6)
    assert (two.low, two.high) == pytest.approx((0.6 - 1.270620, 0.6 + 1.270620), abs=1e-6)
    three = mean_interval([1.0, 2.0, 3.0])  # sd 1, se 1/sqrt 3, t(2) 4.302653
    assert (three.low, three.high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    diff = paired_difference([0.5, 0.7], [0.8, 0.9])  # d = 0.3, 0.2: se 0.05
    assert diff.value == pytest.approx(0.25)
    assert (diff.low, diff.high) == pytest.approx((0.25 - 0.635310, 0.25 + 0.635310), abs=1e-6)
    assert not diff.excludes(0.0)
    assert paired_difference([0.1, 0.2, 0.1], [0.5, 0.6, 0.55]).excludes(0.0)


def test_eval_interval_fields():
    fields = exact_interval_fields({"exact_accuracy": 0.9, "count": 10})
    assert fields["exact_accuracy_ci95_low"] == pytest.approx(0.59585, abs=1e-5)
    assert exact_interval_fields({"exact_accuracy": 0.9}) == {}


# ----------------------------------------------------------------------------- wall clock


def test_timeline_over_resumed_attempts():
    straight = [{"attempt": 1, "from_step": 0}, {"step": 4, "seconds": 10.0}]
    straight += [{"step": 8, "seconds": 20.0}]
    assert timeline(straight) == ({4: 10.0, 8: 20.0}, False)
    # killed after step 8, resumed from the step-4 checkpoint: the killed time is not counted
    resumed = [*straight, {"attempt": 2, "from_step": 4}, {"step": 8, "seconds": 7.0}]
    assert timeline(resumed) == ({4: 10.0, 8: 17.0}, False)
    # resumed from step 6 (a time checkpoint between evaluations): estimated from the rate
    between = [*straight[:2], {"attempt": 2, "from_step": 6}, {"step": 8, "seconds": 4.0}]
    times, estimated = timeline(between)
    assert times == {4: 10.0, 8: pytest.approx(15.0 + 4.0)} and estimated
    # nothing timed before the resume step: this attempt's own rate
    blind = [{"attempt": 1, "from_step": 0}, {"attempt": 2, "from_step": 2}]
    times, estimated = timeline([*blind, {"step": 4, "seconds": 6.0}])
    assert times == {4: pytest.approx(12.0)} and estimated


# ----------------------------------------------------------------------------- variants


def test_variant_labels_and_overrides():
    args = [VariantArg.parse(t) for t in ("maze-quick", "maze-quick", "x=sudoku-quick")]
    assert [a.label for a in args] == [None, None, "x"]
    labels = default_labels(args)
    assert labels == ["maze-quick-1", "maze-quick-2", "x"]
    sets = variant_overrides(labels, ["optim.lr=1e-3"], [("2", "model.halt_max_steps=8")])
    assert sets == [
        ["optim.lr=1e-3"],
        ["optim.lr=1e-3", "model.halt_max_steps=8"],
        ["optim.lr=1e-3"],
    ]
    assert variant_overrides(labels, [], [("x", "optim.lr=2")])[2] == ["optim.lr=2"]
    with pytest.raises(OptionError, match="--set-for y"):
        variant_overrides(labels, [], [("y", "optim.lr=2")])
    with pytest.raises(OptionError, match="two variants are labelled"):
        default_labels([VariantArg("a", "r1"), VariantArg("a", "r2")])


def test_spec_difference_names_what_differs():
    def spec(lr=1e-3, budget=None, labels=("a", "b"), sha="abc", seeds=2):
        variants = [
            {"label": x, "resolved": {"data": {}, "model": {}, "optim": {"lr": lr}, "train": {}}}
            for x in labels
        ]
        return {
            "format": 1,
            "task": "t",
            "budget_steps": budget,
            "seeds": seeds,
            "variants": variants,
            "data": {"test": {"sha256": sha}},
        }

    assert spec_difference(spec(), spec(seeds=5), data=True) is None  # more seeds: same one
    assert "optim.lr" in spec_difference(spec(), spec(lr=2e-3), data=True)
    assert "--budget-steps 5" in spec_difference(spec(), spec(budget=5), data=True)
    assert "variants a, b there, a here" in spec_difference(spec(), spec(labels=("a",)), True)
    assert spec_difference(spec(), spec(sha="def"), data=False) is None
    assert "content hash" in spec_difference(spec(), spec(sha="def"), data=True)


# ----------------------------------------------------------------------------- end to end


def _compare(*args):
    return CliRunner().invoke(cli, ["compare", *map(str, args)])


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """Seeds 1, then b's run "killed" (final checkpoint gone), then seeds 2: the outputs."""
    tmp = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRMKIT_CACHE", str(tmp / "cache"))
        mp.setenv("OMP_NUM_THREADS", "1")
        recipe = write_recipe(tmp)
        out = tmp / "cmp"
        base = ["--recipe", f"a={recipe}", "--recipe", f"b={recipe}"]
        base += ["--set-for", "b", "optim.lr=3e-3", "--out", out, "--jobs", 2]
        first = _compare(*base, "--seeds", 1)
        assert first.exit_code == 0, first.output
        first_report = json.loads((out / "compare.json").read_text())
        # a kill of b's run after its step-4 checkpoint: its final bundle never written
        import shutil

        shutil.rmtree(out / "b" / "seed-0" / "checkpoints" / "step_8")
        a0 = out / "a" / "seed-0"
        kept = _snapshot(a0)
        second = _compare(*base, "--seeds", 2)
        assert second.exit_code == 0, second.output
        third = _compare(*base, "--seeds", 2)
        assert third.exit_code == 0, third.output
        yield {
            "tmp": tmp,
            "out": out,
            "recipe": recipe,
            "base": base,
            "first": first,
            "first_report": first_report,
            "second": second,
            "third": third,
            "a0_before": kept,
        }


def test_runs_are_normal_run_directories_and_the_report_has_intervals(compared):
    out = compared["out"]
    for label in ("a", "b"):
        for seed in (0, 1):
            run = out / label / f"seed-{seed}"
            assert run_state(run) == ("finished", 8)
            config = json.loads((run / "config.json").read_text())
            assert config["recipe"]["train"]["seed"] == seed
            assert config["total_steps"] == 8
    assert json.loads((out / "b" / "seed-0" / "config.json").read_text())["recipe"]["optim"][
        "lr"
    ] == pytest.approx(3e-3)
    report = json.loads((out / "compare.json").read_text())
    assert [v["label"] for v in report["variants"]] == ["a", "b"]
    for v in report["variants"]:
        assert v["seeds"] == [0, 1] and v["steps"] == [8]
        assert v["exact_accuracy"]["low"] is not None and v["exact_accuracy"]["n"] == 2
        assert v["parameters"] > 0 and v["train_flops_per_step"] > 0
        for r in v["runs"]:
            lo, hi = r["exact_accuracy_wilson95"]
            assert r["count"] == 32 and 0 <= lo <= r["exact_accuracy"] <= hi <= 1
            assert r["minutes"] is not None and r["minutes"] > 0
            assert [c["step"] for c in r["curve"]] == [4, 8]
    (paired,) = report["paired"]
    assert (paired["a"], paired["b"], paired["seeds"]) == ("a", "b", [0, 1])
    diff = [
        b["accuracy"] - a["accuracy"]
        for a, b in zip(report["variants"][0]["runs"], report["variants"][1]["runs"], strict=True)
    ]
    assert paired["accuracy"]["value"] == pytest.approx(sum(diff) / 2)
    md = (out / "compare.md").read_text()
    assert "| a |" in md and "Paired difference" in md and "b - a" in md
    assert (out / "compare.png").stat().st_size > 0
    spec = json.loads((out / "compare-spec.json").read_text())
    assert spec["seeds"] == 2 and spec["data"]["test"]["examples"] == 32


def test_resume_skips_finished_runs_and_resumes_the_killed_one(compared):
    out, second = compared["out"], compared["second"]
    assert "1 run(s) finished, 3 to train, 2 at a time" in second.output
    assert "[b seed 0] resuming from step 4" in second.output
    assert "[a seed 0]" not in second.output  # finished: not started again
    assert _snapshot(out / "a" / "seed-0") == compared["a0_before"]
    log = (out / "b" / "seed-0.compare" / "compare.log").read_text()
    assert "resumed from" in log and "(step 4)" in log
    timing = [json.loads(x) for x in (out / "b" / "seed-0.compare" / "compare-timing.jsonl").open()]
    assert [t["from_step"] for t in timing if "attempt" in t] == [0, 4]
    # the resumed run's result equals the first, uninterrupted one (exact resume)
    before = compared["first_report"]["variants"][1]["runs"][0]
    after = json.loads((out / "compare.json").read_text())["variants"][1]["runs"][0]
    assert after["exact_accuracy"] == before["exact_accuracy"]
    assert after["accuracy"] == before["accuracy"]
    third = compared["third"]
    assert "4 run(s) finished, 0 to train" in third.output
    assert "training" not in third.output.replace("to train", "")


def _other_store(tmp: Path) -> Path:
    from trmkit import plugins
    from trmkit.data.build import build_dataset

    path = tmp / "other-store"
    if not path.exists():
        build_dataset(
            plugins.get_task("sudoku-4x4"),
            path,
            num_aug=2,
            seed=1,
            options={"count": "64", "test_count": "32"},
            progress=False,
        )
    return path


BAD = {
    "seeds 0": (["--seeds", "0"], "--seeds 0"),
    "seeds not a number": (["--seeds", "two"], "--seeds two"),
    "budget 0": (["--budget-steps", "0"], "--budget-steps 0"),
    "budget negative": (["--budget-steps", "-5"], "--budget-steps -5"),
    "jobs 0": (["--jobs", "0"], "--jobs 0"),
    "unknown key": (["--set-for", "b", "model.no_such_key=1"], "model.no_such_key"),
    "unknown variant": (["--set-for", "c", "optim.lr=1"], "--set-for c"),
    "seed set by hand": (["--set", "train.seed=4"], "train.seed"),
    "another comparison": (["--set-for", "b", "optim.lr=4e-3"], "optim.lr is 0.003 there"),
    "another budget": (["--budget-steps", "6"], "--budget-steps 6 here"),
    "data of another variant": (["--set-for", "b", "data.seed=3"], "data.seed is 3"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_changes_nothing(compared, case, monkeypatch):
    monkeypatch.setenv("TRMKIT_CACHE", str(compared["tmp"] / "cache"))
    args, culprit = BAD[case]
    out = compared["out"]
    before = _snapshot(out)
    line = _one_line(_compare(*compared["base"], "--seeds", 2, *args))
    assert culprit in line, line
    assert _snapshot(out) == before


def test_refusals_of_recipes_tasks_directories_and_data(compared, tmp_path, monkeypatch):
    monkeypatch.setenv("TRMKIT_CACHE", str(compared["tmp"] / "cache"))
    out, recipe = compared["out"], compared["recipe"]
    before = _snapshot(out)
    line = _one_line(_compare("--recipe", "no-such-recipe", "--out", tmp_path / "x"))
    assert "no-such-recipe" in line
    line = _one_line(
        _compare("--recipe", f"a={recipe}", "--recipe", "b=sudoku-quick", "--out", tmp_path / "y")
    )
    assert "trains task" in line
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    line = _one_line(_compare("--recipe", f"a={recipe}", "--out", tmp_path / "busy"))
    assert "not a comparison" in line
    # the same comparison on a test split with other contents
    other = _other_store(compared["tmp"])
    line = _one_line(_compare(*compared["base"], "--seeds", 2, "--data", other))
    assert "content hash" in line
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert _snapshot(out) == before


def test_a_run_still_training_from_a_killed_compare_is_refused(compared, monkeypatch):
    monkeypatch.setenv("TRMKIT_CACHE", str(compared["tmp"] / "cache"))
    run = compared["out"] / "a" / "seed-1"
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(run)])
    try:
        (run.with_name("seed-1.compare") / ".compare-pid").write_text(f"{orphan.pid}\n")
        time.sleep(0.2)
        line = _one_line(_compare(*compared["base"], "--seeds", 2))
        assert f"process {orphan.pid}" in line and str(run) in line
    finally:
        orphan.kill()
        orphan.wait()
        (run.with_name("seed-1.compare") / ".compare-pid").unlink()


def test_eval_prints_and_writes_the_wilson_interval(compared, tmp_path):
    out = tmp_path / "ev"
    result = CliRunner().invoke(cli, ["eval", str(compared["out"] / "a" / "seed-0"), "--out", out])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    low, high = metrics["exact_accuracy_ci95_low"], metrics["exact_accuracy_ci95_high"]
    expected = wilson(round(metrics["exact_accuracy"] * 32), 32)
    assert (low, high) == pytest.approx((expected.low, expected.high))
    assert 0 <= low <= metrics["exact_accuracy"] <= high <= 1
    assert f"[{low:.4f}, {high:.4f}] Wilson 95% of 32" in result.output


def test_sweep_overlay_plots_each_runs_cost_curve(tmp_path):
    from trmkit.comparison.report import best_within_budget, plot_sweeps

    points = [
        {"forward_passes": 4.0, "exact_accuracy": 0.5},
        {"forward_passes": 1.0, "exact_accuracy": 0.2},
        {"forward_passes": 2.0, "exact_accuracy": 0.1},
        {"forward_passes": 4.0, "exact_accuracy": 0.6},
    ]
    assert best_within_budget(points) == ([1.0, 2.0, 4.0], [0.2, 0.2, 0.6])
    run = tmp_path / "a" / "seed-0"
    (run / "eval" / "compare-sweep").mkdir(parents=True)
    (run / "eval" / "compare-sweep" / "sweep.json").write_text(json.dumps({"points": points}))
    report = {"variants": [{"label": "a", "runs": [{"seed": 0, "run_dir": str(run)}]}]}
    assert plot_sweeps(report, tmp_path / "compare-sweep.png")
    assert (tmp_path / "compare-sweep.png").stat().st_size > 0
    report["variants"][0]["runs"][0]["run_dir"] = str(tmp_path / "none")
    assert not plot_sweeps(report, tmp_path / "nothing.png")


def test_seed_intervals_stay_within_what_an_accuracy_can_be():
    from trmkit.stats import mean_interval

    wide = mean_interval([0.487, 0.613])  # two seeds: t = 12.71
    assert wide.low is not None and wide.low < 0 and wide.high is not None and wide.high > 1
    cut = wide.clipped(0.0, 1.0)
    assert (cut.value, cut.low, cut.high, cut.n) == (wide.value, 0.0, 1.0, 2)
    assert mean_interval([0.5]).clipped(0.0, 1.0).low is None  # one seed: no spread to cut
