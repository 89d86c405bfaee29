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


def test_listed_by_trmkit_tasks_and_plugins(toy_plugin):
    rows = json.loads(CliRunner().invoke(cli, ["tasks", "--json"]).output)
    toy = next(row for row in rows if row["name"] == "toy-flip")
    assert toy["plugin"] == TOY_PLUGIN and toy["aliases"] == ["toy"]
    info = json.loads(CliRunner().invoke(cli, ["plugins"]).output)
    entry = next(row for row in info if row["name"] == TOY_PLUGIN)
    assert entry["distribution"] == "trmkit-toy" and entry["version"] == "0.1.0"
    assert entry["hooks"] == ["register_tasks"]


def test_trmkit_load_plugins_restricts_third_party(monkeypatch, toy):
    sys.path.insert(0, str(TOY_DIR))
    try:
        for value, visible in (("", False), ("someone-else", False), ("trmkit-toy", True)):
            unregister_plugin(TOY_PLUGIN)
            monkeypatch.setenv("TRMKIT_LOAD_PLUGINS", value)
            reload_plugins()
            assert ("toy-flip" in plugins.task_entries()) is visible, value
            if visible:  # the built-in tasks load whatever the variable says
                assert len(plugins.task_entries()) > 1
    finally:
        sys.path.remove(str(TOY_DIR))
        unregister_plugin(TOY_PLUGIN)


@pytest.mark.slow  # a fresh interpreter importing torch: ~5-8 s on the shared machine
def test_console_script_builds_with_the_plugin(tmp_path):
    script = shutil.which("trmkit") or str(Path(sys.executable).parent / "trmkit")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOY_DIR), *sys.path])}
    env.pop("TRMKIT_LOAD_PLUGINS", None)
    out = tmp_path / "store"
    result = subprocess.run(
        [script, "build", "--task", "toy-flip", "--out", str(out), "-o", "count=10"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "built toy-flip dataset" in result.stdout
    assert open_store(out, "toy-flip")["train"].meta.total_groups > 0
