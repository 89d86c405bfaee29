"""Comments and messages under trmkit/ cite the project's own docs, and what they cite exists:
``docs/x.md`` is a file, ``docs/x.md, "Heading"`` a heading of it, ``docs/engine.md,
deviation N`` an item of its deviation list. No citation of a document outside the
repository ("reference 9.1 #5", "section 4.3")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "trmkit").rglob("*.py"))

DOC = re.compile(r"docs/([a-z0-9-]+\.md)")
HEADING = re.compile(r'docs/([a-z0-9-]+\.md),\s+"([^"]+)"')
DEVIATION = re.compile(r"docs/engine\.md,\s+deviation\s+(\d+)")
FOREIGN = re.compile(
    r"\b(?:reference|section|sections|quirk)\s+\d+\.\d+|\b9\.1\s*#\d|"
    r"trm-reference"
)


PENDING: dict[tuple[str, str], str] = {}
"""Headings a parallel branch is writing: tolerated while absent, checked once present.
Delete an entry when its branch has merged."""


def _text(path: Path) -> str:
    # citations may wrap a line inside a docstring or a comment
    return re.sub(r"\s*\n\s*#?\s*", " ", path.read_text(encoding="utf-8"))


def _headings(doc: str) -> list[str]:
    return [
        line.lstrip("#").strip()
        for line in (ROOT / "docs" / doc).read_text().splitlines()
        if line.startswith("#")
    ]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_citations_exist(path):
    text = _text(path)
    for doc in DOC.findall(text):
        assert (ROOT / "docs" / doc).is_file(), f"{path.name} cites docs/{doc}, which is missing"
    for doc, heading in HEADING.findall(text):
        if (doc, heading) in PENDING and not any(heading in h for h in _headings(doc)):
            continue
        assert any(heading in h for h in _headings(doc)), (
            f'{path.name} cites docs/{doc}, "{heading}": no such heading'
        )
    engine = (ROOT / "docs" / "engine.md").read_text()
    deviations = engine.split("## Deviations", 1)[1]
    for number in DEVIATION.findall(text):
        assert re.search(rf"^{number}\. ", deviations, re.M), (
            f"{path.name} cites docs/engine.md deviation {number}, which is not listed"
        )
    foreign = FOREIGN.findall(text)
    assert not foreign, f"{path.name} cites a document outside the repository: {foreign}"
