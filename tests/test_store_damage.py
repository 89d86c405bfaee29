"""Damaged dataset stores: each kind of damage is one clean error, never zeros or a traceback.

A store is built once per test (toy task), then damaged on disk the way a bad copy, a full
disk or a hand edit would, and read through the API and through `trmkit data info/export`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from trmkit.cli import cli
from trmkit.data.build import build_dataset
from trmkit.data.store import _missing_chunk_files, open_store
from trmkit.errors import StoreError


@pytest.fixture
def store_dir(tmp_path, toy_task):
    build_dataset(toy_task, tmp_path / "store", num_aug=2, progress=False)
    return tmp_path / "store"


def _edit_json(path: Path, change) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def _chunk_files(array_dir: Path) -> list[Path]:
    return sorted(f for f in (array_dir / "c").rglob("*") if f.is_file())


def _truncate_root(d):
    text = (d / "zarr.json").read_text()
    (d / "zarr.json").write_text(text[: len(text) // 2])


def _truncate_split(d):
    text = (d / "train" / "zarr.json").read_text()
    (d / "train" / "zarr.json").write_text(text[: len(text) // 2])


def _truncate_array_meta(d):
    (d / "train" / "labels" / "zarr.json").write_text('{"zarr_format": 3, "node_')


def _delete_array(d):
    shutil.rmtree(d / "train" / "labels")


def _delete_index(d):
    shutil.rmtree(d / "train" / "puzzle_indices")


def _delete_group(d):
    shutil.rmtree(d / "test")


def _delete_chunk(d):
    _chunk_files(d / "train" / "inputs")[0].unlink()


def _delete_index_chunk(d):
    # puzzle_identifiers of a shared-id task are all 0 = the fill value: zarr would
    # happily read zeros for a missing chunk; trmkit writes every chunk and checks
    _chunk_files(d / "train" / "puzzle_identifiers")[0].unlink()


def _corrupt_chunk(d):
    file = _chunk_files(d / "train" / "inputs")[0]
    data = bytearray(file.read_bytes())
    for i in range(8, min(len(data), 64)):
        data[i] ^= 0xFF
    file.write_bytes(bytes(data))


def _typed_attribute(d):
    _edit_json(
        d / "train" / "zarr.json", lambda m: m["attributes"].__setitem__("total_groups", "12")
    )


def _contradicting_attribute(d):
    _edit_json(
        d / "train" / "zarr.json", lambda m: m["attributes"].__setitem__("total_examples", 10**9)
    )


def _bool_attribute(d):
    _edit_json(d / "train" / "zarr.json", lambda m: m["attributes"].__setitem__("seq_len", True))


def _broken_index(d):
    import numpy as np
    import zarr

    array = zarr.open_array(str(d / "train" / "group_indices"), mode="r+")
    values = np.asarray(array[:])
    values[1] = values[-1] + 5
    array[:] = values


def _stray_file_hides_deleted_chunk(d):
    files = _chunk_files(d / "train" / "inputs")
    files[0].unlink()
    (d / "train" / "inputs" / "c" / "stray").write_bytes(b"x")  # same file count as before


def _splits_not_a_list(d):
    _edit_json(d / "zarr.json", lambda m: m["attributes"].__setitem__("splits", "train"))


def _task_not_a_string(d):
    _edit_json(d / "zarr.json", lambda m: m["attributes"].__setitem__("task", 7))


def _complete_a_string(d):
    _edit_json(d / "zarr.json", lambda m: m["attributes"].__setitem__("complete", "true"))


def _huge_total_puzzles(d):
    _edit_json(
        d / "test" / "zarr.json", lambda m: m["attributes"].__setitem__("total_puzzles", 10**12)
    )


def _float_total(d):
    _edit_json(
        d / "train" / "zarr.json", lambda m: m["attributes"].__setitem__("total_examples", 12.0)
    )


def _delete_group_names(d):
    shutil.rmtree(d / "train" / "group_names")


def _delete_identifiers(d):
    shutil.rmtree(d / "identifier_names")


DAMAGE = {
    "stray file hides a deleted shard": (
        _stray_file_hides_deleted_chunk,
        "train/inputs: 1 chunk file(s) missing",
    ),
    "root splits not a list": (_splits_not_a_list, "root attribute splits"),
    "root task not a string": (_task_not_a_string, "root attribute task is 7"),
    "complete a string": (_complete_a_string, "incomplete store"),
    "total_puzzles 10**12": (_huge_total_puzzles, "contradicts the split attr"),
    "float total_examples": (_float_total, "total_examples is 12.0, expected an integer"),
    "deleted group names": (_delete_group_names, "train/group_names: unreadable data"),
    "deleted identifier names": (_delete_identifiers, "identifier_names: unreadable"),
    "truncated root zarr.json": (_truncate_root, "cannot open as a Zarr v3 group"),
    "truncated split zarr.json": (_truncate_split, "train: cannot open the split"),
    "truncated array zarr.json": (_truncate_array_meta, "train/labels: cannot open the array"),
    "deleted array": (_delete_array, "train/labels: cannot open the array"),
    "deleted index array": (_delete_index, "train/puzzle_indices: cannot open the array"),
    "deleted split group": (_delete_group, "test: cannot open the split"),
    "deleted shard": (_delete_chunk, "train/inputs: 1 chunk file(s) missing"),
    "deleted fill-value chunk": (_delete_index_chunk, "puzzle_identifiers: 1 chunk file(s)"),
    "corrupt shard": (_corrupt_chunk, "train/inputs: unreadable data"),
    "string attribute": (_typed_attribute, "total_groups is '12', expected an integer"),
    "bool attribute": (_bool_attribute, "seq_len is True, expected an integer"),
    "attributes contradict arrays": (_contradicting_attribute, "contradicts the split attr"),
    "index array out of order": (_broken_index, "group_indices: must start at 0"),
}


def _read_everything(path: Path) -> None:
    store = open_store(path)
    for name in ("train", "test"):
        split = store.split(name)
        split.load()
        _ = (
            split.puzzle_identifiers,
            split.puzzle_indices,
            split.group_indices,
            split.transforms,
            split.group_names,
        )
    store.identifiers()


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_store_is_one_clean_error(store_dir, case):
    damage, message = DAMAGE[case]
    _read_everything(store_dir)  # intact: reads
    damage(store_dir)
    with pytest.raises(StoreError, match=None) as info:
        _read_everything(store_dir)
    text = str(info.value)
    assert message in text, text
    assert "\n" not in text
    assert "trmkit build" in text or "rebuild" in text


@pytest.mark.parametrize(
    "case", ["deleted shard", "corrupt shard", "string attribute", "deleted split group"]
)
def test_damaged_store_through_the_cli(store_dir, tmp_path, case):
    damage, message = DAMAGE[case]
    damage(store_dir)
    runner = CliRunner()
    for args in (
        ["data", "export", str(store_dir), "--out", str(tmp_path / "export")],
        ["data", "info", str(store_dir)],
    ):
        result = runner.invoke(cli, args)
        if case == "corrupt shard" and args[1] == "info":
            continue  # info reads one example, which may sit in an intact chunk
        assert result.exit_code == 1, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert message in lines[0], lines[0]
    assert not (tmp_path / "export").exists()


# ------------------------------------------------- splits assembled from two builds


def _swap_test_split(tmp_path, toy_task, **second) -> Path:
    """Store ``a`` with the test split of a second build copied over its own."""
    build_dataset(toy_task, tmp_path / "a", num_aug=2, progress=False)
    build_dataset(toy_task, tmp_path / "b", progress=False, **second)
    shutil.rmtree(tmp_path / "a" / "test")
    shutil.copytree(tmp_path / "b" / "test", tmp_path / "a" / "test")
    return tmp_path / "a"


def test_a_split_from_another_build_is_refused_on_open(tmp_path, toy_task):
    mixed = _swap_test_split(tmp_path, toy_task, num_aug=2, seed=7)  # same shape, other build
    with pytest.raises(StoreError, match=r"a/test: the split comes from another build"):
        open_store(mixed)
    result = CliRunner().invoke(cli, ["data", "info", str(mixed)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "--force" in result.output


def test_a_split_of_another_shape_is_refused_even_without_build_ids(tmp_path, toy_task):
    """Stores written before the build id was recorded: the shared fields still decide."""
    mixed = _swap_test_split(tmp_path, toy_task, num_aug=2, seed=7)
    for meta in (mixed / "zarr.json", mixed / "train" / "zarr.json", mixed / "test" / "zarr.json"):
        _edit_json(meta, lambda m: m["attributes"].pop("build_id", None))
    open_store(mixed)  # an old store whose splits agree still opens
    _edit_json(
        mixed / "test" / "zarr.json",
        lambda m: m["attributes"].update(num_puzzle_identifiers=99),
    )
    with pytest.raises(StoreError, match=r"num_puzzle_identifiers is 99 but the store's is"):
        open_store(mixed)


def test_a_chunk_grid_too_large_for_int64_still_counts_as_missing(tmp_path):
    """Damaged metadata whose chunk grid has 2**64 cells: an int64 product wraps to 0 and
    would call the array complete; the count must stay exact and cheap (files counted)."""
    huge = SimpleNamespace(shape=(2**32, 2**32), chunks=(1, 1), shards=None)
    assert _missing_chunk_files(tmp_path, huge) == 2**64
