"""Registration validation: every bad registration is refused with the plugin's name."""

from __future__ import annotations

import contextlib
import re
import sys

import attrs
import numpy as np
import pytest
from click.testing import CliRunner

from trmkit import plugins
from trmkit.cli import cli
from trmkit.errors import UnknownNameError
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


def refused(plugin: str, capsys=None) -> str:
    """Collect registrations; the plugin must have been skipped (its tasks absent, the
    built-ins present). Returns the one-line reason (also warned on stderr)."""
    entries = plugins.task_entries()
    plugins.model_specs()
    assert "sudoku-extreme" in entries, "a refused plugin took the built-in tasks down"
    assert not any(entry.plugin == plugin for entry in entries.values())
    assert plugin in plugins.rejected, f"{plugin} was not refused"
    message = plugins.rejected[plugin]
    assert "\n" not in message and message.startswith(f"plugin {plugin!r} (distribution ")
    if capsys is not None:
        assert f"Warning: {message}" in capsys.readouterr().err
    return message


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


def test_duplicate_name_names_both_plugins(capsys):
    first = registered(task_plugin((make_task("dup"), ())), "first-plugin")
    second = registered(task_plugin((make_task("dup"), ())), "second-plugin")
    with first, second:
        message = refused("second-plugin", capsys)
        assert plugins.task_entries()["dup"].plugin == "first-plugin"  # the first keeps it
    assert "task name 'dup' is already registered by plugin 'first-plugin' (task 'dup')" in message


def test_alias_clash_names_the_task_that_tried(capsys):
    plugin = task_plugin((make_task("one"), ("x",)), (make_task("two"), ("x",)))
    with registered(plugin, "clashing-plugin"):
        message = refused("clashing-plugin", capsys)
    assert (
        "(task 'two'): alias 'x' is already registered by plugin 'clashing-plugin' (task "
        "'one')" in message
    )
    with registered(task_plugin((make_task("three"), ("sudoku",))), "alias-thief"):
        message = refused("alias-thief")
    assert (
        "(task 'three'): alias 'sudoku' is already registered by plugin 'sudoku' "
        "(task 'sudoku-extreme')" in message
    )


def test_refused_plugin_is_shown_by_plugins_command_and_other_commands_work():
    import json

    with registered(task_plugin((make_task("dup-of-builtin", codec=None), ())), "bad-plugin"):
        result = CliRunner().invoke(cli, ["plugins"])
        assert result.exit_code == 0
        rows = {row["name"]: row for row in json.loads(result.stdout)}
        assert "missing codec" in rows["bad-plugin"]["error"]
        assert "error" not in rows["sudoku"]
        listed = CliRunner().invoke(cli, ["tasks"])
        assert listed.exit_code == 0 and "sudoku-4x4" in listed.output
        assert "dup-of-builtin" not in listed.output
        with pytest.raises(UnknownNameError, match="dup-of-builtin.*bad-plugin.*missing codec"):
            plugins.get_task("dup-of-builtin")


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
        # a wrong-typed field would only fail later, blamed on the user: an int version writes
        # a store trmkit then calls damaged, a str num_aug was a TypeError traceback in build
        ("version", 2, "version 2 must be a non-empty str (it is recorded in every store)"),
        ("description", None, "description None must be a str"),
        ("sources", [_source()], "sources must be a dict of name -> trmkit.task.Source, not list"),
        ("defaults", BuildDefaults(source="gen", num_aug="3"), "defaults.num_aug '3' must be"),
        ("defaults", BuildDefaults(source="gen", num_aug=-1), "defaults.num_aug -1 must be an int"),
        ("defaults", BuildDefaults(source="gen", num_aug=True), "defaults.num_aug True must be"),
        (
            "defaults",
            BuildDefaults(source="gen", puzzle_ids="per-variant"),  # type: ignore[arg-type]
            "defaults.puzzle_ids 'per-variant' must be one of 'shared', 'per_variant'",
        ),
        ("defaults", BuildDefaults(source="gen", augment_test="no"), "augment_test 'no' must be"),
        (
            "defaults",
            BuildDefaults(source="gen", official_total_puzzles="all"),  # type: ignore[arg-type]
            "defaults.official_total_puzzles 'all' must be one of 'puzzles', 'groups'",
        ),
        ("defaults", BuildDefaults(source="gen", recipe=3), "defaults.recipe 3 must be a str"),
    ],
)
def test_bad_task_fields_are_refused_with_plugin_name(field, value, expected):
    task = attrs.evolve(make_task(), **{field: value})
    with registered(task_plugin((task, ())), "sloppy-plugin"):
        assert expected in refused("sloppy-plugin")


