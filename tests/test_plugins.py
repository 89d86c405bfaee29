"""Registration validation: every bad registration is refused with the plugin's name."""

from __future__ import annotations

import contextlib

import attrs
import numpy as np
import pytest
from click.testing import CliRunner

from trmkit import plugins
from trmkit.cli import cli
from trmkit.errors import PluginError, UnknownNameError
from trmkit.hookspecs import hookimpl
from trmkit.task import BuildDefaults, RawData, Source, Task


class _Codec:
    seq_len = 4
    vocab_size = 3
    pad_id = 0
    ignore_label_id = 0

    def encode(self, grid):
        return np.asarray(grid, dtype=np.uint8).reshape(-1) + 1

    def decode(self, tokens):
        return (np.asarray(tokens).reshape(2, 2) - 1).astype(np.int64)

    def encode_puzzle(self, examples, *, split, rng):
        inputs = np.stack([self.encode(e.input) for e in examples])
        labels = np.stack([self.encode(e.output) for e in examples])
        return inputs, labels


class _Augmenter:
    transform_size = 1

    def identity(self):
        return np.zeros(1, dtype=np.int64)

    def draw(self, puzzle, num_aug, rng):
        return []

    def apply(self, transform, grid):
        return grid

    def invert(self, transform, grid):
        return grid


class _Run:
    def update(self, batch):
        pass

    def finish(self):
        return {}


class _Evaluator:
    def start(self, context):
        return _Run()


def _source() -> Source:
    return Source("gen", "nothing", lambda request: RawData(puzzles=[]), kind="generator")


def make_task(name: str = "throwaway", **changes) -> Task:
    task = Task(
        name=name,
        description="a test task",
        codec=_Codec(),
        augmenter=_Augmenter(),
        evaluator=_Evaluator(),
        sources={"gen": _source()},
        defaults=BuildDefaults(source="gen"),
    )
    return attrs.evolve(task, **changes) if changes else task


@contextlib.contextmanager
def registered(plugin: object, name: str):
    """Register a throwaway plugin module/class for the duration of a block."""
    plugins.load_plugins()
    plugins.pm.register(plugin, name=name)
    plugins.reset()
    try:
        yield
    finally:
        plugins.pm.unregister(name=name)
        plugins.reset()


def task_plugin(*tasks_and_aliases):
    class Plugin:
        @staticmethod
        @hookimpl
        def register_tasks(register):
            for task, aliases in tasks_and_aliases:
                register(task, aliases=aliases)

    return Plugin


def test_valid_task_is_listed_and_found_by_alias():
    with registered(task_plugin((make_task(), ("tw",))), "throwaway-plugin"):
        assert plugins.get_task("tw").name == "throwaway"
        entry = plugins.task_entries()["throwaway"]
        assert entry.plugin == "throwaway-plugin"
        result = CliRunner().invoke(cli, ["tasks", "--json"])
        assert result.exit_code == 0
        assert '"throwaway"' in result.output and "throwaway-plugin" in result.output


def test_unknown_task_lists_known_names():
    with pytest.raises(UnknownNameError, match="unknown task 'nope'"):
        plugins.get_task("nope")


def test_duplicate_name_names_both_plugins():
    first = registered(task_plugin((make_task("dup"), ())), "first-plugin")
    second = registered(task_plugin((make_task("dup"), ())), "second-plugin")
    with first, second, pytest.raises(PluginError) as info:
        plugins.task_entries()
    message = str(info.value)
    assert "dup" in message
    assert "first-plugin" in message and "second-plugin" in message


def test_alias_clash_is_refused():
    plugin = task_plugin((make_task("one"), ("x",)), (make_task("two"), ("x",)))
    with registered(plugin, "clashing-plugin"), pytest.raises(PluginError, match="'x'"):
        plugins.task_entries()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("codec", None, "missing codec"),
        ("codec", object(), "codec is a object"),
        ("augmenter", object(), "augmenter is a object"),
        ("evaluator", None, "missing evaluator"),
        ("evaluator", "an evaluator", "evaluator is a str"),
        ("sources", {}, "no sources"),
        ("defaults", BuildDefaults(source="missing"), "default source 'missing'"),
        ("path_source", "missing", "path_source 'missing'"),
        ("name", "bad name!", "task name must be"),
    ],
)
def test_bad_task_fields_are_refused_with_plugin_name(field, value, expected):
    task = attrs.evolve(make_task(), **{field: value})
    with registered(task_plugin((task, ())), "sloppy-plugin"), pytest.raises(PluginError) as info:
        plugins.task_entries()
    assert "sloppy-plugin" in str(info.value)
    assert expected in str(info.value)


def test_wrong_typed_codec_attribute_is_refused():
    class FloatCodec(_Codec):
        seq_len = 4.0

    task = attrs.evolve(make_task(), codec=FloatCodec())
    expected = "float-plugin.*codec.seq_len must be an int"
    with (
        registered(task_plugin((task, ())), "float-plugin"),
        pytest.raises(PluginError, match=expected),
    ):
        plugins.task_entries()


class _HalfBatchCodec(_Codec):
    def encode_batch(self, grids):  # BatchCodec without batch_encodes_puzzles
        return np.stack([self.encode(g) for g in grids])


