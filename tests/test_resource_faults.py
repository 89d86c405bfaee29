"""Resources: every request that would exhaust the machine is refused in one line before
anything big is allocated (docs/errors.md, "Resources: bounded before any promise").

Memory sizes are injected (fake cgroup trees, a patched `trmkit.memory.available_memory`) so
the refusals do not depend on the machine running the tests.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from trmkit import memory, textio, threads
from trmkit.cli import cli
from trmkit.errors import CheckpointError, ConfigError, OptionError, SourceError, TrmkitError
from trmkit.inference import policy as pol

GIB = 2**30
ROOT = Path(__file__).resolve().parents[1]


def _one_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


# --------------------------------------------------------------------------- memory reader


def _sources(tmp: Path, proc: str, host_kb: int | None = 8 * 2**20) -> memory.MemorySources:
    meminfo = tmp / "meminfo"
    meminfo.write_text("MemTotal: 1 kB\n" + (f"MemAvailable: {host_kb} kB\n" if host_kb else ""))
    (tmp / "cgroup").write_text(proc)
    return memory.MemorySources(
        meminfo=meminfo, proc_cgroup=tmp / "cgroup", cgroup_root=tmp / "fs", use_psutil=False
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limit_of_the_process_and_its_ancestors(tmp_path):
    src = _sources(tmp_path, "0::/jobs/me\n")
    fs = tmp_path / "fs"
    _write(fs / "jobs" / "me" / "memory.max", "max\n")  # no limit of its own
    _write(fs / "jobs" / "me" / "memory.current", "1000\n")
    _write(fs / "jobs" / "memory.max", f"{400 * 2**20}\n")  # the parent's 400 MiB binds
    _write(fs / "jobs" / "memory.current", f"{100 * 2**20}\n")
    assert memory.cgroup_available(src) == 300 * 2**20
    assert memory.available_memory(src) == 300 * 2**20  # smaller than the host's 8 GiB


def test_cgroup_v1_limit_and_unlimited_values(tmp_path):
    src = _sources(tmp_path, "4:memory:/box\n1:cpu:/\n")
    box = tmp_path / "fs" / "memory" / "box"
    _write(box / "memory.limit_in_bytes", f"{GIB}\n")
    _write(box / "memory.usage_in_bytes", f"{GIB // 4}\n")
    _write(tmp_path / "fs" / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    assert memory.cgroup_available(src) == GIB - GIB // 4
    (box / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # "no limit"
    assert memory.cgroup_available(src) is None
    assert memory.available_memory(src) == 8 * GIB  # the host's MemAvailable


@pytest.mark.parametrize(
    "proc, files",
    [
        ("", {}),  # no /proc/self/cgroup content
        ("garbage without colons\n", {}),
        ("0::/a\n", {"a/memory.max": "lots\n", "a/memory.current": "-5\n"}),
        ("0::/a\n", {"a/memory.max": "\x00\xff\n"}),
        ("0::/../../etc\n", {}),  # a path that climbs is read inside the root only
    ],
)
def test_malformed_cgroup_files_mean_unknown(tmp_path, proc, files):
    src = _sources(tmp_path, proc, host_kb=None)
    for name, text in files.items():
        _write(tmp_path / "fs" / name, text)
    assert memory.cgroup_available(src) is None
    assert memory.available_memory(src) is None


def test_a_cgroup_over_its_limit_has_no_room(tmp_path):
    src = _sources(tmp_path, "0::/\n")
    _write(tmp_path / "fs" / "memory.max", "100\n")
    _write(tmp_path / "fs" / "memory.current", "500\n")
    assert memory.available_memory(src) == 0


# --------------------------------------------------------------------------- train preflight


def _fake_memory(monkeypatch, n: int | None) -> None:
    """This process may use ``n`` bytes, and trains on the CPU (where the preflight refuses)."""
    monkeypatch.setattr(memory, "available_memory", lambda sources=None: n)
    monkeypatch.setattr("trmkit.training.preflight.runs_on_cpu", lambda: True)


class Stop(Exception):
    """Raised by a patched trainer: the command got past the preflight."""


@pytest.fixture
def no_training(monkeypatch):
    """The trainer must never be reached: the dataset build and the model would start."""
    from trmkit.training import trainer

    seen: list[dict] = []

    def refuse(*args, **kwargs):
        seen.append(kwargs)
        raise Stop

    monkeypatch.setattr(trainer, "Trainer", refuse)
    return seen


def test_a_step_that_does_not_fit_is_refused_before_the_data(monkeypatch, tmp_path, no_training):
    _fake_memory(monkeypatch, 23 * GIB)
    (tmp_path / "mazes").mkdir()
    out = tmp_path / "run"
    args = ["train", "--task", "maze", "--set", f"data.source={tmp_path / 'mazes'}"]
    line = _one_line(CliRunner().invoke(cli, [*args, "--out", str(out)]))
    assert line.startswith("Error: preflight: one training step at batch 768 needs about")
    assert "23.0 GiB" in line and "--set optim.global_batch_size=" in line
    assert "--recipe maze-quick" in line and "--no-preflight" in line
    assert no_training == [] and not out.exists()
    # --no-preflight starts anyway (and tells the trainer not to check either)
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--no-preflight"])
    assert isinstance(result.exception, Stop)
    assert no_training[-1]["check_memory"] is False


def test_a_model_too_large_for_any_batch_is_refused(monkeypatch, no_training):
    _fake_memory(monkeypatch, 64 * 2**20)
    line = _one_line(CliRunner().invoke(cli, ["train", "--recipe", "maze-hard"]))
    assert "not even a batch of 1 fits" in line and "--recipe maze-quick" in line
    assert no_training == []


def test_a_model_whose_tensor_size_overflows_is_one_line(monkeypatch, no_training):
    _fake_memory(monkeypatch, 8 * GIB)
    # the largest hidden size the config allows (2**31 - 1) still overflows a weight's storage
    args = ["train", "--recipe", "sudoku-quick", "--set", "model.hidden_size=2147483647"]
    line = _one_line(CliRunner().invoke(cli, args))
    assert line == (
        "Error: preflight: model 'trm' has a tensor too large to exist (Storage size "
        "calculation overflowed with sizes=[11453246464, 2147483647]); choose a smaller model"
    )
    assert no_training == []


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (["model.l_cycles=65"], "field model.l_cycles is 65, more than the 64 allowed"),
        (["model.l_layers=100000"], "field model.l_layers is 100000, more than the 64 allowed"),
        (
            ["model.halt_max_steps=256", "model.h_cycles=8", "model.l_cycles=16"],
            "fields model.halt_max_steps x h_cycles x l_cycles ask for 32768 recursions per "
            "puzzle, more than the 16384 allowed",
        ),
    ],
)
def test_a_recipe_whose_checkpoints_could_not_be_loaded_is_refused(
    monkeypatch, no_training, settings, problem
):
    """The bounds a loaded manifest must keep (docs/errors.md, "Bundles") hold for training
    too: was a run that trained (l_layers=1e5: minutes building the model) and wrote
    checkpoints that eval, solve and --resume then refused."""
    _fake_memory(monkeypatch, 8 * GIB)
    args = ["train", "--recipe", "sudoku-quick"] + [a for s in settings for a in ("--set", s)]
    line = _one_line(CliRunner().invoke(cli, args))
    assert line == (
        f"Error: recipe 'sudoku-quick': {problem} (a checkpoint asking for more is refused "
        "when loaded); choose a smaller value"
    )
    assert no_training == []


def test_a_recipe_that_fits_reaches_the_trainer(monkeypatch, no_training):
    _fake_memory(monkeypatch, 8 * GIB)
    monkeypatch.setattr("trmkit.training.preflight.measure_matmul_rate", lambda *a, **k: 50e9)
    result = CliRunner().invoke(cli, ["train", "--recipe", "sudoku-quick", "--no-progress"])
    assert isinstance(result.exception, Stop), result.output
    assert no_training[-1]["check_memory"] is True


def test_trainer_refuses_before_allocating_the_model_once_ids_are_known(monkeypatch, tmp_path):
    from tiny_training import build_tiny_data, tiny_trainer

    from trmkit.training import trainer

    data = build_tiny_data(tmp_path / "data")
    _fake_memory(monkeypatch, 2**20)  # 1 MiB: the tiny model's state alone is more
    monkeypatch.setattr(trainer, "build_model", lambda *a, **k: pytest.fail("allocated"))
    with pytest.raises(ConfigError, match="preflight: one training step") as info:
        tiny_trainer(tmp_path, data, check_memory=True, cpu=True)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- threads


def test_thread_counts_are_bounded_by_the_cpus():
    assert threads.max_threads(2) == 2 * threads.THREADS_PER_CPU
    assert threads.max_threads(10**6) == threads.THREAD_CAP
    ok = threads.choose_threads({"TRMKIT_NUM_THREADS": "8"}, cores=2, cpus=2)
    assert ok.threads == 8
    for name in ("TRMKIT_NUM_THREADS", "OMP_NUM_THREADS"):
        with pytest.raises(ConfigError) as info:
            threads.choose_threads({name: "9"}, cores=2, cpus=2)
        message = str(info.value)
        assert message.startswith(f"{name}=9: more than the 8 threads") and "\n" not in message
    with pytest.raises(ConfigError, match="positive whole number"):
        threads.choose_threads({"TRMKIT_NUM_THREADS": "9" * 5000}, cores=2, cpus=2)


def test_huge_thread_count_is_one_line_before_any_work(monkeypatch, no_training):
    monkeypatch.setenv("TRMKIT_NUM_THREADS", "100000")
    line = _one_line(CliRunner().invoke(cli, ["train", "--recipe", "sudoku-quick"]))
    assert "TRMKIT_NUM_THREADS=100000" in line and f"{threads.max_threads()} threads" in line
    assert no_training == []


# --------------------------------------------------------------------------- eval / solve


@pytest.mark.parametrize(
    "command, option, value, bound",
    [
        ("eval", "--steps", "1000000000", pol.MAX_STEPS),
        ("eval", "--samples", "100000000", pol.MAX_SAMPLES),
        ("solve", "--steps", "1000000000", pol.MAX_STEPS),
        ("solve", "--samples", "100000000", pol.MAX_SAMPLES),
        ("eval", "--sweep-steps", "1,2,99999", pol.MAX_STEPS),
        ("eval", "--sweep-samples", "1,4000", pol.MAX_SAMPLES),
    ],
)
def test_depth_and_breadth_have_hard_bounds(tmp_path, command, option, value, bound):
    args = [command, str(tmp_path), *(["[[1]]"] if command == "solve" else [])]
    if option.startswith("--sweep"):
        args.append("--sweep")
    line = _one_line(CliRunner().invoke(cli, [*args, option, value]))
    shown = value.rsplit(",", 1)[-1]
    assert f"{option} {shown}" in line and str(bound) in line


def test_the_engine_record_must_fit_the_memory(monkeypatch):
    pol.check_record_fits(16, 8, 32, 900, available=GIB)  # 16 x 8 x 32 x 3.6 KB: fits
    with pytest.raises(OptionError) as info:
        pol.check_record_fits(1024, 1024, 1, 900, available=GIB)
    message = str(info.value)
    assert message.startswith("--steps 1024 x --samples 1024") and "\n" not in message
    fits = int(message.split("; --steps ")[1].split()[0])
    assert 1 <= fits < 1024
    assert pol.record_bytes(fits, 1024, 1, 900) <= pol.MEMORY_SHARE * GIB
    assert pol.record_bytes(fits + 1, 1024, 1, 900) > pol.MEMORY_SHARE * GIB
    with pytest.raises(OptionError, match=r"at most --samples \d+ fit at --steps 1$"):
        pol.check_record_fits(1, 1024, 200, 900, available=GIB)
    with pytest.raises(OptionError, match="choose fewer --steps and --samples"):
        pol.check_record_fits(1024, 1, 10**6, 900, available=GIB)
    monkeypatch.setattr(pol, "available_memory", lambda: None)
    pol.check_record_fits(10**6, 10**6, 10**6, 900)  # memory unknown: no check


# --------------------------------------------------------------------------- JSON guard


def _reference_depth(text: str) -> int:
    def depth(o):
        if isinstance(o, list):
            return 1 + max((depth(x) for x in o), default=0)
        if isinstance(o, dict):
            return 1 + max((depth(x) for x in o.values()), default=0)
        return 0

    return depth(json.loads(text))


def _random_json(rng: random.Random, level: int = 0) -> str:
    pieces = ["a", "\\\\", '\\"', "[", "]", "{", "}", "é", "\\n", "\\u00e9", "\\\\\\\\"]
    r = rng.random()
    if level > 7 or r < 0.3:
        return '"' + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6))) + '"'
    if r < 0.65:
        items = ",".join(_random_json(rng, level + 1) for _ in range(rng.randint(0, 3)))
        return f"[{items}]"
    items = ",".join(f'"k{i}":{_random_json(rng, level + 1)}' for i in range(rng.randint(0, 3)))
    return f"{{{items}}}"


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, textio.DEPTH_SCAN_CHUNK])
def test_depth_scan_matches_the_parser_across_chunk_boundaries(monkeypatch, chunk):
    monkeypatch.setattr(textio, "DEPTH_SCAN_CHUNK", chunk)
    rng = random.Random(chunk)
    for _ in range(150):
        text = _random_json(rng)
        assert textio.json_depth(text) == _reference_depth(text), text
        assert textio.json_depth(text.encode()) == _reference_depth(text), text


def test_depth_scan_memory_does_not_grow_with_one_long_string():
    text = '{"a": [[1]], "s": "' + "x" * (16 * 10**6) + '\\"[[[["}'
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        depth = textio.json_depth(text)
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert depth == 3  # { [[ ; the escaped quote keeps "[[[[" inside the string
    # the regex pre-scan took ~120 bytes per byte here (1.9 GB); the chunked scan ~20 MiB
    assert peak < 64 * 2**20, peak
    assert seconds < 10


def test_deep_json_is_still_refused_before_parsing():
    with pytest.raises(TrmkitError, match="nested 65 levels deep"):
        textio.loads_json("[" * 65 + "]" * 65, "x.json")
    assert textio.loads_json('["[[[[", "\\\\", {"k": [1]}]', "x.json")[2] == {"k": [1]}


# --------------------------------------------------------------------------- special files


def _blocks_not(fn, seconds: float = 10.0):
    """Run ``fn`` in a daemon thread; fail if it has not returned within ``seconds``."""
    box: dict[str, object] = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "blocked on a FIFO"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_by_the_text_boundary(tmp_path):
    fifo = tmp_path / "task.json"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="task.json: is a pipe, socket or device"):
        _blocks_not(lambda: textio.read_json(fifo, error=SourceError))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("task, name", [("arc-agi-1", "b.json"), ("sudoku-extreme", "train.csv")])
def test_a_fifo_in_a_source_directory_is_refused(tmp_path, task, name):
    src = tmp_path / "src"
    src.mkdir()
    task_json = {"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]]}]}
    (src / "a.json").write_text(json.dumps(task_json))
    os.mkfifo(src / name)
    out = tmp_path / "store"
    args = ["build", "--task", task, "--source", str(src), "--out", str(out), "--no-progress"]
    result = _blocks_not(lambda: CliRunner().invoke(cli, args), seconds=30)
    line = _one_line(result)
    assert f"{name}: is a pipe, socket or device" in line
    assert not out.exists()


# --------------------------------------------------------------------------- YAML import

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(9)
)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("arch: {name: x}\n" + BOMB, "expand to more than 1,000,000 nodes"),
        ("arch: &a {name: x, self: *a}\n", "alias *a refers to a node that contains it"),
        (
            "arch: {name: x}\n"
            + "".join(f"k{i}: *a\n" for i in range(102)).replace("k0: *a", "k0: &a 1"),
            "more than 100 YAML aliases",
        ),
    ],
)
def test_yaml_alias_bombs_are_one_line(tmp_path, text, problem):
    from trmkit.interop.official import read_config

    (tmp_path / "all_config.yaml").write_text(text)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        read_config(tmp_path)
    message = str(info.value)
    assert time.perf_counter() - t0 < 5
    assert message.startswith(str(tmp_path / "all_config.yaml")) and problem in message
    assert "\n" not in message


def test_yaml_with_a_few_plain_aliases_still_loads(tmp_path):
    from trmkit.interop.official import read_config

    (tmp_path / "all_config.yaml").write_text("arch: &a {name: x}\ncopy: *a\n")
    assert read_config(tmp_path)["copy"] == {"name": "x"}


# --------------------------------------------------------------------------- peak memory

PEAK_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from click.testing import CliRunner
    from trmkit import memory
    from trmkit.cli import cli

    from trmkit.training import preflight

    memory.available_memory = lambda sources=None: 23 * 2**30
    preflight.runs_on_cpu = lambda: True
    tmp = sys.argv[1]
    cases = [
        ["train", "--task", "maze", "--set", f"data.source={tmp}/empty", "--out", f"{tmp}/r"],
        ["eval", tmp, "--steps", "1000000000"],
        # the model is built on the meta device: was 1.4 GB of zeros for ACT's state names
        ["train", "--recipe", "sudoku-quick", "--set", "model.hidden_size=10000000"],
        ["solve", tmp, "[[1]]", "--samples", "100000000"],
        ["build", "--task", "arc-agi-1", "--source", f"{tmp}/long.json", "--out", f"{tmp}/s"],
    ]
    for args in cases:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and result.output.startswith("Error: "), result.output
        print(result.output.strip()[:60])
    print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


def test_each_refusal_stays_under_a_gigabyte(tmp_path):
    (tmp_path / "empty").mkdir()
    # a 60 MB ARC file with one long string: valid JSON, refused as a task
    (tmp_path / "long.json").write_text(
        '{"train": [], "test": [], "x": "' + "a" * 60_000_000 + '"}'
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}"}
    env.pop("TRMKIT_NUM_THREADS", None)
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    peak_kib = int(proc.stdout.split("PEAK")[1])
    assert peak_kib < 2**20, f"peak RSS {peak_kib / 2**20:.2f} GiB"
