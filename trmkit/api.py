"""The Python API (docs/python-api.md): `load` a trained model, `solve` puzzles and
`evaluate` it with the test-time options of `trmkit solve` / `trmkit eval`, `train` a recipe.

A facade over the functions the commands call, nothing reimplemented: `LoadedModel` is the
`trmkit.checkpoint.Bundle` `trmkit.checkpoint.load_bundle` returns (so ``model, manifest =
trmkit.load(path)`` and ``.model``, the ``torch.nn.Module``, keep working) with the task
it was trained on; ``solve`` runs `trmkit.solve.solve` on what `trmkit.solve.read_puzzles`
reads, ``evaluate`` runs `trmkit.evaluation.evaluate`, `train` runs the trainer
`trmkit train` runs. It sits in the interface layer (docs/architecture.md) because training
is below it; ``import trmkit`` imports it only when ``trmkit.load`` or ``trmkit.train`` is
called.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from trmkit.checkpoint import Bundle, load_bundle
from trmkit.errors import OptionError
from trmkit.inference.policy import HaltPolicy, InferencePolicy
from trmkit.task import Example, RawPuzzle

PuzzlesLike = str | os.PathLike[str] | RawPuzzle | np.ndarray | Sequence[Any]
"""What `LoadedModel.solve` reads: puzzle text or a puzzle file (as `trmkit solve` reads
them), a `RawPuzzle`, one grid (a 2-D array or nested list) or a sequence of those."""


@attrs.define
class LoadedModel(Bundle):
    """A trained model as `trmkit.load` returns it: ``.model`` (the ``torch.nn.Module``),
    ``.manifest``, ``.path``, ``.config`` (the architecture's config), ``.task``, and
    `solve` / `evaluate` with the test-time options of docs/test-time-compute.md."""

    @property
    def config(self) -> Any:
        """The architecture's attrs config (``hidden_size``, ``halt_max_steps``, ...)."""
        return self.model.config

    def puzzles(self, puzzles: PuzzlesLike) -> list[RawPuzzle]:
        """``puzzles`` as the task's `RawPuzzle` list: text and files through
        `trmkit.solve.read_puzzles` (as `trmkit solve` reads them), grids as puzzles of
        their own with no known answer (``grid-1``, ``grid-2``, ...)."""
        from trmkit.solve import read_puzzles

        if isinstance(puzzles, (str, os.PathLike)):
            return read_puzzles(self.task, os.fspath(puzzles))
        if isinstance(puzzles, RawPuzzle):
            return [puzzles]
        if not isinstance(puzzles, (np.ndarray, list, tuple)):
            raise OptionError(
                f"puzzles: a {type(puzzles).__name__}; give puzzle text, a puzzle file, a "
                "RawPuzzle, a 2-D grid (array or nested list of ints) or a list of those"
            )
        items = [puzzles] if _is_grid(puzzles) else puzzles
        return [_as_puzzle(i, item) for i, item in enumerate(items)]

    def solve(
        self,
        puzzles: PuzzlesLike,
        *,
        steps: int | None = None,
        halt: str | HaltPolicy = "fixed",
        samples: int = 1,
        noise: float = 0.0,
        augment: bool = True,
        select: str = "vote",
        seed: int = 0,
        num_aug: int = 8,
        trace: bool = False,
    ) -> list[Any]:
        """One `trmkit.solve.Answer` per test query of ``puzzles`` (``.grid``, ``.valid``,
        ``.correct``, ``.confidence``, ``.steps``; ``self.task.render(answer.grid)`` is
        the text `trmkit solve` prints). The options are `trmkit solve`'s."""
        from trmkit.solve import solve
        from trmkit.task import MAX_NUM_AUG

        if (
            isinstance(num_aug, bool)
            or not isinstance(num_aug, int)
            or not 0 <= num_aug <= MAX_NUM_AUG
        ):
            raise OptionError(f"num_aug {num_aug!r}: must be an integer from 0 to {MAX_NUM_AUG}")
        policy = InferencePolicy(
            steps=steps,
            halt=halt,
            samples=samples,
            noise=noise,
            augment=augment,
            select=select,
            seed=seed,
        ).validate()
        return solve(
            self,
            self.task,
            self.puzzles(puzzles),
            trace=trace,
            num_aug=num_aug,
            seed=seed,
            policy=policy,
        )

    def evaluate(
        self,
        data: str | os.PathLike[str] | None = None,
        *,
        steps: int | None = None,
        halt: str | HaltPolicy = "fixed",
        samples: int = 1,
        noise: float = 0.0,
        augment: bool = True,
        select: str = "vote",
        seed: int = 0,
        batch_size: int = 256,
        max_examples: int = 0,
        out: str | os.PathLike[str] | None = None,
    ) -> dict[str, Any]:
        """The metrics `trmkit eval` writes to metrics.json, on the test split of ``data``
        (a dataset store; default: the store the model was trained on). With ``out`` the
        reports are written there too (a new or empty directory)."""
        from trmkit.checkpoint import open_test_split
        from trmkit.commands.eval import check_out
        from trmkit.evaluation import evaluate, one_name_per_metric
        from trmkit.stats import exact_interval_fields

        policy = InferencePolicy(
            steps=steps,
            halt=halt,
            samples=samples,
            noise=noise,
            augment=augment,
            select=select,
            seed=seed,
        ).validate()
        out_dir = _path("out", out)
        if out_dir is not None:
            check_out(out_dir, force=False)
        split = open_test_split(self, self.task, _path("data", data))
        report = evaluate(
            self.model,
            split,
            self.task,
            batch_size=batch_size,
            policy=policy,
            out_dir=out_dir,
            max_examples=max_examples,
        )
        report.metrics.update(exact_interval_fields(report.metrics))
        if out_dir is not None:
            report.write(out_dir)
        return one_name_per_metric(report.metrics)


def _as_puzzle(i: int, item: object) -> RawPuzzle:
    """``item``, the ``i``-th (from 0) of what `LoadedModel.puzzles` was given, as a puzzle."""
    if isinstance(item, RawPuzzle):
        return item
    if not _is_grid(item):
        raise OptionError(
            f"puzzles[{i}]: a {type(item).__name__}; give puzzle text, a puzzle "
            "file, a RawPuzzle or a 2-D grid (array or nested list of ints)"
        )
    try:
        grid = np.asarray(item)
    except ValueError as exc:  # ragged rows
        raise OptionError(f"puzzles[{i}]: not a grid of integers ({exc})") from None
    whole = grid.dtype.kind == "f" and bool(
        np.isfinite(grid).all() and (grid == grid.round()).all()
    )
    if grid.dtype.kind not in "biu" and not whole:
        raise OptionError(
            f"puzzles[{i}]: not a grid of integers (its cells are {grid.dtype}); give the "
            "task's cell values as ints"
        )
    grid = grid.astype(np.int64)
    return RawPuzzle(f"grid-{i + 1}", test=(Example(grid, grid),), meta={"has_solution": False})


def _is_grid(value: object) -> bool:
    """A 2-D array, or a list of lists of numbers (not a list of puzzles)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 2
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(row, (list, tuple, np.ndarray)) for row in value)
        and all(np.ndim(row) == 1 for row in value)
    )


def load(path: str | os.PathLike[str], *, weights: str = "ema", device: str = "cpu") -> LoadedModel:
    """`trmkit.checkpoint.load_bundle` (a bundle or a run directory; ``weights`` "ema" or
    "raw"), as a `LoadedModel`. A path that holds no bundle is one `CheckpointError` line."""
    bundle = load_bundle(path, weights=weights, device=device)
    return LoadedModel(model=bundle.model, manifest=bundle.manifest, path=bundle.path)


@attrs.frozen
class Run:
    """A finished training run: its directory, final evaluation metrics, newest bundle."""

    run_dir: Path
    step: int
    metrics: dict[str, float]
    """the final evaluation's metrics (empty when the recipe has no test split)."""
    checkpoint: Path | None
    seconds: float

    def load(self, *, weights: str = "ema", device: str = "cpu") -> LoadedModel:
        """The run's newest bundle, as `trmkit.load` gives it."""
        return load(self.run_dir, weights=weights, device=device)


def train(
    recipe: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | Iterable[str] = (),
    data: str | os.PathLike[str] | None = None,
    max_steps: int | None = None,
    resume: bool = False,
    progress: bool = False,
) -> Run:
    """Train ``recipe`` (a name of `trmkit recipes` or a TOML file) as `trmkit train
    --recipe RECIPE --out OUT` does. ``overrides`` are the ``--set`` keys: a dict
    ``{"optim.lr": 3e-4, "train.epochs": 2}`` or ``["optim.lr=3e-4"]``; ``data`` a built
    store (default: the recipe's data, built and cached); ``out`` the run directory
    (default ``runs/<recipe>-<time>``)."""
    from trmkit.commands.train import default_run_dir, resolve_recipe
    from trmkit.training.trainer import Trainer

    _path("recipe", recipe)
    out_dir, data_dir = _path("out", out), _path("data", data)
    if max_steps is not None and (
        isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1
    ):
        raise OptionError(f"max_steps {max_steps!r}: must be an integer >= 1 (or None)")
    resolved = resolve_recipe(None, os.fspath(recipe), tuple(_assignments(overrides)))
    if resume and out is None:
        raise OptionError("resume=True needs out=RUN (the run directory to continue)")
    result = Trainer(
        resolved,
        run_dir=out_dir if out_dir is not None else default_run_dir(resolved),
        data_dir=data_dir,
        max_steps=max_steps,
        resume=resume,
        progress=progress,
        check_memory=True,
    ).run()
    return Run(
        run_dir=result.run_dir,
        step=result.step,
        metrics=dict(result.eval_metrics),
        checkpoint=result.checkpoint,
        seconds=result.seconds,
    )


def _path(name: str, value: object) -> Path | None:
    """The path argument ``name`` (None stays None); anything but a str or os.PathLike is
    one `OptionError` line, not a TypeError from deep inside pathlib."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise OptionError(f"{name}={value!r}: expected a str or os.PathLike path")
    return Path(value)


def _assignments(overrides: Mapping[str, Any] | Iterable[str]) -> list[str]:
    """``--set`` KEY=VALUE strings of a dict (a bool as TOML's true/false) or a list."""
    if isinstance(overrides, str):
        raise OptionError(
            f"overrides={overrides!r}: give a dict {{'optim.lr': 3e-4}} or a list of KEY=VALUE"
        )
    if not isinstance(overrides, Mapping):
        return [str(x) for x in overrides]
    return [
        f"{key}={str(value).lower() if isinstance(value, bool) else value}"
        for key, value in overrides.items()
    ]
