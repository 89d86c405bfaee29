"""`trmkit new-task`: the scaffold is a valid, installable plugin that passes its own tests.

The fast tests check the written files in-process; the slow round trip installs the package
into a fresh venv (with this environment's packages visible), runs its tests and trains
its quick recipe a few steps, exactly as a new author would (CI runs it: .ci/run).
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_plugins import registered

from trmkit.cli import cli
from trmkit.commands.new_task import write_package
from trmkit.config import load_recipe
from trmkit.recipes import find_recipe
from trmkit.testing import CHECKS, check_task

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@pytest.fixture
def scaffold(tmp_path):
    """The package for task 'outline', importable from its src/ for this test."""
    root = write_package("outline", tmp_path)
    sys.path.insert(0, str(root / "src"))
    try:
        yield root
    finally:
        sys.path.remove(str(root / "src"))
        for name in [m for m in sys.modules if m.startswith("trmkit_outline")]:
            del sys.modules[name]


def test_new_task_writes_a_complete_package(scaffold):
    root = scaffold
    assert root.name == "trmkit-outline"
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert written == [
        "README.md",
        "pyproject.toml",
        "src/trmkit_outline/__init__.py",
        "src/trmkit_outline/plugin.py",
        "src/trmkit_outline/recipes/outline-quick.toml",
        "src/trmkit_outline/task.py",
        "tests/test_task.py",
    ]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == "trmkit-outline"
    assert project["project"]["entry-points"]["trmkit"] == {"outline": "trmkit_outline.plugin"}
    assert project["tool"]["setuptools"]["package-data"] == {"trmkit_outline": ["recipes/*.toml"]}
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    assert "TaskConformance" in (root / "tests" / "test_task.py").read_text()


def test_the_scaffold_task_passes_the_kit_and_its_recipe_is_registered(scaffold):
    plugin = importlib.import_module("trmkit_outline.plugin")
    task = importlib.import_module("trmkit_outline.task").TASK
    recipe_file = scaffold / "src" / "trmkit_outline" / "recipes" / "outline-quick.toml"
    with registered(plugin, "outline"):
        assert find_recipe("outline-quick") == recipe_file
        recipe = load_recipe("outline-quick")
        assert recipe.data.task == "outline" and recipe.model.name == "trm"
        check_task(task, max_examples=5)
        assert set(CHECKS) >= {"recipe", "answer_checker"}
        listed = CliRunner().invoke(cli, ["recipes"]).output
        assert "outline-quick  (task outline, plugin outline)" in listed


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sudoku"], "'sudoku' is the name of a built-in plugin"),
        (["Life_Step"], "a task name is lower-case letters and digits"),
        (["maze-tiny"], "already registered by plugin 'maze'"),
    ],
)
def test_new_task_refuses_bad_names_in_one_line(tmp_path, args, expected):
    result = CliRunner().invoke(cli, ["new-task", *args, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert expected in result.output and result.output.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_new_task_refuses_to_overwrite(tmp_path):
    assert CliRunner().invoke(cli, ["new-task", "life", "--dir", str(tmp_path)]).exit_code == 0
    result = CliRunner().invoke(cli, ["new-task", "life", "--dir", str(tmp_path)])
    assert result.exit_code == 1 and "already exists and is not empty" in result.output


def _venv_with_this_environment(where: Path) -> Path:
    """A fresh venv that sees this environment's packages (trmkit, torch) through a .pth
    line, and none of its own setuptools (the build uses this environment's)."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = where / "bin" / "python"
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "setuptools"], check=False)
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = sysconfig.get_path("purelib")
    Path(purelib, "_trmkit_dev.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def _build_flags() -> list[str]:
    """Build with this environment's setuptools when it can build editable wheels itself
    (>= 70.1, or with the wheel package); else let pip fetch one (build isolation)."""
    import importlib.util

    try:
        import setuptools
    except ImportError:
        return []
    version = tuple(int(p) for p in re.findall(r"\d+", setuptools.__version__)[:2])
    if version >= (70, 1) or importlib.util.find_spec("wheel") is not None:
        return ["--no-build-isolation"]
    return []


@pytest.mark.slow
def test_scaffold_round_trip_installs_passes_its_tests_and_trains(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRMKIT_CACHE": str(tmp_path / "cache")}
    env.pop("TRMKIT_LOAD_PLUGINS", None)
    python = _venv_with_this_environment(tmp_path / "venv")

    def run(*args, cwd=tmp_path):
        done = subprocess.run(
            [str(python), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    run("-m", "trmkit.cli", "new-task", "outline", "--dir", tmp_path)
    root = tmp_path / "trmkit-outline"
    run("-m", "pip", "install", "-q", "--no-deps", *_build_flags(), "-e", root)
    assert "outline" in run("-m", "trmkit.cli", "tasks")
    assert "11 passed" in run("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=root)
    out = run(
        "-m",
        "trmkit.cli",
        "train",
        "--task",
        "outline",
        "--max-steps",
        "3",
        "--out",
        tmp_path / "run",
        "--no-progress",
    )
    assert "checkpoint:" in out
