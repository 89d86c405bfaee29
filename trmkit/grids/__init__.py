"""Helpers for grid tasks: the pieces the built-in Sudoku, Maze and ARC plugins are made of.

A plugin builds its `trmkit.task.Task` from them instead of writing its own (see
docs/plugins.md, "Helpers"). They use only numpy and trmkit's base modules (`trmkit.task`,
`trmkit.errors`), never the training code, so importing them is cheap.

codecs       `OffsetCodec(rows, cols, num_values)`: cell value v <-> token v + 1, PAD 0, for
             fixed-shape grids (a `trmkit.task.BatchCodec`).
augmenters   `DihedralAugmenter()`: the 8 rotations/reflections (a `BatchAugmenter`);
             `apply_dihedral`, `invert_dihedral` and their ``_batch`` forms, `DIHEDRAL_INVERSE`.
evaluators   `AccuracyEvaluator()`: exact_accuracy, token_accuracy, count; `AccuracyTally`
             and `real_rows` to build your own.
sources      `generator_source(make, count=..., test_count=..., options=...)`: a seeded
             offline source from one ``make(rng, options) -> Example`` function;
             `trmkit.grids.csvsource`: the ``source,question,answer,rating`` CSV layout
             (`sources`, `kept_tables`, `table_puzzles`, `read_table`, `make_lut`,
             `map_chars`, ...).
puzzle text  `trmkit.grids.text`: grids as people type them (several lines or one, blanks,
             separators, blank lines between puzzles, `# name` lines) for ``parse_puzzles``.
"""

from __future__ import annotations

from trmkit.grids import csvsource
from trmkit.grids.codec import OffsetCodec
from trmkit.grids.dihedral import (
    DIHEDRAL_INVERSE,
    NUM_DIHEDRAL,
    DihedralAugmenter,
    apply_dihedral,
    apply_dihedral_batch,
    invert_dihedral,
    invert_dihedral_batch,
)
from trmkit.grids.metrics import AccuracyEvaluator, AccuracyRun, AccuracyTally, real_rows
from trmkit.grids.sources import ExampleMaker, generator_source

__all__ = [
    "DIHEDRAL_INVERSE",
    "NUM_DIHEDRAL",
    "AccuracyEvaluator",
    "AccuracyRun",
    "AccuracyTally",
    "DihedralAugmenter",
    "ExampleMaker",
    "OffsetCodec",
    "apply_dihedral",
    "apply_dihedral_batch",
    "csvsource",
    "generator_source",
    "invert_dihedral",
    "invert_dihedral_batch",
    "real_rows",
]
