"""Run directories: one writer (a lock naming its holder), no file of another run or of the
user replaced, and eval / --resume on the data the run was trained on (docs/errors.md,
"Run directories: one writer, the right data")."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tiny_training import build_tiny_data, one_thread, write_recipe

from trmkit.checkpoint import bundle as ckpt
from trmkit.checkpoint.rundir import LOCK_NAME, lock_run_dir, writer_token
from trmkit.cli import cli
from trmkit.config import RESUME_MAY_CHANGE, load_recipe, resume_mismatch
from trmkit.errors import CheckpointError, RunDirError

TESTS = Path(__file__).parent
ROOT = TESTS.parent


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny store ``sA`` and a 8-step run ``runs/r`` (bundles at 4 and 8) trained from
    ``base`` with the relative ``--data sA``."""
    before = one_thread()
    base = tmp_path_factory.mktemp("runs")
    build_tiny_data(base / "sA")
    recipe = write_recipe(base)
    cwd = os.getcwd()
    os.chdir(base)
    try:
        result = _cli("train", "--no-progress", "--no-preflight", "--recipe", recipe,
                      "--data", "sA", "--out", "runs/r", "--max-steps", 8)  # fmt: skip
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    yield base
    torch.set_num_threads(before)


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


def _copy_run(base: Path, tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "r"
    shutil.copytree(base / "runs" / "r", run)
    return run


# ------------------------------------------------------------ two real processes, one --out

_TRAIN_SCRIPT = """
import sys, time
from pathlib import Path
sys.argv = ["trmkit"]
import trmkit.training.trainer as t
ready, go = Path({ready!r}), Path({go!r})
step = t.Trainer.train_step
def paused(self, batch):
    out = step(self, batch)
    if self.step == 5:  # a checkpoint (step 4) is written; hold here until told
        ready.write_text("at step 5")
        deadline = time.time() + 120
        while not go.exists() and time.time() < deadline:
            time.sleep(0.05)
    return out
t.Trainer.train_step = paused
from trmkit.cli import cli
cli.main({args!r}, prog_name="trmkit", standalone_mode=True)
"""


def _spawn_trainer(tmp_path: Path, data: Path, out: Path, steps: int = 8):
    recipe = write_recipe(tmp_path)
    args = ["train", "--no-progress", "--no-preflight", "--recipe", str(recipe),
            "--data", str(data), "--out", str(out), "--max-steps", str(steps)]  # fmt: skip
    ready, go = tmp_path / "ready", tmp_path / "go"
    script = _TRAIN_SCRIPT.format(ready=str(ready), go=str(go), args=args)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 90
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early: {proc.stdout.read()}")
        assert time.time() < deadline, "the trainer never reached step 5"
        time.sleep(0.05)
    return proc, args, go


def _env():
    path = os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def test_second_process_on_the_same_out_is_refused_naming_the_holder(base, tmp_path):
    out = tmp_path / "shared"
    first, args, go = _spawn_trainer(tmp_path, base / "sA", out)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "trmkit.cli", *args],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        go.write_text("go")
        output, _ = first.communicate(timeout=120)
    finally:
        go.write_text("go")
        if first.poll() is None:
            first.kill()
    lines = (second.stdout + second.stderr).strip().splitlines()
    assert second.returncode == 1 and len(lines) == 1, lines
    assert lines[0].startswith("Error: ") and "in use by another trmkit process" in lines[0]
    assert f"pid {first.pid} " in lines[0] and "choose another --out" in lines[0]
    # the first run finished intact: its own log, its own checkpoints, its final line
    assert first.returncode == 0, output
    assert f"checkpoint: {out / 'checkpoints' / 'step_8'}" in output
    steps = [
        json.loads(line)["step"]
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["split"] == "train"
    ]
    assert steps == list(range(1, 9))
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")] == [4, 8]
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_kill_9_releases_the_lock_and_the_run_resumes(base, tmp_path):
    out = tmp_path / "killed"
    first, args, _ = _spawn_trainer(tmp_path, base / "sA", out)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    # a temporary of the dead writer, and one of a live other writer (our parent process)
    root = out / "checkpoints"
    dead = ckpt.tmp_dir(root, 6, f"{first.pid}@{writer_token().split('@', 1)[1]}")
    dead.mkdir()
    result = _cli(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output and "step 4" in result.output
    assert not dead.exists()
    assert ckpt.latest_checkpoint(root).name == "step_8"


# ------------------------------------------------------------------- fresh runs, eval --out


def test_train_refuses_a_directory_that_is_not_a_run(base, tmp_path):
    mine = tmp_path / "project"
    mine.mkdir()
    for name, text in (("metrics.jsonl", '{"mine": 1}\n'), ("config.json", "{}"),
                       ("curves.png", "png"), ("notes.txt", "x")):  # fmt: skip
        (mine / name).write_text(text)
    before = _snapshot(mine)
    recipe = write_recipe(tmp_path)
    result = _cli("train", "--no-progress", "--no-preflight", "--recipe", recipe,
                  "--data", base / "sA", "--out", mine, "--max-steps", 1)  # fmt: skip
    _one_line_error(result, str(mine), "not empty", "'config.json'", "new --out", "--resume")
    assert _snapshot(mine) == before
    # an existing run with checkpoints still says --resume
    run = _copy_run(base, tmp_path)
    result = _cli("train", "--no-progress", "--no-preflight", "--recipe", recipe,
                  "--data", base / "sA", "--out", run, "--max-steps", 1)  # fmt: skip
    _one_line_error(result, "already holds checkpoints (step_8)", "--resume")
    # a refused start leaves no run directory (nor lock file) behind
    fresh = tmp_path / "fresh"
    result = _cli("train", "--no-progress", "--no-preflight", "--recipe", recipe,
                  "--data", tmp_path / "none", "--out", fresh)  # fmt: skip
    _one_line_error(result, "no such dataset store")
    assert not fresh.exists()


def test_eval_out_is_never_overwritten_without_force(base, tmp_path):
    run = _copy_run(base, tmp_path)
    out = tmp_path / "report"
    out.mkdir()
    (out / "metrics.json").write_text('{"earlier": true}')
    args = ["eval", run, "--data", base / "sA", "--batch-size", 32]
    _one_line_error(_cli(*args, "--out", out), str(out), "not empty", "--force")
    assert (out / "metrics.json").read_text() == '{"earlier": true}'
    forced = _cli(*args, "--out", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert "exact_accuracy" in json.loads((out / "metrics.json").read_text())
    # without --out, a second eval writes beside the first
    assert _cli(*args).exit_code == 0 and _cli(*args).exit_code == 0
    written = sorted(p.name for p in (run / "eval").glob("step_8-cli*"))
    assert written == ["step_8-cli", "step_8-cli-2"]
    # other options: their own directory, named by what differs from the defaults
    assert _cli(*args, "--steps", 2, "--halt", "q").exit_code == 0
    assert (run / "eval" / "step_8-cli-steps2-halt_q" / "metrics.json").is_file()
    options = json.loads((run / "eval" / "step_8-cli-steps2-halt_q" / "options.json").read_text())
    assert (options["steps"], options["halt"], options["select"]) == (2, "q", "vote")


# ----------------------------------------------------------------------------- resume


def _resume(base, run, *extra):
    recipe = write_recipe(base)
    return _cli("train", "--no-progress", "--no-preflight", "--recipe", recipe,
                "--out", run, "--resume", *extra)  # fmt: skip


def test_resume_on_other_data_is_refused(base, tmp_path):
    run = _copy_run(base, tmp_path)
    other = tmp_path / "sB"
    from trmkit import plugins
    from trmkit.data.build import build_dataset

    build_dataset(plugins.get_task("sudoku-4x4"), other, num_aug=2, seed=1,
                  options={"count": "64", "test_count": "32"}, progress=False)  # fmt: skip
    before = _snapshot(run)
    line = _one_line_error(
        _resume(base, run, "--data", other, "--max-steps", 10), str(other), "is not the dataset"
    )
    assert "content hash" in line and "pass --data" in line
    assert _snapshot(run) == before


def test_resume_without_data_uses_the_store_it_was_trained_on(base, tmp_path, monkeypatch):
    run = _copy_run(base, tmp_path)
    monkeypatch.chdir(base)  # the recorded path "sA" is relative to where training ran
    result = _resume(base, run, "--max-steps", 9)
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output and "after 9 steps" in result.output


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--set", "train.compile=true"], ["train.compile is True", "False"]),
        (["--set", "optim.global_batch_size=8"], ["optim.global_batch_size is 8"]),
        (["--set", "train.seed=3"], ["train.seed is 3"]),
        (["--max-steps", 3], ["is at step 8", "--max-steps 3 is below it"]),
        (["--set", "train.max_steps=2"], ["is at step 8", "budget 2"]),
    ],
)
def test_resume_refusals_leave_the_run_as_it_was(base, tmp_path, extra, needles):
    run = _copy_run(base, tmp_path)
    before = _snapshot(run)
    _one_line_error(_resume(base, run, "--data", base / "sA", *extra), "--resume", *needles)
    assert _snapshot(run) == before