@pytest.mark.parametrize(
    ("aliases", "expected"),
    [
        # a str is iterable: "tw-5" used to register the aliases 't', 'w', '-' and '5'
        ("tw-5", "aliases must be a tuple of names, not the str 'tw-5'; write aliases=('tw-5',)"),
        (("tw\nx",), "alias 'tw\\nx' must be 1 to 64 ASCII letters, digits, '-' or '_'"),
        (("t w",), "alias 't w' must be 1 to 64 ASCII letters"),
        (("a" * 65,), "must be 1 to 64 ASCII letters"),
        (("",), "alias '' must be 1 to 64 ASCII letters"),
        ((3,), "alias 3 must be 1 to 64 ASCII letters"),
    ],
)
def test_bad_aliases_are_refused(aliases, expected):
    with registered(task_plugin((make_task(), aliases)), "alias-plugin"):
        assert expected in refused("alias-plugin")
        assert not {"t", "w", "5"} & set(plugins.registry.collected("register_tasks"))


def test_wrong_typed_codec_attribute_is_refused():
    class FloatCodec(_Codec):
        seq_len = 4.0

    task = attrs.evolve(make_task(), codec=FloatCodec())
    with registered(task_plugin((task, ())), "float-plugin"):
        assert "codec.seq_len must be an int" in refused("float-plugin")


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
    with registered(task_plugin((task, ())), "half-plugin"):
        assert re.search(expected, refused("half-plugin"))


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

    with registered(Plugin, "dict-plugin"):
        assert "registered dict, not a trmkit.task.Task" in refused("dict-plugin")


def test_hook_that_raises_is_skipped():
    class Plugin:
        @staticmethod
        @hookimpl
        def register_tasks(register):
            register(make_task("half-done"))
            raise KeyError("oops")

    with registered(Plugin, "raising-plugin"):
        assert "its hook raised KeyError: 'oops'" in refused("raising-plugin")
        assert "half-done" not in plugins.task_entries()  # nothing of it is half-registered


def test_a_registry_of_its_own_leaves_the_default_one_alone():
    import pluggy

    from trmkit import hookspecs

    manager = pluggy.PluginManager("trmkit")
    manager.add_hookspecs(hookspecs)
    manager.register(task_plugin((make_task("private"), ("pv",))), name="private-plugin")
    own = plugins.Registry(manager)
    assert own.get_task("pv").name == "private"
    assert own.task_entries()["private"].plugin == "private-plugin"
    assert own.get_task("sudoku").name == "sudoku-extreme"  # it loads the entry points too
    assert "private" not in plugins.task_entries()
    with pytest.raises(UnknownNameError, match="unknown task 'pv'"):
        plugins.get_task("pv")


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
        with registered(Again, "same-models-again"):
            assert plugins.get_model("throwaway-net").plugin == "good-models"
            message = refused("same-models-again")
        assert "model 'throwaway-net', already registered by plugin 'good-models'" in message
    with registered(NotAttrs, "bad-models"):
        assert "attrs class" in refused("bad-models")
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
    plugins.registry.loaded = False
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


def _fake_distribution(tmp_path, monkeypatch, dist: str, entry: str, module_text: str) -> None:
    """A distribution ``dist`` declaring the trmkit entry point ``entry = <module>``."""
    import importlib

    module = dist.replace("-", "_") + "_mod"
    info = tmp_path / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[trmkit]\n{entry} = {module}\n")
    (tmp_path / f"{module}.py").write_text(module_text)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()


