"""A plugin distribution outside trmkit, found through its real `trmkit` entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TOY_DIR, TOY_PLUGIN, reload_plugins, unregister_plugin

from trmkit import plugins
from trmkit.cli import cli
from trmkit.data.store import open_store
from trmkit.errors import UnknownNameError


def test_listed_by_trmkit_tasks_and_plugins(toy_plugin):
    rows = json.loads(CliRunner().invoke(cli, ["tasks", "--json"]).output)
    toy = next(row for row in rows if row["name"] == "toy-flip")
    assert toy["plugin"] == TOY_PLUGIN and toy["aliases"] == ["toy"]
    info = json.loads(CliRunner().invoke(cli, ["plugins"]).output)
    entry = next(row for row in info if row["name"] == TOY_PLUGIN)
    assert entry["distribution"] == "trmkit-toy" and entry["version"] == "0.1.0"
    assert entry["hooks"] == ["register_tasks"]


def test_trmkit_load_plugins_restricts_third_party(monkeypatch, toy, capsys):
    sys.path.insert(0, str(TOY_DIR))
    cases = (
        ("", False),
        ("someone-else", False),
        ("trmkit-toy", True),  # the distribution name
        ("toy", True),  # the plugin (entry-point) name, as `trmkit plugins` shows it
        ("Trmkit_Toy", True),  # PEP 503: case and - _ . runs do not matter
        (" trmkit.toy , other", True),
    )
    try:
        for value, visible in cases:
            unregister_plugin(TOY_PLUGIN)
            monkeypatch.setenv("TRMKIT_LOAD_PLUGINS", value)
            capsys.readouterr()
            reload_plugins()
            assert ("toy-flip" in plugins.task_entries()) is visible, value
            err = capsys.readouterr().err
            unmatched = [n for n in value.split(",") if n.strip() and "toy" not in n.lower()]
            for name in unmatched:
                assert f"TRMKIT_LOAD_PLUGINS names {name.strip()!r}, which matches no " in err
                assert "toy (trmkit-toy)" in err  # the names that would have matched
            if not unmatched:
                assert "TRMKIT_LOAD_PLUGINS" not in err, value
            assert len(plugins.task_entries()) > 1  # built-ins load whatever the variable says
            if not visible:
                hidden = r"left out the plugins toy \(trmkit-toy\)"
                with pytest.raises(UnknownNameError, match=hidden):
                    plugins.get_task("toy-flip")
    finally:
        sys.path.remove(str(TOY_DIR))
        unregister_plugin(TOY_PLUGIN)
        plugins.filtered_out.clear()


@pytest.mark.slow  # a fresh interpreter importing torch: ~5-8 s on the shared machine
def test_console_script_builds_with_the_plugin(tmp_path):
    script = shutil.which("trmkit") or str(Path(sys.executable).parent / "trmkit")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOY_DIR), *sys.path])}
    env.pop("TRMKIT_LOAD_PLUGINS", None)
    out = tmp_path / "store"
    result = subprocess.run(
        [script, "build", "--task", "toy-flip", "--out", str(out), "-o", "count=10"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "built toy-flip dataset" in result.stdout
    assert open_store(out, "toy-flip")["train"].meta.total_groups > 0