def test_only_the_allow_list_may_change_on_resume(tmp_path):
    saved = load_recipe(write_recipe(tmp_path))
    from trmkit.config import recipe_to_dict

    saved_dict = recipe_to_dict(saved)
    for key in sorted(RESUME_MAY_CHANGE):
        value = "false" if key == "train.checkpoint_every_eval" else "7"
        changed = load_recipe(write_recipe(tmp_path), [f"{key}={value}"])
        assert resume_mismatch(saved_dict, changed) is None, key
    for key in ("train.eval_interval", "train.compile", "model.forward_dtype", "optim.lr"):
        value = "true" if key == "train.compile" else '"float32"' if "dtype" in key else "7"
        changed = load_recipe(write_recipe(tmp_path), [f"{key}={value}"])
        assert resume_mismatch(saved_dict, changed) is not None, key


# ------------------------------------------------------------------------ eval's store


def test_eval_refuses_another_store_at_the_recorded_path(base, tmp_path, monkeypatch):
    run = _copy_run(base, tmp_path)
    from trmkit import plugins
    from trmkit.data.build import build_dataset

    build_dataset(plugins.get_task("sudoku-4x4"), tmp_path / "sA", num_aug=2, seed=7,
                  options={"count": "64", "test_count": "32"}, progress=False)  # fmt: skip
    monkeypatch.chdir(tmp_path)
    line = _one_line_error(
        _cli("eval", run, "--out", tmp_path / "ev"), str(tmp_path / "sA"), "not the store"
    )
    assert str(run / "checkpoints" / "step_8") in line and "content hash" in line
    assert not (tmp_path / "ev").exists()


