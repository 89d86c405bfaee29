"""The dataset cache key depends on the content of a local --source, not its timestamps."""

from __future__ import annotations

import os
import shutil

import pytest

from trmkit import plugins
from trmkit.config import DataSection
from trmkit.data.cache import cached_dataset_path, dataset_key, source_digest

ROWS = ["1..4,1234\n", "2..3,2143\n", "3..2,3412\n"]


@pytest.fixture
def task():
    return plugins.get_task("sudoku-4x4")


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "src"
    (folder / "nested").mkdir(parents=True)
    (folder / "train.csv").write_text("".join(ROWS))
    (folder / "nested" / "test.csv").write_text(ROWS[0])
    return folder


def _key(task, source):
    return dataset_key(task, DataSection(task=task.name, source=str(source)))


def _keep_times(path, edit):
    """Apply ``edit`` and put the timestamps of ``path`` (and its parents) back."""
    stats = {p: os.stat(p) for p in (path, *path.parents[:2])}
    edit()
    for p, st in stats.items():
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_reordering_rows_in_a_directory_changes_the_key(task, source):
    before = _key(task, source)
    csv = source / "train.csv"
    _keep_times(csv, lambda: csv.write_text("".join(reversed(ROWS))))  # same size, same mtime
    assert _key(task, source) != before


def test_appending_to_a_nested_file_changes_the_key(task, source):
    before = _key(task, source)
    nested = source / "nested" / "test.csv"
    _keep_times(nested, lambda: nested.write_text(ROWS[0] + ROWS[1]))
    assert _key(task, source) != before


def test_a_new_file_or_a_renamed_one_changes_the_key(task, source):
    before = _key(task, source)
    (source / "train.csv").rename(source / "other.csv")
    renamed = _key(task, source)
    assert renamed != before
    (source / "more.csv").write_text("")
    assert _key(task, source) not in (before, renamed)


def test_same_content_elsewhere_or_touched_is_the_same_dataset(task, source, tmp_path):
    before = _key(task, source)
    os.utime(source / "train.csv", (1, 1))
    (source / ".hidden").write_text("editor state")  # hidden names are not data
    assert _key(task, source) == before
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    assert _key(task, copy) == before
    assert cached_dataset_path(task, DataSection(task=task.name, source=str(copy))).name == before


def test_a_single_file_source_is_hashed_by_its_bytes(task, source):
    csv = source / "train.csv"
    digest = source_digest(csv)
    _keep_times(csv, lambda: csv.write_text("".join(reversed(ROWS))))
    assert source_digest(csv) != digest
    assert _key(task, csv).startswith(f"{task.name}-")


def test_file_boundaries_count(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, first, second in ((a, "12", "3"), (b, "1", "23")):
        folder.mkdir()
        (folder / "x").write_text(first)
        (folder / "y").write_text(second)
    assert source_digest(a) != source_digest(b)


def test_other_settings_still_count(task, source):
    base = DataSection(task=task.name, source=str(source))
    keys = {
        dataset_key(task, base),
        dataset_key(task, DataSection(task=task.name, source=str(source), seed=1)),
        dataset_key(task, DataSection(task=task.name, source=str(source), num_aug=3)),
        dataset_key(task, DataSection(task=task.name, source=str(source), strict=True)),
    }
    assert len(keys) == 4