def test_third_party_entry_point_named_like_a_builtin_cannot_replace_it(
    tmp_path, monkeypatch, capsys
):
    module_text = (
        "from trmkit.hookspecs import hookimpl\n"
        "@hookimpl\n"
        "def register_tasks(register):\n"
        "    raise SystemExit('the impostor ran')\n"
    )
    monkeypatch.delenv("TRMKIT_LOAD_PLUGINS", raising=False)
    _fake_distribution(tmp_path, monkeypatch, "trmkit-impostor", "sudoku", module_text)
    plugins.registry.loaded = False
    try:
        plugins.load_plugins()
        plugins.reset()
        err = capsys.readouterr().err
        assert err.count("Warning:") == 1
        assert (
            "plugin 'sudoku' of distribution trmkit-impostor was not loaded: its entry point "
            "has the name of the plugin of distribution trmkit" in err
        )
        assert plugins.task_entries()["sudoku-extreme"].plugin == "sudoku"
        assert plugins.registry.dist_of["sudoku"] == "trmkit"
    finally:
        plugins.failed.pop("sudoku (trmkit-impostor)", None)
        plugins.reset()


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        # pluggy refused it at register time: a PluginValidationError traceback from every
        # trmkit command, `trmkit tasks` included
        (
            "register_tasks(reg)",
            "plugin 'sloppy' (distribution trmkit-sloppy) was skipped: its hook "
            "register_tasks(reg) does not take trmkit's arguments (register); ",
        ),
        # silently ignored: the author saw no task and no reason
        (
            "register_task(register)",
            "plugin 'sloppy' (distribution trmkit-sloppy) implements register_task, which is "
            "not a trmkit hook (trmkit's: register_commands, register_components, ",
        ),
    ],
)
def test_hook_trmkit_does_not_have_is_one_warning(tmp_path, monkeypatch, capsys, hook, expected):
    module_text = f"from trmkit.hookspecs import hookimpl\n@hookimpl\ndef {hook}:\n    pass\n"
    monkeypatch.delenv("TRMKIT_LOAD_PLUGINS", raising=False)
    _fake_distribution(tmp_path, monkeypatch, "trmkit-sloppy", "sloppy", module_text)
    plugins.registry.loaded = False
    try:
        plugins.load_plugins()
        plugins.reset()
        listed = CliRunner().invoke(cli, ["tasks"])
        assert listed.exit_code == 0 and "sudoku-4x4" in listed.stdout
        warnings = [line for line in capsys.readouterr().err.splitlines() if "sloppy" in line]
        assert len(warnings) == 1 and warnings[0].startswith("Warning: " + expected)
    finally:
        sys.modules.pop("trmkit_sloppy_mod", None)  # the next case writes another module
        plugins.failed.pop("sloppy", None)
        if plugins.pm.get_plugin("sloppy") is not None:
            plugins.pm.unregister(name="sloppy")
        plugins.reset()


def test_builtins_load_before_third_party_entry_points(tmp_path, monkeypatch, capsys):
    """Even when the impostor's entry point is listed first, the built-in keeps its name."""
    from importlib import metadata

    module_text = "raise SystemExit('the impostor was imported')\n"
    _fake_distribution(tmp_path, monkeypatch, "trmkit-first", "maze", module_text)
    real = metadata.entry_points
    monkeypatch.setattr(
        plugins.metadata,
        "entry_points",
        lambda group: sorted(real(group=group), key=lambda ep: ep.dist.name != "trmkit-first"),
    )
    saved = {name: plugins.pm.get_plugin(name) for name in ("maze",)}
    plugins.pm.unregister(name="maze")
    plugins.registry.dist_of.pop("maze")
    plugins.registry.loaded = False
    try:
        plugins.load_plugins()
        plugins.reset()
        assert plugins.registry.dist_of["maze"] == "trmkit"
        assert "maze-hard" in plugins.task_entries()
        assert "distribution trmkit-first was not loaded" in capsys.readouterr().err
    finally:
        plugins.failed.pop("maze (trmkit-first)", None)
        if plugins.pm.get_plugin("maze") is None:
            plugins.pm.register(saved["maze"], name="maze")
            plugins.registry.dist_of["maze"] = "trmkit"
        plugins.reset()


class _Exploding:
    """A plugin whose generator source raises ValueError (a bug in plugin code)."""

    @staticmethod
    @hookimpl
    def register_tasks(register):
        def load(request):
            raise ValueError("row 3 has 5 cells, expected 4")

        source = Source("gen", "explodes", load, kind="generator")
        register(make_task("exploding", sources={"gen": source}))


def test_exception_in_plugin_code_is_one_line_naming_plugin_task_and_hook(tmp_path, monkeypatch):
    monkeypatch.delenv("TRMKIT_DEBUG", raising=False)
    args = ["build", "--task", "exploding", "--out", str(tmp_path / "out")]
    with registered(_Exploding, "exploding-plugin"):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith(
            "Error: plugin 'exploding-plugin' (task 'exploding') raised ValueError in "
            "_Exploding.register_tasks.<locals>.load ("
        )
        assert "row 3 has 5 cells, expected 4" in lines[0] and "--traceback" in lines[0]
        assert not (tmp_path / "out").exists()
        for extra_args, env in ((["--traceback"], {}), ([], {"TRMKIT_DEBUG": "1"})):
            result = CliRunner().invoke(cli, extra_args + args, env=env)
            assert result.exit_code == 1
            assert isinstance(result.exception, ValueError)  # the stack is not hidden


def test_exception_outside_plugin_code_is_not_blamed_on_a_plugin():
    try:
        {}["missing"]
    except KeyError as exc:
        assert plugins.plugin_failure(exc) is None
    assert plugins.plugin_failure(UnknownNameError("x")) is None
