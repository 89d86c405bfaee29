"""`trmkit compare`: recipes and methods side by side, over seeds, on one test split.

* `trmkit.comparison.spec`: the variants, the spec of a comparison directory
  (``compare-spec.json``) and the refusal of a directory holding another comparison.
* `trmkit.comparison.runner`: every (variant, seed) a `trmkit train` run in its own
  process, J at a time; finished runs skipped, unfinished ones resumed; the wall clock.
* `trmkit.comparison.report`: ``compare.json``, ``compare.md``, ``compare.png`` from the
  runs' own files, with the intervals of `trmkit.stats`.

It sits in the training layer: it orchestrates training runs (as processes) and reads
their metrics log, below the command that exposes it (`trmkit.commands.compare`).
"""