def test_eval_from_another_directory_finds_the_store(base, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _cli("eval", base / "runs" / "r", "--out", tmp_path / "ev", "--batch-size", 32)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ev" / "metrics.json").is_file()


def test_store_content_hash_is_recorded_and_deterministic(base, tmp_path):
    from trmkit.data.store import CONTENT_KEY, open_store

    again = build_tiny_data(tmp_path / "again")
    first = open_store(base / "sA").attrs[CONTENT_KEY]
    assert open_store(again).attrs[CONTENT_KEY] == first and len(first) == 64
    manifest = ckpt.read_manifest(base / "runs" / "r" / "checkpoints" / "step_8")
    assert manifest.dataset.store[CONTENT_KEY] == first


# ------------------------------------------------------------ pruning, temporaries, lock


def test_a_bundle_pruned_while_loading_falls_back_to_the_next(base, tmp_path, monkeypatch):
    run = _copy_run(base, tmp_path)
    once = ckpt._load_bundle_once
    pruned = []

    def pruned_under_us(path, **kwargs):
        if not pruned:  # the trainer prunes (or re-saves) the bundle we just resolved
            pruned.append(Path(path).name)
            ckpt.prune(Path(path))
        return once(path, **kwargs)

    monkeypatch.setattr(ckpt, "_load_bundle_once", pruned_under_us)
    bundle = ckpt.load_bundle(run)
    assert pruned == ["step_8"] and bundle.step == 4
    monkeypatch.undo()
    # a bundle that is still there but lacks its weights is incomplete, not retried
    (run / "checkpoints" / "step_4" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        ckpt.load_bundle(run)


def test_prune_is_one_rename(base, tmp_path, monkeypatch):
    run = _copy_run(base, tmp_path)
    seen = []
    real_rmtree = shutil.rmtree

    def look(path, *args, **kwargs):  # what a reader lists while the files are deleted
        seen.append([s for s, _ in ckpt.list_checkpoints(run / "checkpoints")])
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", look)
    ckpt.prune(run / "checkpoints" / "step_4")
    assert seen == [[8]]
    assert not list((run / "checkpoints").glob(".tmp-*"))


def test_a_writer_removes_only_its_own_or_dead_temporaries(tmp_path):
    host = writer_token().split("@", 1)[1]
    live_other = ckpt.tmp_dir(tmp_path, 3, f"{os.getppid()}@{host}")
    dead = ckpt.tmp_dir(tmp_path, 3, f"{2**22 + 12345}@{host}")
    remote = ckpt.tmp_dir(tmp_path, 3, "42@another-host")
    mine = ckpt.tmp_dir(tmp_path, 2)
    for path in (live_other, dead, remote, mine):
        path.mkdir(parents=True)
    ckpt.begin_write(tmp_path, 5)
    assert live_other.is_dir() and remote.is_dir()
    assert not dead.exists() and not mine.exists()
    assert ckpt.tmp_dir(tmp_path, 5).is_dir()


def test_lock_is_per_process_and_released(tmp_path):
    run = tmp_path / "r"
    first = lock_run_dir(run)
    second = lock_run_dir(run)  # the same process shares it
    holder = json.loads((run / LOCK_NAME).read_text())
    assert holder["pid"] == os.getpid() and holder["since"]
    probe = (
        "import sys; from pathlib import Path; from trmkit.checkpoint.rundir import "
        "lock_run_dir, held_by_another\nprint(held_by_another(Path(sys.argv[1])))\n"
        "try:\n    lock_run_dir(Path(sys.argv[1]))\nexcept Exception as e:\n    print(e)"
    )

    def other_process() -> list[str]:
        done = subprocess.run([sys.executable, "-c", probe, str(run)], env=_env(),
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        return done.stdout.strip().splitlines()

    first.release()
    lines = other_process()
    assert lines[0] == "True" and f"pid {os.getpid()} on host" in lines[1]
    second.release()
    assert other_process() == ["False"]
    with pytest.raises(RunDirError, match="not a directory"):
        lock_run_dir(tmp_path / "r" / LOCK_NAME)
