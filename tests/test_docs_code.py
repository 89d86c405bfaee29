"""Every ```python block of README.md and docs/*.md runs as written, so an example that
stops working fails the suite.

The rules (docs/python-api.md says where the blocks run):

* the blocks of one page run in order in one namespace (a page reads as a story), in a
  fresh temporary working directory with ``$TRMKIT_CACHE`` inside the test's temporary
  directory;
* that directory holds ``runs/sudoku-quick``, a small 6x6-sudoku run trained here for the
  docs (the path `trmkit train --recipe sudoku-quick --out runs/sudoku-quick` would write),
  and ``bundles/sudoku-official``, a copy of its newest bundle standing in for the
  imported official checkpoint of docs/interop.md (the block only loads it);
* a block whose first line is ``# NAME/__init__.py`` is that package's file: after it runs,
  ``import NAME`` in a later block of the page gives it;
* a block preceded by ``<!-- not-run: REASON -->`` is skipped; such exclusions are few
  (`MAX_NOT_RUN`) and each says why (a fragment of a larger run, hardware this machine
  has not);
* only ``python`` fences are code to run; ``py``/``pycon``/``python3`` fences are refused,
  so no example escapes by its tag.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import types
from pathlib import Path

import attrs
import pytest
import torch
from tiny_training import one_thread, write_recipe

ROOT = Path(__file__).resolve().parents[1]
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
FENCE = re.compile(r"^```\s*(\S*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.*?)\s*-->\s*$")
PACKAGE_FILE = re.compile(r"^#\s*([A-Za-z_]\w*)/__init__\.py\b")
OTHER_PYTHON_TAGS = ("py", "pycon", "python3", "ipython")
MAX_NOT_RUN = 3


@attrs.frozen
class Block:
    page: Path
    line: int
    """1-based line of the block's first code line in the page."""
    code: str
    not_run: str | None
    tag: str


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` with their tag, first line and not-run reason."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        start = i + 1
        end = start
        while end < len(lines) and not FENCE.match(lines[end]):
            end += 1
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        reason = NOT_RUN.match(before)
        out.append(
            Block(
                page=page,
                line=start + 1,
                code="\n".join(lines[start:end]) + "\n",
                not_run=reason.group(1) if reason else None,
                tag=opened.group(1).lower(),
            )
        )
        i = end + 1
    return out


PYTHON_PAGES = [p for p in PAGES if any(b.tag == "python" for b in blocks(p))]


def test_the_rules_see_every_block():
    every = [b for p in PAGES for b in blocks(p)]
    assert not [f"{b.page.name}:{b.line}" for b in every if b.tag in OTHER_PYTHON_TAGS]
    python = [b for b in every if b.tag == "python"]
    assert len(python) >= 15  # README, python-api, engine, interop, plugins, test-time-compute
    skipped = [b for b in python if b.not_run is not None]
    assert len(skipped) <= MAX_NOT_RUN, [f"{b.page.name}:{b.line}" for b in skipped]
    for b in skipped:
        assert len(b.not_run) >= 20, f"{b.page.name}:{b.line}: say why it cannot run"
    # a marker that is not right before a python block marks nothing: a mistake
    marked = sum(
        1
        for p in PAGES
        for line in p.read_text(encoding="utf-8").splitlines()
        if NOT_RUN.match(line)
    )
    assert marked == len(skipped)


def test_block_parsing(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "text\n\n```python\na = 1\n```\n\n<!-- not-run: needs a GPU the tests lack -->\n"
        "```python\nimport cuda_only\n```\n```bash\nls\n```\n"
    )
    found = blocks(page)
    assert [(b.line, b.code, b.not_run, b.tag) for b in found] == [
        (4, "a = 1\n", None, "python"),
        (9, "import cuda_only\n", "needs a GPU the tests lack", "python"),
        (12, "ls\n", None, "bash"),
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small trained 6x6-sudoku run (the task of the sudoku-quick recipe) and a cache."""
    from trmkit import plugins
    from trmkit.config import load_recipe
    from trmkit.data.build import build_dataset
    from trmkit.training.trainer import Trainer

    before = one_thread()
    tmp = tmp_path_factory.mktemp("docs")
    data = tmp / "data"
    build_dataset(
        plugins.get_task("sudoku-6x6"),
        data,
        num_aug=2,
        seed=0,
        options={"count": "64", "test_count": "32", "givens": "14"},
        progress=False,
    )
    recipe = load_recipe(write_recipe(tmp), ["data.task=sudoku-6x6", "train.epochs=1"])
    Trainer(recipe, run_dir=tmp / "run", data_dir=data, progress=False).run()
    saved = os.environ.get("TRMKIT_CACHE")
    os.environ["TRMKIT_CACHE"] = str(tmp / "cache")
    yield tmp / "run"
    if saved is None:
        os.environ.pop("TRMKIT_CACHE", None)
    else:
        os.environ["TRMKIT_CACHE"] = saved
    torch.set_num_threads(before)


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda p: p.name)
def test_page_runs_as_written(page, world, tmp_path, monkeypatch):
    from trmkit.checkpoint import resolve_bundle

    shutil.copytree(world, tmp_path / "runs" / "sudoku-quick")
    shutil.copytree(resolve_bundle(world), tmp_path / "bundles" / "sudoku-official")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    installed: list[str] = []
    try:
        for block in blocks(page):
            if block.tag != "python" or block.not_run is not None:
                continue
            # padded so a traceback names the page's own line numbers
            code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
            package = PACKAGE_FILE.match(block.code)
            if package:
                module = types.ModuleType(package.group(1))
                module.__file__ = str(tmp_path / package.group(1) / "__init__.py")
                exec(code, module.__dict__)
                sys.modules[module.__name__] = module
                installed.append(module.__name__)
                namespace.update(
                    (k, v) for k, v in module.__dict__.items() if not k.startswith("__")
                )
            else:
                exec(code, namespace)
    finally:
        for name in installed:
            sys.modules.pop(name, None)