class _HalfBatchAugmenter(_Augmenter):
    def apply_batch(self, transforms, grids):  # BatchAugmenter without invert_batch
        return grids


class _BadFlagCodec(_HalfBatchCodec):
    batch_encodes_puzzles = "yes"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("codec", _HalfBatchCodec(), "codec defines encode_batch but not batch_encodes_puzzles"),
        ("augmenter", _HalfBatchAugmenter(), "apply_batch but not invert_batch.*BatchAugmenter"),
        ("codec", _BadFlagCodec(), "batch_encodes_puzzles must be True or False"),
    ],
)
def test_partial_optional_protocol_is_refused(field, value, expected):
    task = attrs.evolve(make_task(), **{field: value})
    with (
        registered(task_plugin((task, ())), "half-plugin"),
        pytest.raises(PluginError, match="half-plugin.*" + expected),
    ):
        plugins.task_entries()


def test_builtin_tasks_opt_into_the_batched_protocols():
    from trmkit.task import BatchAugmenter, BatchCodec, VariantEncoder, VariantNamer

    sudoku, arc = plugins.get_task("sudoku-4x4"), plugins.get_task("arc-agi-1")
    assert isinstance(sudoku.codec, BatchCodec) and sudoku.codec.batch_encodes_puzzles
    assert isinstance(sudoku.augmenter, BatchAugmenter)
    assert not isinstance(sudoku.augmenter, VariantNamer)
    assert isinstance(arc.codec, VariantEncoder) and not arc.codec.batch_encodes_puzzles
    assert isinstance(arc.augmenter, VariantNamer)
    assert not isinstance(make_task().codec, BatchCodec)


def test_non_task_registration_is_refused():
    class Plugin:
        @staticmethod
        @hookimpl
        def register_tasks(register):
            register({"name": "dict-task"})

    with registered(Plugin, "dict-plugin"), pytest.raises(PluginError, match="dict-plugin"):
        plugins.task_entries()


def test_model_registration_validation():
    @attrs.define
    class Config:
        width: int = 4

    class Good:
        @staticmethod
        @hookimpl
        def register_models(register):
            register("throwaway-net", lambda cfg: cfg, Config, "a test model")

    class Again:
        register_models = Good.register_models

    class NotAttrs:
        @staticmethod
        @hookimpl
        def register_models(register):
            register("plain-config", lambda cfg: cfg, dict)

    with registered(Good, "good-models"):
        spec = plugins.get_model("throwaway-net")
        assert spec.plugin == "good-models" and spec.config_cls is Config
        with registered(Again, "same-models-again"), pytest.raises(PluginError) as info:
            plugins.model_specs()
        assert "good-models" in str(info.value) and "same-models-again" in str(info.value)
    with registered(NotAttrs, "bad-models"), pytest.raises(PluginError, match="attrs class"):
        plugins.model_specs()
    with pytest.raises(UnknownNameError, match="unknown model"):
        plugins.get_model("no-such-model")


def test_plugins_command_lists_builtins_with_hooks():
    import json

    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    for builtin in ("sudoku", "maze", "arc", "models"):
        assert rows[builtin]["distribution"] == "trmkit"
    assert "register_tasks" in rows["sudoku"]["hooks"]
    assert "register_models" in rows["models"]["hooks"]


def test_version():
    version = CliRunner().invoke(cli, ["--version"])
    assert version.exit_code == 0 and "trmkit, version" in version.output


def test_trmkit_error_becomes_one_line_and_nonzero_exit():
    import click

    @click.command(name="explode")
    def explode():
        raise UnknownNameError("unknown task 'nope'; known tasks: a, b")

    cli.add_command(explode)
    try:
        result = CliRunner().invoke(cli, ["explode"])
    finally:
        cli.commands.pop("explode")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: unknown task 'nope'; known tasks: a, b"
    assert "Traceback" not in result.output


def test_broken_third_party_plugin_is_skipped_with_a_warning(tmp_path, capsys, monkeypatch):
    """A plugin that fails to import is reported, and every other task still loads."""
    import importlib
    import sys

    dist_info = tmp_path / "trmkit_broken-0.1.dist-info"
    dist_info.mkdir()
    metadata = "Metadata-Version: 2.1\nName: trmkit-broken\nVersion: 0.1\n"
    (dist_info / "METADATA").write_text(metadata)
    (dist_info / "entry_points.txt").write_text("[trmkit]\nbroken = trmkit_broken_mod\n")
    (tmp_path / "trmkit_broken_mod.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    plugins._loaded = False
    try:
        plugins.load_plugins()
        plugins.reset()
        assert "broken" in plugins.failed
        assert "boom at import" in capsys.readouterr().err
        assert plugins.get_task("sudoku").name == "sudoku-extreme"
        with pytest.raises(UnknownNameError, match="broken.*failed to import"):
            plugins.get_task("broken-task")
        assert any(row.get("error") for row in plugins.plugin_info())
    finally:
        sys.path.remove(str(tmp_path))
        importlib.invalidate_caches()
        plugins.failed.pop("broken", None)
        plugins.reset()
