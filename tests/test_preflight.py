"""Preflight (time and memory before the first step), the offline fail-fast probe and the
default thread count: every estimate from injected rates, so the tests are deterministic."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from trmkit import network, threads
from trmkit.config import load_recipe
from trmkit.errors import ConfigError, SourceError
from trmkit.training import preflight as pf

GIB = 2**30
REPO = Path(__file__).resolve().parent.parent
LAPTOP = pf.Machine(matmul_flops=50e9, available_bytes=16 * GIB)  # injected, not measured
BIG = pf.Machine(matmul_flops=50e9, available_bytes=10_000 * GIB)


def _lines(recipe_name: str, machine: pf.Machine, **kwargs) -> tuple[list[str], pf.Estimate]:
    lines: list[str] = []
    est = pf.preflight(load_recipe(recipe_name, []), machine=machine, echo=lines.append, **kwargs)
    return lines, est


def test_run_time_is_flops_over_the_derated_rate():
    recipe = load_recipe("sudoku-quick", [])
    from trmkit import plugins

    cfg = pf.model_config(recipe, plugins.get_task(recipe.data.task))
    est = pf.estimate("trm", cfg, 128, 624, LAPTOP)
    assert est.step_flops > 0
    assert est.seconds == pytest.approx(624 * est.step_flops / (50e9 * pf.ACHIEVED_FRACTION))
    slower = pf.estimate("trm", cfg, 128, 624, pf.Machine(25e9, None))
    assert slower.seconds == pytest.approx(2 * est.seconds)
    # twice the batch: twice the FLOPs and (nearly) twice the activations
    double = pf.estimate("trm", cfg, 256, 624, LAPTOP)
    assert double.step_flops == 2 * est.step_flops
    assert double.activation_bytes == pytest.approx(2 * est.activation_bytes, rel=1e-6)


def test_paper_sudoku_recipe_says_it_takes_days_and_names_the_cpu_preset():
    lines, est = _lines("sudoku-extreme-mlp", BIG)
    assert est.steps == 65104  # 50k epochs x 1000 puzzles / 768, as the official budget
    assert len(lines) == 1, lines
    line = lines[0]
    assert "days" in line and "--recipe sudoku-quick" in line and "\n" not in line


def test_paper_maze_recipe_names_maze_quick():
    # the hub data is not built here, so the trainer's budget is passed as it would be
    lines, _ = _lines("maze-hard", BIG, steps=65104)
    assert len(lines) == 1 and "--recipe maze-quick" in lines[0] and "days" in lines[0]


def test_maze_hard_without_data_names_maze_quick_before_the_data_step():
    # the budget is unknown until the hub data is built, but one step's cost is not
    lines, est = _lines("maze-hard", BIG)
    assert est.steps is None and est.seconds is None and len(lines) == 1
    per_step = est.step_flops / (BIG.matmul_flops * pf.ACHIEVED_FRACTION)
    assert per_step > pf.SLOW_STEP_SECONDS
    assert f"one step at batch 768 takes about {per_step:.1f} s here" in lines[0]
    assert "--recipe maze-quick" in lines[0] and "\n" not in lines[0]
    fast = pf.Machine(matmul_flops=per_step * BIG.matmul_flops, available_bytes=BIG.available_bytes)
    assert _lines("maze-hard", fast)[0] == []  # a step of at most a second here: no line


@pytest.mark.parametrize(
    ("recipe", "preset"), [("arc-agi-1", "arc-quick"), ("maze-hard", "maze-quick")]
)
def test_every_task_with_a_cpu_preset_names_it_before_its_data(recipe, preset):
    lines, _ = _lines(recipe, BIG)
    assert len(lines) == 1 and f"--recipe {preset}" in lines[0]


@pytest.mark.parametrize("name", ["sudoku-quick", "sudoku-9x9-quick", "maze-quick"])
def test_cpu_presets_pass_quietly(name):
    lines, est = _lines(name, LAPTOP)
    assert lines == []
    assert est.seconds is not None and est.seconds < pf.DAY_SECONDS


def test_memory_line_names_a_batch_that_fits():
    lines, est = _lines("sudoku-extreme-mlp", pf.Machine(1e15, 16 * GIB))
    assert len(lines) == 1, lines  # 1e15 FLOP/s: no time line, only the memory line
    match = re.search(r"--set optim\.global_batch_size=(\d+) fits", lines[0])
    assert match, lines[0]
    fits = int(match.group(1))
    assert 0 < fits < 768
    assert est.step_bytes is not None and est.step_bytes > 16 * GIB
    recipe = load_recipe("sudoku-extreme-mlp", [f"optim.global_batch_size={fits}"])
    from trmkit import plugins

    cfg = pf.model_config(recipe, plugins.get_task(recipe.data.task))
    smaller = pf.estimate("trm", cfg, fits, None, LAPTOP)
    assert smaller.step_bytes is not None and smaller.step_bytes <= pf.MEMORY_HEADROOM * 16 * GIB
    bigger = pf.estimate("trm", cfg, fits + 32, None, LAPTOP)
    assert bigger.step_bytes is not None and bigger.step_bytes > pf.MEMORY_HEADROOM * 16 * GIB


def test_unknown_memory_skips_the_memory_check():
    lines, _ = _lines("sudoku-extreme-mlp", pf.Machine(1e15, None))
    assert lines == []


def test_available_memory_reads_meminfo(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_psutil(name, *args, **kwargs):
        if name == "psutil":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psutil)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683664 kB\nMemAvailable:    2048 kB\n")
    assert pf.available_memory(meminfo) == 2048 * 1024
    assert pf.available_memory(tmp_path / "missing") is None


def test_measured_rate_is_positive_and_quick():
    t0 = time.perf_counter()
    rate = pf.measure_matmul_rate(budget=0.05, n=128)
    assert rate > 0 and time.perf_counter() - t0 < 5


def test_train_cli_runs_preflight_unless_told_not_to(monkeypatch):
    from trmkit.commands import train as train_cmd
    from trmkit.training import trainer

    calls = []

    class Stop(Exception):
        pass

    def fake_trainer(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(trainer, "Trainer", fake_trainer)
    monkeypatch.setattr(train_cmd, "run_preflight", lambda *a, **k: calls.append(a))
    from trmkit.cli import cli

    result = CliRunner().invoke(cli, ["train", "--recipe", "sudoku-quick", "--no-progress"])
    assert isinstance(result.exception, Stop) and len(calls) == 1
    calls.clear()
    result = CliRunner().invoke(cli, ["train", "--recipe", "sudoku-quick", "--no-preflight"])
    assert isinstance(result.exception, Stop) and calls == []


# --------------------------------------------------------------------------- offline


def test_offline_hub_fails_at_once_in_one_line(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    probed = []

    def unreachable(host, port):
        probed.append((host, port))
        return "Network is unreachable"

    monkeypatch.setattr(network, "probe", unreachable)
    with pytest.raises(SourceError) as info:
        network.require_hub("source 'hub' of task 'maze-hard'", "pass --source DIR")
    message = str(info.value)
    assert probed == [("huggingface.co", 443)]
    assert "\n" not in message and "offline" in message and "--source DIR" in message
    assert "HF_HUB_OFFLINE=1" in message


def test_building_hub_data_offline_never_calls_the_downloader(monkeypatch):
    from trmkit import plugins
    from trmkit.data.build import load_raw

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(network, "probe", lambda host, port: "timed out")
    task = plugins.get_task("maze-hard")
    hub = task.sources["hub"]

    def must_not_run(request):
        raise AssertionError("the download started although the probe failed")

    import attrs

    monkeypatch.setitem(task.sources, "hub", attrs.evolve(hub, load=must_not_run))
    t0 = time.perf_counter()
    with pytest.raises(SourceError, match="maze-hard.*offline"):
        load_raw(task, "hub", 0, {})
    assert time.perf_counter() - t0 < 2


def test_hub_offline_mode_and_endpoint(monkeypatch):
    monkeypatch.setattr(network, "probe", lambda host, port: pytest.fail("probed"))
    network.require_hub("x", "y", env={"HF_HUB_OFFLINE": "1"})  # the cache only: no probe
    assert network.hub_endpoint({"HF_ENDPOINT": "http://mirror.local:8080"}) == (
        "mirror.local",
        8080,
    )
    assert network.hub_endpoint({}) == ("huggingface.co", 443)


def test_probe_reports_a_refused_port():
    import socket

    with socket.socket() as s:  # a port nobody listens on: bound, not listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert network.probe("127.0.0.1", port, timeout=1) is not None


# --------------------------------------------------------------------------- threads


def test_thread_choice_respects_explicit_settings():
    assert threads.choose_threads(
        {"TRMKIT_NUM_THREADS": "3", "OMP_NUM_THREADS": "1"}, cores=8
    ) == threads.ThreadChoice(3, "TRMKIT_NUM_THREADS")
    assert threads.choose_threads({"OMP_NUM_THREADS": "2"}, cores=8).threads == 2
    assert threads.choose_threads({}, cores=8) == threads.ThreadChoice(8, "physical cores")
    assert threads.choose_threads({"LOCAL_WORLD_SIZE": "4"}, cores=8).threads == 2
    assert threads.choose_threads({"LOCAL_WORLD_SIZE": "4"}, cores=2).threads == 1
    with pytest.raises(ConfigError, match="TRMKIT_NUM_THREADS"):
        threads.choose_threads({"TRMKIT_NUM_THREADS": "many"}, cores=8)


def test_physical_cores_count_hyperthreads_once(tmp_path):
    for cpu, core in enumerate([0, 1, 0, 1]):  # 4 logical CPUs, 2 cores
        topo = tmp_path / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text("0\n")
        (topo / "core_id").write_text(f"{core}\n")
    assert threads.physical_cores({0, 1, 2, 3}, sysfs=tmp_path) == 2
    assert threads.physical_cores({0}, sysfs=tmp_path) == 1
    assert threads.physical_cores({0, 7}, sysfs=tmp_path) == 2  # no topology: one per CPU


@pytest.mark.parametrize("recipe", sorted((REPO / "tasks").glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_names_a_source_its_task_has(recipe):
    # the ARC paper recipes once named "hub", which only Sudoku and Maze have
    from trmkit import plugins

    loaded = load_recipe(recipe)
    task = plugins.get_task(loaded.data.task)
    assert loaded.data.source is None or loaded.data.source in task.sources, loaded.data.source
