"""The minimal plugin in docs/plugins.md is real: it registers, builds and inverts."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from trmkit import plugins

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


@pytest.fixture()
def mirror_module():
    source = re.search(r"```python\n(# trmkit_mirror/__init__.py\n.*?)```", DOC.read_text(), re.S)
    assert source, "docs/plugins.md lost its example plugin"
    module = types.ModuleType("trmkit_mirror_doc")
    exec(compile(source.group(1), str(DOC), "exec"), module.__dict__)
    sys.modules[module.__name__] = module
    plugins.load_plugins()
    plugins.pm.register(module, name="mirror-doc")
    plugins.reset()
    try:
        yield module
    finally:
        plugins.pm.unregister(name="mirror-doc")
        plugins.reset()
        sys.modules.pop(module.__name__, None)


def test_doc_plugin_registers_and_inverts(mirror_module):
    task = plugins.get_task("mirror-5x5")
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 4, size=(5, 5))
    for t in task.augmenter.draw(None, 5, rng):
        assert np.array_equal(task.augmenter.invert(t, task.augmenter.apply(t, grid)), grid)
    assert np.array_equal(task.codec.decode(task.codec.encode(grid)), grid)


def test_doc_plugin_builds_a_store(mirror_module, tmp_path):
    from trmkit.data.build import build_dataset
    from trmkit.data.store import open_store

    task = plugins.get_task("mirror")
    build_dataset(task, tmp_path / "mirror", options={"count": "50"}, progress=False)
    store = open_store(tmp_path / "mirror", task="mirror")
    train, test = store["train"], store["test"]
    # 45 training grids x (identity + 3 colour permutations); 5 held-out grids, not augmented
    assert train.meta.total_puzzles == 180 and train.meta.total_groups == 45
    assert test.meta.total_puzzles == 5 and test.meta.total_examples == 5
    inputs, labels = train.inputs[:], train.labels[:]
    for row in range(0, 180, 7):
        transform = train.transforms[row]
        grid_in = task.augmenter.invert(transform, task.codec.decode(inputs[row]))
        grid_out = task.augmenter.invert(transform, task.codec.decode(labels[row]))
        assert np.array_equal(grid_out, grid_in[:, ::-1])  # the stored record inverts exactly


def test_doc_plugin_passes_the_conformance_kit(mirror_module):
    from trmkit.testing import check_task

    check_task(plugins.get_task("mirror"))


def test_doc_helpers_example_passes_the_conformance_kit():
    from trmkit.testing import check_task

    source = re.search(r"```python\n(# trmkit_halfturn/__init__.py.*?)```", DOC.read_text(), re.S)
    assert source, "docs/plugins.md lost its trmkit.grids example"
    namespace: dict = {}
    exec(compile(source.group(1), str(DOC), "exec"), namespace)
    task = namespace["HALFTURN"]
    check_task(task, max_examples=5)
    # the property the kit cannot know: augmented puzzles keep their solutions
    puzzle = task.sources["generate"].load(plugins_request()).puzzles[0]
    example = (puzzle.train or puzzle.test)[0]
    for tid in range(8):
        t = np.array([tid])
        moved = task.augmenter.apply(t, example.input)
        assert np.array_equal(moved[::-1, ::-1], task.augmenter.apply(t, example.output))


def plugins_request():
    from trmkit.task import SourceRequest

    return SourceRequest(None, 0, {"count": "3", "test_count": "1"})
