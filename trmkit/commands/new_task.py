"""`trmkit new-task NAME [--dir DIR]`: write a pip-installable task plugin to start from.

The package it writes (``DIR/trmkit-NAME``) works unchanged: ``pip install -e .`` registers
the task through its entry point, ``python -m pytest`` runs the conformance kit on it, and
``trmkit train --task NAME`` builds its data and trains its quick recipe. The example task
outlines the shapes of a small grid, built from `trmkit.grids` (OffsetCodec,
DihedralAugmenter, AccuracyEvaluator, generator_source); the author replaces
``make_example`` and ``solve`` with their own puzzle. `write_package` is the library form.
"""

from __future__ import annotations

import os
import re
import shutil
import string
from pathlib import Path

import click

from trmkit.errors import ConfigError
from trmkit.oserrors import check_writable_dir, writing
from trmkit.plugins import MAX_TASK_NAME

RESERVED = ("sudoku", "maze", "arc", "models", "commands", "trmkit")
"""Names of the built-in plugins (and trmkit itself): a new plugin may not take them."""
NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "trmkit task plugin: $task"
requires-python = ">=3.10"
dependencies = ["trmkit>=$trmkit_version"]

[project.optional-dependencies]
test = ["pytest>=8", "hypothesis>=6.100"]

# trmkit finds the plugin through this entry point (group "trmkit"): name = plugin name,
# value = the module holding the hook implementations.
[project.entry-points.trmkit]
$plugin = "$module.plugin"

[tool.setuptools.packages.find]
where = ["src"]

