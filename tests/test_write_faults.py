"""Faults at the write boundaries (docs/errors.md, "Write boundaries"): a full disk, a
read-only place, a file or a dangling link in the way, a name too long. Each is one line
naming the place, exit 1, nothing half-written left, and refused before long work.

ENOSPC and EROFS are real where the machine lets a test mount a small tmpfs (root on
Linux); elsewhere the same paths run with the error injected where the OS would raise it."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from trmkit.cli import cli
from trmkit.oserrors import (
    WriteError,
    check_writable_dir,
    describe_os_error,
    find_os_error,
    writing,
)


def _mount_tmpfs(where: Path, options: str) -> bool:
    """TRMKIT_TEST_NO_MOUNT=1 runs the injected variants where mounting would work."""
    if sys.platform != "linux" or shutil.which("mount") is None:
        return False
    if os.environ.get("TRMKIT_TEST_NO_MOUNT") == "1":
        return False
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        timeout=20,
    )
    return proc.returncode == 0


@pytest.fixture
def small_fs(tmp_path) -> Iterator[Path | None]:
    """A 256 KiB filesystem (None where the machine does not allow mounting one)."""
    where = tmp_path / "small"
    mounted = _mount_tmpfs(where, "size=256k")
    yield where if mounted else None
    if mounted:
        subprocess.run(["umount", str(where)], capture_output=True, timeout=20)


@pytest.fixture
def read_only_fs(tmp_path) -> Iterator[Path | None]:
    where = tmp_path / "ro"
    mounted = _mount_tmpfs(where, "size=64k,ro")
    yield where if mounted else None
    if mounted:
        subprocess.run(["umount", str(where)], capture_output=True, timeout=20)


def _one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


# ------------------------------------------------------------------ the helpers


def test_describe_names_the_path_cause_and_fix():
    line = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/x/y"))
    assert line == "/x/y: no space left on the device; free some space or write somewhere else"
    line = describe_os_error(OSError(errno.EROFS, "Read-only"), Path("/mnt/r"))
    assert line.startswith("/mnt/r: the file system is read-only;")


def test_find_os_error_sees_through_torch_and_safetensors_wrappers():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None
    except RuntimeError as wrapped:
        wrapped.__context__ = OSError(errno.ENOSPC, "No space left on device")
        assert find_os_error(wrapped).errno == errno.ENOSPC
    rust = Exception("Error while serializing: I/O error: No space left on device (os error 28)")
    assert find_os_error(rust).errno == errno.ENOSPC
    assert find_os_error(ValueError("a bug")) is None
    assert find_os_error(OSError(errno.ENOENT, "missing")) is None  # not an environment fault


def test_writing_names_the_target_and_passes_bugs_through(tmp_path):
    match = r"writing the bundle: .*b: no space left"
    with pytest.raises(WriteError, match=match), writing(tmp_path / "b", "bundle"):
        raise Exception("I/O error: No space left on device (os error 28)")
    with pytest.raises(KeyError), writing(tmp_path / "b", "bundle"):
        raise KeyError("a bug stays a bug")


def test_check_writable_dir_refuses_what_is_in_the_way_and_creates_nothing(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(WriteError, match="afile: the out is a file, not a directory"):
        check_writable_dir(afile, "out")
    with pytest.raises(WriteError, match="a part of the out .* is a file"):
        check_writable_dir(afile / "sub" / "dir", "out")
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(WriteError, match="dangling symbolic link"):
        check_writable_dir(link, "out")
    with pytest.raises(WriteError, match="longer than the 255"):
        check_writable_dir(tmp_path / ("n" * 300) / "x", "out")
    target = tmp_path / "new" / "deeper"
    assert check_writable_dir(target) == target
    assert not (tmp_path / "new").exists()  # proven writable, nothing created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "dangling"]


# ------------------------------------------------------------------ the commands


def test_build_on_a_full_disk_is_one_line_and_leaves_nothing(small_fs, tmp_path, monkeypatch):
    if small_fs is None:  # inject ENOSPC where zarr writes a chunk
        from zarr.storage import LocalStore

        def full(self, key, value, *a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(LocalStore, "set", full)
        where = tmp_path / "disk"
        where.mkdir()
    else:
        where = small_fs
    out = where / "store"
    result = CliRunner().invoke(cli, ["build", "--task", "sudoku-6x6", "--out", str(out)])
    line = _one_line(result)
    assert str(out) in line and "no space left on the device" in line
    assert list(where.iterdir()) == []  # the temporary store is gone


def test_write_bundle_on_a_full_disk_leaves_no_temporary(small_fs, tmp_path, monkeypatch):
    from test_bad_inputs import _bundle

    if small_fs is None:
        import trmkit.checkpoint.state as state_module

        def full(tensors, filename, metadata=None):
            raise Exception("Error while serializing: I/O error: No space (os error 28)")

        monkeypatch.setattr(state_module, "save_file", full)
        where = tmp_path / "disk"
        where.mkdir()
    else:
        where = small_fs
    torch.set_num_threads(1)
    with pytest.raises(WriteError, match=r"writing the bundle: .*big: no space left"):
        _bundle(where / "big", "sudoku-4x4", 400, 6, num_ids=2000)  # > 256 KiB of weights
    assert list(where.iterdir()) == []


def test_read_only_places_are_refused_before_work(read_only_fs, tmp_path, monkeypatch):
    if read_only_fs is None:
        pytest.skip("cannot mount a read-only tmpfs here (and root ignores chmod)")
    out = read_only_fs / "store"
    line = _one_line(CliRunner().invoke(cli, ["build", "--task", "sudoku-6x6", "--out", str(out)]))
    assert (
        line == f"Error: {read_only_fs}: the file system is read-only; choose a writable location"
    )
    line = _one_line(CliRunner().invoke(cli, ["new-task", "ro-task", "--dir", str(out)]))
    assert "read-only" in line


def test_eval_and_solve_check_their_output_before_running_the_model(tmp_path):
    from test_bad_inputs import _bundle

    torch.set_num_threads(1)
    bundle = _bundle(tmp_path / "b", "sudoku-4x4", 16, 6)
    blocker = tmp_path / "report"
    blocker.write_text("the user's file")
    result = CliRunner().invoke(cli, ["eval", str(bundle), "--out", str(blocker / "x")])
    assert "is a file, not a directory" in _one_line(result)
    result = CliRunner().invoke(
        cli,
        ["solve", str(bundle), "1 2 3 4 3 4 1 2 2 1 4 3 4 3 2 0", "--trace"]
        + ["--trace-dir", str(blocker)],
    )
    assert "--trace-dir is a file" in _one_line(result)
    assert blocker.read_text() == "the user's file"


def test_new_task_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from trmkit.commands import new_task

    calls = {"n": 0}
    real = Path.write_text

    def fail_third(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", fail_third)
    with pytest.raises(WriteError, match="no space left"):
        new_task.write_package("half-task", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_turns_any_environment_oserror_into_one_line(tmp_path, monkeypatch):
    import trmkit.commands.recipes as recipes_cmd

    def boom(*a, **k):
        raise OSError(errno.EDQUOT, "Disk quota exceeded", os.fspath(tmp_path / "q"))

    monkeypatch.setattr(recipes_cmd.click, "echo", boom)
    line = _one_line(CliRunner().invoke(cli, ["recipes"]))
    assert (
        line
        == f"Error: {tmp_path / 'q'}: disk quota exceeded; free some space or write somewhere else"
    )


# ------------------------------------------------------------------ training


@pytest.fixture
def tiny_data(tmp_path):
    from tiny_training import build_tiny_data

    torch.set_num_threads(1)
    return build_tiny_data(tmp_path / "data")


def test_a_full_disk_during_a_checkpoint_keeps_the_earlier_bundles(
    tmp_path, tiny_data, monkeypatch
):
    from tiny_training import tiny_trainer

    import trmkit.checkpoint.resume as training_bundle

    trainer = tiny_trainer(tmp_path, tiny_data, overrides=["train.eval_interval=0"])
    try:
        trainer.run(until=1)
        trainer.save_checkpoint()
        root = tmp_path / "run" / "checkpoints"
        before = {p.name: p.stat().st_size for p in (root / "step_1").iterdir()}

        def full(path, name, state):
            raise Exception("Error while serializing: I/O error: No space left (os error 28)")

        monkeypatch.setattr(training_bundle, "write_weights", full)  # the trainer's writer
        trainer.run(until=2)
        with pytest.raises(WriteError, match=r"writing the checkpoint: .*step_2: no space left"):
            trainer.save_checkpoint()
        assert sorted(p.name for p in root.iterdir()) == ["step_1"]  # no temporary left
        assert {p.name: p.stat().st_size for p in (root / "step_1").iterdir()} == before
    finally:
        trainer.close()


def test_a_run_whose_eval_entry_is_a_dangling_link_is_refused_before_training(tmp_path, tiny_data):
    from tiny_training import write_recipe

    recipe = write_recipe(tmp_path)
    run = tmp_path / "run"
    args = ["train", "--recipe", str(recipe), "--data", str(tiny_data), "--out", str(run)]
    assert CliRunner().invoke(cli, [*args, "--max-steps", "2", "--no-progress"]).exit_code == 0
    shutil.rmtree(run / "eval")
    (run / "eval").symlink_to(tmp_path / "gone")
    log = (run / "metrics.jsonl").read_text()
    result = CliRunner().invoke(cli, [*args, "--resume", "--max-steps", "4", "--no-progress"])
    line = _one_line(result)
    assert "eval: the run's eval directory is a dangling symbolic link" in line
    assert (run / "metrics.jsonl").read_text() == log  # nothing trained, nothing written


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_bundle_files_get_the_users_file_mode(tmp_path, umask, mode):
    """safetensors creates its files 0600; a bundle's weights are as readable as the rest:
    group-readable exactly when the umask lets every other file the user writes be."""
    from test_bad_inputs import _bundle

    torch.set_num_threads(1)
    old = os.umask(umask)
    try:
        bundle = _bundle(tmp_path / "b", "sudoku-4x4", 16, 6, num_ids=3)
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what any other file of the user gets
    finally:
        os.umask(old)
    assert plain.stat().st_mode & 0o777 == mode
    modes = {p.name: p.stat().st_mode & 0o777 for p in bundle.iterdir()}
    assert modes["model.safetensors"] == mode, modes
    assert set(modes.values()) == {mode}, modes
    assert bundle.stat().st_mode & 0o777 == 0o777 & ~umask  # the directory: as mkdir makes it


# ------------------------------------------------------------------ a disk that fills mid-write


def _enospc_at_fsync(monkeypatch) -> None:
    """A full disk as the OS reports it to a buffered write: at flush/fsync, with no file
    name in the OSError (Python names the file only when open() itself fails)."""

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)


def test_a_full_disk_mid_write_names_the_file_not_its_temporary(tmp_path, monkeypatch):
    from trmkit import atomic

    _enospc_at_fsync(monkeypatch)
    with pytest.raises(OSError) as caught:
        atomic.write_text(tmp_path / "metrics.json", "{}")
    assert caught.value.filename == os.fspath(tmp_path / "metrics.json")
    assert describe_os_error(caught.value) == (
        f"{tmp_path / 'metrics.json'}: no space left on the device; "
        "free some space or write somewhere else"
    )
    assert list(tmp_path.iterdir()) == []  # the temporary is gone


def test_a_full_disk_while_appending_metrics_names_the_log(tmp_path, monkeypatch):
    import trmkit.training.metrics_log as metrics_log

    class Full:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            raise OSError(errno.ENOSPC, "No space left on device")  # the close's flush

        def write(self, text):
            return len(text)

    monkeypatch.setattr(metrics_log, "open", lambda *a, **k: Full(), raising=False)
    with pytest.raises(OSError) as caught:
        metrics_log.MetricsLog(tmp_path / "metrics.jsonl").write({"step": 1})
    assert caught.value.filename == os.fspath(tmp_path / "metrics.jsonl")


def test_eval_on_a_disk_that_fills_names_the_report_and_leaves_none(
    tmp_path, tiny_data, monkeypatch
):
    from test_bad_inputs import _bundle

    bundle = _bundle(tmp_path / "b", "sudoku-4x4", 16, 6)
    out = tmp_path / "report"
    _enospc_at_fsync(monkeypatch)
    result = CliRunner().invoke(
        cli, ["eval", str(bundle), "--out", str(out), "--data", str(tiny_data)]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    line = result.output.strip().splitlines()[-1]  # after the evaluation's progress bar
    assert line == (
        f"Error: {out / 'metrics.json'}: no space left on the device; "
        "free some space or write somewhere else"
    )
    assert not out.exists()  # no half-written report to be mistaken for a whole one


def test_a_run_path_too_long_for_its_checkpoints_is_refused_before_training(tmp_path, tiny_data):
    """Every name under 255 bytes, the whole path under PATH_MAX, but not with the names a
    checkpoint adds: was ENAMETOOLONG at the first checkpoint, after the training."""
    from tiny_training import write_recipe

    recipe = write_recipe(tmp_path)
    path_max = os.pathconf(tmp_path, "PC_PATH_MAX")
    run = tmp_path
    while len(os.fsencode(run / "checkpoints")) < path_max - 30:
        run = run / ("d" * 200)
    run = run.with_name("d" * (200 - (len(os.fsencode(run / "checkpoints")) - (path_max - 30))))
    size = len(os.fsencode(run / "checkpoints"))
    assert size == path_max - 30  # fits the OS; 30 bytes left for the bundle's names
    before = sorted(tmp_path.iterdir())
    args = ["train", "--recipe", str(recipe), "--data", str(tiny_data), "--out", str(run)]
    line = _one_line(CliRunner().invoke(cli, [*args, "--max-steps", "2", "--no-progress"]))
    assert line == (
        f"Error: {run / 'checkpoints'}: the run's checkpoints directory path is {size} bytes; "
        f"with the up to 256 of the names trmkit writes inside it, a path passes the {path_max} "
        "bytes the OS allows; choose a shorter path"
    )
    assert sorted(tmp_path.iterdir()) == before  # nothing created, nothing trained
