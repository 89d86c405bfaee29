"""The README's set-up commands stay true: CI runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_opens_with_train_then_test_command():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    train, test = blocks[0], blocks[1]
    assert "pip install torch==2.13.0" in train and "trmkit train --task sudoku" in train
    assert "pip install torch==2.13.0" in test and test.endswith("python -m pytest")


def test_ci_runs_the_readme_test_command():
    test_block = _bash_blocks((ROOT / "README.md").read_text())[1]
    # The README's command after the venv set-up is what .ci/run executes verbatim.
    readme_command = test_block.split("&& ", 2)[2]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_command in ci_lines