# the recipes ship inside the package (register_recipes hands trmkit their paths)
[tool.setuptools.package-data]
$module = ["recipes/*.toml"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

README = """\
# $dist

A [trmkit](https://github.com/) task plugin, written by `trmkit new-task $task`.

```bash
pip install -e '.[test]'          # registers the task: `trmkit tasks` lists $task
python -m pytest                  # the conformance kit (trmkit.testing) + your own properties
trmkit recipes                    # $task-quick, registered by this plugin
trmkit train --task $task         # builds the data (cached) and trains $task-quick
```

Where to change what:

| file | what |
|---|---|
| `src/$module/task.py` | the puzzle: `make_example`, `solve`, grid size, alphabet, Task |
| `src/$module/plugin.py` | the hooks: `register_tasks`, `register_recipes` |
| `src/$module/recipes/$task-quick.toml` | the quick recipe (trmkit's docs/recipes.md) |
| `tests/test_task.py` | the conformance kit and a property of your own |

Keep `DihedralAugmenter` only if a rotated or reflected puzzle with its solution transformed
the same way is again a puzzle and its solution; otherwise write an `Augmenter` (or use
`num_aug = 0`). trmkit's docs/plugins.md describes every field, hook and helper.
"""

PLUGIN = '''\
"""Hooks of the $plugin plugin: trmkit calls them once, with a register callback."""

from __future__ import annotations

from pathlib import Path

from trmkit.hookspecs import hookimpl

from $module.task import TASK

RECIPES = Path(__file__).parent / "recipes"


@hookimpl
def register_tasks(register):
    register(TASK)


@hookimpl
def register_recipes(register):
    for path in sorted(RECIPES.glob("*.toml")):
        register(path.stem, path)
'''

TASK = '''\
"""The $task task: draw the outline of the shapes on a 6 x 6 torus.

A puzzle is a grid of empty (0) and filled (1) cells; its solution keeps exactly the filled
cells that touch an empty cell above, below, left or right (the edges wrap), i.e. the
outline of every shape. Rotating or reflecting a puzzle rotates or reflects its outline,
so the 8 dihedral transforms are valid augmentations.

To make it your own puzzle: change SIDE / VALUES, `make_example` (one seeded random puzzle
with its solution) and `solve`; the rest is trmkit.grids.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from trmkit.grids import AccuracyEvaluator, DihedralAugmenter, OffsetCodec, generator_source
from trmkit.task import BuildDefaults, Example, Task

SIDE = 6
"""rows and columns of every grid (the codec's sequence length is SIDE * SIDE)."""
VALUES = 2
"""cell values are 0 .. VALUES - 1 (tokens 1 .. VALUES; token 0 pads)."""


def solve(grid: np.ndarray) -> np.ndarray:
    """The solution of a puzzle: the filled cells with an empty 4-neighbour (on a torus)."""
    empty_next = sum(
        np.roll(grid, shift, axis) == 0 for axis in (0, 1) for shift in (-1, 1)
    )
    return ((grid == 1) & (empty_next > 0)).astype(np.int64)


def make_example(rng: np.random.Generator, options: Mapping[str, int]) -> Example:
    """One puzzle and its solution, drawn from ``rng`` (the build's --seed)."""
    grid = (rng.random((SIDE, SIDE)) < options["density"] / 100).astype(np.int64)
    return Example(grid, solve(grid))


TASK = Task(
    name="$task",
    description="outline the shapes of a 6 x 6 grid (trmkit new-task example)",
    codec=OffsetCodec(SIDE, SIDE, VALUES),
    augmenter=DihedralAugmenter(),
    evaluator=AccuracyEvaluator(),
    sources={
        "generate": generator_source(
            make_example,
            count=2000,
            test_count=200,
            options={"density": (60, "percent of filled cells in a puzzle")},
            description="seeded random 6 x 6 grids and their outlines",
        )
    },
    defaults=BuildDefaults(source="generate", num_aug=7, recipe="$task-quick"),
)
'''

RECIPE = """\
name = "$task-quick"
description = "$description"
expected = "$expected"
hardware = "$hardware"

[data]
task = "$task"
source = "generate"
num_aug = 7
seed = 0
options = { count = "2000", test_count = "200" }

[model]
name = "trm"
mixer = "mlp_t"
pos_encodings = "none"
hidden_size = 64
num_heads = 4
expansion = 4.0
h_cycles = 2
l_cycles = 2
l_layers = 2
puzzle_emb_ndim = 0
halt_max_steps = 4
halt_exploration_prob = 0.1
loss_type = "stablemax_cross_entropy"

[optim]
global_batch_size = 64
lr = 2e-3
lr_min_ratio = 1.0
warmup_steps = 50
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
puzzle_emb_lr = 1e-3
puzzle_emb_weight_decay = 0.1
ema = true
ema_rate = 0.99

[train]
epochs = 24  # an epoch is one pass over the 2000 puzzles: 24 x 2000 / 64 = 750 steps
eval_interval = 6  # evaluate every 6 epochs (187 steps)
seed = 0
checkpoint_keep = 2
log_every = 25
"""

TESTS = '''\
"""The $task task keeps the trmkit contract (the conformance kit) and its own promises."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from trmkit.testing import TaskConformance
from $module.task import SIDE, TASK, solve


class TestTask(TaskConformance):
    """One test per property: codec round trip, exact inverses, identity, seeded draws,
    batched paths, evaluator, recipe (docs/plugins.md of trmkit, "The conformance kit")."""

    task = TASK


@given(
    hnp.arrays(np.int64, (SIDE, SIDE), elements=st.integers(0, 1)),
    st.integers(0, 7),
)
def test_augmented_puzzles_keep_their_solutions(grid, tid):
    """What the kit cannot know: a transformed puzzle's solution is the transformed
    solution (so DihedralAugmenter is a valid augmentation for this task)."""
    augmenter = TASK.augmenter
    t = np.array([tid])
    assert np.array_equal(solve(augmenter.apply(t, grid)), augmenter.apply(t, solve(grid)))
'''

DEFAULT_EXPECTED = (
    "100% exact accuracy (100% token accuracy) on the 200 held-out puzzles after 750 steps, "
    "measured with the unchanged scaffold: exact 19.5% / 96.0% / 100% / 100% at steps "
    "188 / 376 / 564 / 750. Change it when you change the task."
)
DESCRIPTION = (
    "CPU recipe: TRM (MLP-t mixer, D=64, 2 layers, 4 supervision steps) on 2000 generated "
    "6 x 6 puzzles x 8 dihedral copies, 200 held-out test puzzles"
)
DEFAULT_HARDWARE = (
    "Laptop/desktop CPU, 2+ cores, < 1 GB RAM; 750 optimizer steps at batch 64. Measured on "
    "a shared 2-core machine (OMP_NUM_THREADS=1, load 5-6 from other jobs): 15.3 min of "
    "training including the data build; 100% exact first at step 564 (about 11.5 min)."
)


def package_names(name: str) -> dict[str, str]:
    """task, plugin (entry point), distribution and module names for ``name``."""
    if len(name) > MAX_TASK_NAME:  # it names directories, a package and a module
        raise ConfigError(
            f"new-task {name[:40]!r}...: a task name is at most {MAX_TASK_NAME} characters "
            f"(this one has {len(name)}); choose a shorter name"
        )
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"new-task {name!r}: a task name is lower-case letters and digits, words joined "
            f"by '-' or '_', starting with a letter (e.g. outline or life-step)"
        )
    words = re.split(r"[-_]", name)
    plugin = "-".join(words)
    if plugin in RESERVED:
        raise ConfigError(
            f"new-task {name!r}: {plugin!r} is the name of a built-in plugin; choose another"
        )
    return {
        "task": name,
        "plugin": plugin,
        "dist": f"trmkit-{plugin}",
        "module": "trmkit_" + "_".join(words),
    }


