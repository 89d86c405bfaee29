"""Export to and import from the official TRM/HRM layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trmkit.data.build import build_dataset
from trmkit.data.official import export_official, import_official
from trmkit.data.store import open_store
from trmkit.errors import StoreError


@pytest.fixture
def exported(tmp_path, toy_task):
    build_dataset(toy_task, tmp_path / "store", num_aug=2, progress=False)
    export_official(tmp_path / "store", tmp_path / "official")
    return tmp_path / "store", tmp_path / "official"


def test_layout_matches_the_reference(exported):
    store_dir, official = exported
    store = open_store(store_dir)
    identifiers = json.loads((official / "identifiers.json").read_text())
    assert identifiers[0] == "<blank>" and identifiers == store.identifiers()
    for name in ("train", "test"):
        info = json.loads((official / name / "dataset.json").read_text())
        assert info["sets"] == ["all"]
        meta = store[name].meta
        for key in (
            "seq_len",
            "vocab_size",
            "pad_id",
            "ignore_label_id",
            "blank_identifier_id",
            "num_puzzle_identifiers",
            "total_groups",
            "total_puzzles",
            "mean_puzzle_examples",
        ):
            assert info[key] == getattr(meta, key)
        for field, dtype in (
            ("inputs", np.uint8),
            ("labels", np.uint8),
            ("puzzle_identifiers", np.int32),
            ("puzzle_indices", np.int32),
            ("group_indices", np.int32),
        ):
            array = np.load(official / name / f"all__{field}.npy")
            assert array.dtype == dtype
        assert np.array_equal(np.load(official / name / "all__inputs.npy"), store[name].load()[0])


def test_round_trip_store_export_import(exported, tmp_path, toy_task):
    store_dir, official = exported
    import_official(official, tmp_path / "back", toy_task)
    a, b = open_store(store_dir), open_store(tmp_path / "back", toy_task)
    assert a.splits == b.splits and a.identifiers() == b.identifiers()
    for name in a.splits:
        x, y = a[name], b[name]
        assert x.meta == y.meta
        for key in ("puzzle_identifiers", "puzzle_indices", "group_indices", "transforms"):
            assert np.array_equal(getattr(x, key), getattr(y, key)), key
        assert np.array_equal(x.load()[0], y.load()[0])
        assert np.array_equal(x.load()[1], y.load()[1])
        assert x.group_names == y.group_names


def test_import_without_trmkit_extras_uses_identity_and_identifier_names(
    exported, tmp_path, toy_task
):
    _, official = exported
    for name in ("train", "test"):
        (official / name / "trmkit_transforms.npy").unlink()
        (official / name / "trmkit_group_names.json").unlink()
    # the official Sudoku builder writes int64 train arrays
    inputs = np.load(official / "train" / "all__inputs.npy")
    np.save(official / "train" / "all__inputs.npy", inputs.astype(np.int64))
    import_official(official, tmp_path / "back", toy_task)
    back = open_store(tmp_path / "back")["train"]
    identity = toy_task.augmenter.identity()
    assert (back.transforms == identity).all()
    assert back.group_names[0] == "toy000"
    assert np.array_equal(back.load()[0], inputs)


def test_import_refuses_bad_files(exported, tmp_path, toy_task):
    _, official = exported
    with pytest.raises(StoreError, match="no such directory"):
        import_official(tmp_path / "missing", tmp_path / "x", toy_task)
    info_path = official / "test" / "dataset.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "seq_len": 81}))
    with pytest.raises(StoreError, match="seq_len 81 does not match task 'toy-flip'"):
        import_official(official, tmp_path / "x", toy_task)
    info_path.write_text(json.dumps(info))
    labels_path = official / "train" / "all__labels.npy"
    labels = np.load(labels_path)
    labels[3, 4] = 200
    np.save(labels_path, labels)
    with pytest.raises(StoreError, match="all__labels.npy: token 200 outside the vocabulary"):
        import_official(official, tmp_path / "x", toy_task)
    labels_path.unlink()
    with pytest.raises(StoreError, match="all__labels.npy: missing"):
        import_official(official, tmp_path / "x", toy_task)
    assert not (tmp_path / "x").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_export_refuses_existing_out_without_force(exported, tmp_path):
    store_dir, official = exported
    with pytest.raises(StoreError, match="already exists"):
        export_official(store_dir, official)
    export_official(store_dir, official, force=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file").write_text("x")
    with pytest.raises(StoreError, match="not an exported dataset"):
        export_official(store_dir, tmp_path / "other", force=True)


OFFICIAL_SUDOKU = (
    __import__("pathlib").Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "official-checkpoints"
    / "dataset"
)


@pytest.mark.skipif(not OFFICIAL_SUDOKU.is_dir(), reason="shared official dataset not present")
def test_sudoku_export_writes_the_official_builders_total_puzzles(tmp_path):
    # The official Sudoku builder (100 puzzles x 3 variants) writes total_puzzles = groups =
    # 100; trmkit's store keeps counting puzzles (300); the export carries the builder's value.
    from click.testing import CliRunner

    from trmkit.cli import cli

    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "data",
            "import",
            str(OFFICIAL_SUDOKU),
            "--task",
            "sudoku",
            "--out",
            str(tmp_path / "store"),
        ],
    )
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "store")
    assert store["train"].meta.total_puzzles == 300 and store["train"].meta.total_groups == 100
    result = runner.invoke(
        cli, ["data", "export", str(tmp_path / "store"), "--out", str(tmp_path / "again")]
    )
    assert result.exit_code == 0, result.output
    for split in ("train", "test"):
        original = json.loads((OFFICIAL_SUDOKU / split / "dataset.json").read_text())
        written = json.loads((tmp_path / "again" / split / "dataset.json").read_text())
        assert written == original
        for field in ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices"):
            a = np.load(OFFICIAL_SUDOKU / split / f"all__{field}.npy")
            b = np.load(tmp_path / "again" / split / f"all__{field}.npy")
            assert np.array_equal(a, b), (split, field)


def test_export_counts_groups_on_request(exported, tmp_path):
    store_dir, _ = exported
    export_official(store_dir, tmp_path / "grouped", total_puzzles="groups")
    meta = open_store(store_dir)["train"].meta
    info = json.loads((tmp_path / "grouped" / "train" / "dataset.json").read_text())
    assert meta.total_puzzles > meta.total_groups
    assert info["total_puzzles"] == meta.total_groups
    assert info["mean_puzzle_examples"] == meta.mean_puzzle_examples


def _set_info(official, value):
    (official / "train" / "dataset.json").write_text(json.dumps(value))


@pytest.mark.parametrize(
    "case, damage, message",
    [
        ("null", lambda o, info: _set_info(o, None), "expected a JSON object, found NoneType"),
        ("list", lambda o, info: _set_info(o, [info]), "expected a JSON object, found list"),
        (
            "string number",
            lambda o, info: _set_info(o, {**info, "num_puzzle_identifiers": "1"}),
            "'num_puzzle_identifiers' is '1', expected an integer",
        ),
        (
            "float count",
            lambda o, info: _set_info(o, {**info, "total_groups": 2.5}),
            "'total_groups' is 2.5",
        ),
        ("negative", lambda o, info: _set_info(o, {**info, "pad_id": -1}), "'pad_id' is -1"),
        ("bool", lambda o, info: _set_info(o, {**info, "vocab_size": True}), "'vocab_size' is"),
        ("sets string", lambda o, info: _set_info(o, {**info, "sets": "all"}), "'sets' must be"),
        (
            "not json",
            lambda o, info: (o / "train" / "dataset.json").write_text("{"),
            "unreadable JSON",
        ),
        (
            "structured index",
            lambda o, info: np.save(
                o / "train" / "all__group_indices.npy",
                np.zeros(3, dtype=[("a", "<i4"), ("b", "<i4")]),
            ),
            "is not an integer type",
        ),
        (
            "structured ids",
            lambda o, info: np.save(
                o / "train" / "all__puzzle_identifiers.npy", np.zeros(3, dtype=[("a", "<i4")])
            ),
            "is not an integer type",
        ),
        (
            "float index",
            lambda o, info: np.save(
                o / "train" / "all__puzzle_indices.npy", np.zeros(3, dtype=np.float32)
            ),
            "is not an integer type",
        ),
    ],
)
def test_import_refuses_malformed_metadata_in_one_line(
    exported, tmp_path, toy_task, case, damage, message
):
    _, official = exported
    info = json.loads((official / "train" / "dataset.json").read_text())
    damage(official, info)
    with pytest.raises(StoreError) as err:
        import_official(official, tmp_path / "x", toy_task)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert not (tmp_path / "x").exists()