def write_package(name: str, directory: Path) -> Path:
    """Write the plugin package for task ``name`` into ``directory/trmkit-NAME``; returns
    its path. Refuses a name that is taken or malformed, and an existing non-empty target."""
    from trmkit import __version__, atomic, plugins

    values = package_names(name)
    for entry in plugins.task_entries().values():
        if name in (entry.task.name, *entry.aliases):
            raise ConfigError(
                f"new-task {name!r}: a task of that name is already registered by plugin "
                f"{entry.plugin!r}; choose another name"
            )
    root = Path(directory) / values["dist"]
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"new-task {name!r}: {root} already exists and is not empty")
    values.update(
        trmkit_version=".".join(__version__.split(".")[:2]),
        expected=DEFAULT_EXPECTED,
        hardware=DEFAULT_HARDWARE,
        description=DESCRIPTION,
    )
    module = f"src/{values['module']}"
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{module}/__init__.py": '"""trmkit task plugin: $task."""\n',
        f"{module}/plugin.py": PLUGIN,
        f"{module}/task.py": TASK,
        f"{module}/recipes/{name}-quick.toml": RECIPE,
        "tests/test_task.py": TESTS,
    }
    check_writable_dir(root, "package directory")
    # staged under a temporary sibling and moved into place (`trmkit.atomic.replace_dir`):
    # a full disk or a kill leaves no half-written package (docs/errors.md, "Write boundaries")
    tmp = root.with_name(f"{atomic.TMP_MARK}{root.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with writing(root, "task package"):
            for path, template in files.items():
                (tmp / path).parent.mkdir(parents=True, exist_ok=True)
                text = string.Template(template).substitute(values)
                (tmp / path).write_text(text, encoding="utf-8")
            atomic.replace_dir(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


@click.command(name="new-task")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="Where to write the package (it goes into DIR/trmkit-NAME).",
)
def new_task_cmd(name: str, directory: Path) -> None:
    """Write a pip-installable task plugin for NAME: a working example task built on
    trmkit.grids, a quick recipe, and tests using the conformance kit."""
    root = write_package(name, directory)
    click.echo(
        f"wrote {root}\nnext:\n  cd {root}\n  pip install -e '.[test]'\n  python -m pytest\n"
        f"  trmkit train --task {name}"
    )


COMMANDS = (new_task_cmd,)
