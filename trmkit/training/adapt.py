"""Test-time training (`trmkit adapt`, `trmkit solve --adapt`): teach a trained model new
puzzles of a task whose puzzles carry their own identifiers (ARC; docs/tasks-arc.md,
"New tasks: test-time training, submissions, scores").

A model with per-variant puzzle ids knows a puzzle only through the embedding rows of its
variants, learnt from its demonstration pairs during training; a puzzle it never saw gets
the blank row and a poor answer. Adapting does what training did, for the new puzzles only:

1. every new puzzle gets the identity and up to ``num_aug`` variants drawn by the task's
   own augmenter (the draw sees the demonstrations and the test *inputs*, never a test
   output), each variant one new embedding row, initialised as the architecture
   initialises rows (a freshly built model's rows, zeros for the built-in ones);
2. the demonstration pairs of every variant are encoded as the train split encodes them
   (`Codec.encode_puzzle`, split "train": ARC translates them);
3. the rows (scope ``embeddings``) or the rows and every weight (scope ``full``) are trained
   with the recipe's optimisers (`trmkit.training.optim.build_optimizers`: sparse sign-SGD
   for the rows, AdamATan2 for the weights), the warmup/cosine schedule and, for ``full``,
   the EMA when the bundle has one; the loss is the model's own ACT step, with the carry
   kept across batches as `trmkit.training.trainer.Trainer.train_step` keeps it;
4. the result is a bundle whose puzzle-id table maps the new puzzles to their rows, so
   `trmkit solve` lets all their variants vote as for a puzzle seen in training.

Scope ``embeddings`` leaves every other tensor bit-identical (model and EMA files alike);
the old puzzles' rows are untouched in both scopes. The warmup is the recipe's, capped at a
tenth of the adaptation's steps (a 2000-step warmup would swallow a 100-step adaptation).
Everything is seeded by ``seed``: two runs with the same inputs and ``steps`` give the same
bundle (a ``minutes`` budget stops on the clock, so its step count may differ).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from trmkit.batch import IGNORE_LABEL_ID
from trmkit.checkpoint import (
    Bundle,
    Manifest,
    ModelRecord,
    PuzzleIdArrays,
    PuzzleIdTable,
    check_task_matches,
    load_bundle,
    read_safetensors,
    write_bundle,
)
from trmkit.config import OptimSection, recipe_from_dict
from trmkit.errors import CheckpointError, ConfigError, OptionError, PuzzleError
from trmkit.models import build_model
from trmkit.task import Example, RawPuzzle, Task
from trmkit.training.ema import EMA
from trmkit.training.optim import SparseSignSGD, build_optimizers
from trmkit.training.rng import seed_everything
from trmkit.training.schedule import set_lr

SCOPES = ("embeddings", "full")
DEFAULT_STEPS = 100
DEFAULT_NUM_AUG = 8


@attrs.define
class AdaptResult:
    """An adapted model in memory; `write` makes it a bundle, `bundle` a `Bundle` for solve."""

    model: Any
    """ready for inference: eval mode, the weights `load_bundle` would give."""
    manifest: Manifest
    weights: dict[str, torch.Tensor]
    """what model.safetensors holds."""
    ema: dict[str, torch.Tensor] | None
    table: PuzzleIdArrays
    source: Path
    tasks: list[str]
    """the puzzles adapted to, in order."""
    known: list[str]
    """puzzles already in the checkpoint's table: kept as they were."""
    rows: int
    steps: int
    seconds: float
    loss_first: float = float("nan")
    """mean loss per example over the first steps (up to 5)."""
    loss_last: float = float("nan")
    """mean loss per example over the last steps (up to 5)."""

    def bundle(self) -> tuple[Bundle, PuzzleIdTable]:
        """The adapted model as a `Bundle` (its path the source's) and its puzzle-id table,
        for `trmkit.solve.solve(..., table=)` without writing anything."""
        bundle = Bundle(model=self.model, manifest=self.manifest, path=self.source)
        return bundle, PuzzleIdTable.from_arrays(self.table)

    def write(self, out: str | Path, *, force: bool = False) -> Path:
        """The bundle at ``out``, written atomically (`trmkit.checkpoint.write_bundle`)."""
        return write_bundle(
            out, self.manifest, self.weights, ema=self.ema, store=self.table, force=force
        )


def check_adaptable(bundle: Bundle, task: Task) -> None:
    """The checkpoint's task must give every puzzle variant its own embedding row."""
    if task.defaults.puzzle_ids != "per_variant" or bundle.model.puzzle_emb is None:
        why = (
            "its model has no puzzle-embedding table"
            if task.defaults.puzzle_ids == "per_variant"
            else "its puzzles share one embedding row (no puzzle identifiers)"
        )
        raise OptionError(
            f"{bundle.path}: a checkpoint of task {task.name!r}, and {why}; adapt needs a task "
            "whose puzzles carry their own identifiers (arc-agi-1, arc-agi-2)"
        )


def check_puzzles(task: Task, puzzles: Sequence[RawPuzzle], where: str) -> None:
    """Every puzzle has demonstration pairs and every grid (demonstrations, test inputs)
    fits the task's codec; else one PuzzleError naming ``where`` and the pair."""
    prefix = f"{where}: " if where else ""
    for puzzle in puzzles:
        if not puzzle.train:
            raise PuzzleError(
                f"{prefix}task {puzzle.name}: no demonstration pairs; adapting needs at least "
                "one input/output pair to learn the task from"
            )
        if not puzzle.test:
            raise PuzzleError(f"{prefix}task {puzzle.name}: no test input to answer")
        grids = [(f"demonstration {i + 1} input", e.input) for i, e in enumerate(puzzle.train)]
        grids += [(f"demonstration {i + 1} output", e.output) for i, e in enumerate(puzzle.train)]
        grids += [(f"test input {i + 1}", e.input) for i, e in enumerate(puzzle.test)]
        for what, grid in grids:
            try:
                task.codec.encode(np.asarray(grid))
            except ValueError as exc:
                raise PuzzleError(f"{prefix}task {puzzle.name}, {what}: {exc}") from None


def recipe_optim(manifest: Manifest, where: Path | str) -> OptimSection:
    """The optimiser settings the bundle was trained with (defaults for missing ones, as
    in an imported official run whose config leaves some out)."""
    raw = manifest.recipe.get("optim") if isinstance(manifest.recipe, dict) else None
    if raw is not None and not isinstance(raw, dict):
        raise CheckpointError(
            f"{where}: field recipe.optim is a {type(raw).__name__}, expected an object; the "
            "manifest's recipe is damaged (delete recipe.optim to adapt with the defaults)"
        )
    fields = {f.name for f in attrs.fields(OptimSection)}
    values = {k: v for k, v in (raw or {}).items() if k in fields and v is not None}
    try:
        return recipe_from_dict({"optim": values}, f"{where}: recipe").optim
    except ConfigError as exc:
        raise CheckpointError(f"{exc}; the manifest's recipe is damaged") from None


def adapt(
    checkpoint: str | Path | Bundle,
    task: Task,
    puzzles: Sequence[RawPuzzle],
    *,
    steps: int | None = None,
    minutes: float | None = None,
    scope: str = "embeddings",
    num_aug: int = DEFAULT_NUM_AUG,
    seed: int = 0,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
) -> AdaptResult:
    """Adapt the bundle at ``checkpoint`` (or already loaded: its files are read again
    for the raw weights) to ``puzzles`` (see the module docstring).

    ``steps`` (default 100 unless ``minutes`` is given) and ``minutes`` both bound the run;
    ``batch_size`` defaults to the recipe's global batch, at most the number of
    demonstration rows."""
    if scope not in SCOPES:
        raise OptionError(f"--scope {scope}: must be one of {', '.join(SCOPES)}")
    if steps is not None and steps < 1:
        raise OptionError(f"--steps {steps}: must be >= 1")
    if minutes is not None and not minutes > 0:
        raise OptionError(f"--minutes {minutes}: must be > 0")
    if num_aug < 0:
        raise OptionError(f"--num-aug {num_aug}: must be >= 0")
    if batch_size is not None and batch_size < 1:
        raise OptionError(f"--batch-size {batch_size}: must be >= 1")
    if steps is None and minutes is None:
        steps = DEFAULT_STEPS
    started = time.perf_counter()
    source = checkpoint if isinstance(checkpoint, Bundle) else load_bundle(checkpoint)
    check_task_matches(source, task)
    check_adaptable(source, task)
    check_puzzles(task, puzzles, "")
    path, manifest = source.path, source.manifest
    optim = recipe_optim(manifest, path / "manifest.json")
    raw_state = read_safetensors(path / "model.safetensors")  # checked by load_bundle
    ema_file = path / "ema.safetensors"
    ema_state = read_safetensors(ema_file) if manifest.ema and ema_file.exists() else None

    aug, codec = task.augmenter, task.codec
    old_ids = manifest.dataset.num_puzzle_identifiers
    table = PuzzleIdTable(path, old_ids)
    names = [p.name for p in puzzles]
    seen: set[str] = set()
    for name in names:  # linear: an adaptation set may hold many thousand puzzles
        if name in seen:
            raise PuzzleError(
                f"task {name!r} is given twice; every task needs its own id (file name)"
            )
        seen.add(name)
    known = [p.name for p in puzzles if table.checked_variants(task, p)]
    new = [p for p in puzzles if not table.variants(p.name)]

    rng = np.random.default_rng(seed)
    transforms: list[np.ndarray] = []
    groups: list[int] = []
    inputs, labels, ids = [], [], []
    for g, puzzle in enumerate(new):
        # the augmenter sees each test output replaced by its input: what adapting may see
        blind = [Example(e.input, e.input) for e in puzzle.test]
        variants = [
            aug.identity(),
            *aug.draw(RawPuzzle(puzzle.name, puzzle.train, blind), num_aug, rng),
        ]
        for t in variants:
            pid = old_ids + len(transforms)
            transforms.append(np.asarray(t).reshape(-1))
            groups.append(g)
            examples = [
                Example(aug.apply(t, np.asarray(e.input)), aug.apply(t, np.asarray(e.output)))
                for e in puzzle.train
            ]
            x, y = codec.encode_puzzle(examples, split="train", rng=rng)
            inputs.append(np.asarray(x))
            labels.append(np.asarray(y))
            ids.append(np.full(len(x), pid, np.int64))
    rows = len(transforms)
    num_ids = old_ids + rows

    # the new model: the old tensors, the table grown by rows initialised as a fresh build's
    seed_everything(seed)
    config = attrs.evolve(source.model.config, num_puzzle_identifiers=num_ids)
    del source  # its model is not needed any more (the ARC table alone is 1.8 GB)
    model = build_model(manifest.model.name, config)
    table_buffer = model.puzzle_emb.weights
    key = next((n for n, b in model.named_buffers() if b is table_buffer), None)
    if key is None:
        raise CheckpointError("the model's puzzle-embedding table is not among its buffers")
    fresh_rows = model.state_dict()[key][old_ids:].detach().clone()
    grown = torch.cat([raw_state[key], fresh_rows.to(raw_state[key].dtype)])
    start = {**raw_state, key: grown}
    if ema_state is not None:
        start.update(ema_state)  # train from the weights inference uses
    model.load_state_dict(start)
    model.to(device)

    new_manifest = attrs.evolve(
        manifest,
        model=ModelRecord(name=manifest.model.name, config=attrs.asdict(config)),
        dataset=attrs.evolve(
            manifest.dataset,
            num_puzzle_identifiers=num_ids,
            store={
                **manifest.dataset.store,
                "adapted_from": str(path),
                "adapt_scope": scope,
                "adapt_tasks": len(new),
                "adapt_rows": rows,
                "adapt_num_aug": num_aug,
                "adapt_seed": seed,
            },
        ),
        eval=dict(manifest.eval) if scope == "embeddings" else {},
    )
    arrays = table.arrays(old_ids, aug.transform_size)
    names = arrays.names + [p.name for p in new]
    group = np.concatenate([arrays.group, np.asarray(groups, np.int32) + len(arrays.names)])
    transform = np.concatenate(
        [arrays.transform, np.asarray(transforms, np.int32).reshape(rows, aug.transform_size)]
    )
    new_table = PuzzleIdArrays(names, group.astype(np.int32), transform.astype(np.int32))

    done, loss_first, loss_last = 0, float("nan"), float("nan")
    ema = EMA(model, optim.ema_rate) if ema_state is not None and scope == "full" else None
    if rows:
        all_labels = np.concatenate(labels).astype(np.int32)
        all_labels[np.concatenate(labels) == codec.ignore_label_id] = IGNORE_LABEL_ID
        data = {
            "inputs": np.concatenate(inputs).astype(np.int32),
            "labels": all_labels,
            "puzzle_identifiers": np.concatenate(ids).astype(np.int32),
        }
        batch = int(min(batch_size or optim.global_batch_size, len(all_labels)))
        done, loss_first, loss_last = _train(
            model,
            optim,
            scope,
            data,
            ema,
            batch=batch,
            steps=steps,
            minutes=minutes,
            seed=seed,
            device=torch.device(device),
            progress=progress,
            echo=echo,
        )

    model.eval()
    trained = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    out_ema = ema_state
    if scope == "embeddings":
        weights = {**raw_state, key: trained[key]}
    else:
        weights = trained
        if ema is not None:
            out_ema = {k: v.detach().to("cpu").clone() for k, v in ema.shadow.items()}
            ema.copy_to(model)  # inference uses the EMA weights, as load_bundle gives them
    return AdaptResult(
        model=model,
        manifest=new_manifest,
        weights=weights,
        ema=out_ema,
        table=new_table,
        source=path,
        tasks=[p.name for p in new],
        known=known,
        rows=rows,
        steps=done,
        seconds=time.perf_counter() - started,
        loss_first=loss_first,
        loss_last=loss_last,
    )


def _batches(n: int, batch: int, rng: np.random.Generator):
    """Index arrays of ``batch`` rows, epoch after epoch, each epoch a fresh permutation;
    an epoch's tail that does not fill a batch starts the next one."""
    rows = itertools.chain.from_iterable(rng.permutation(n) for _ in itertools.count())
    while True:
        yield np.fromiter(itertools.islice(rows, batch), np.int64, count=batch)


def _train(
    model: Any,
    optim: OptimSection,
    scope: str,
    data: dict[str, np.ndarray],
    ema: EMA | None,
    *,
    batch: int,
    steps: int | None,
    minutes: float | None,
    seed: int,
    device: torch.device,
    progress: bool,
    echo: Callable[[str], None] | None,
) -> tuple[int, float, float]:
    """The adaptation loop: `Trainer.train_step` on the new rows' demonstrations (the
    batch's tensors by their keys in ``data``); (steps done, first and last loss)."""
    from tqdm.auto import tqdm

    optimizers: list[torch.optim.Optimizer] = build_optimizers(model, optim)
    if scope == "embeddings":
        optimizers = [o for o in optimizers if isinstance(o, SparseSignSGD)]
        for p in model.parameters():
            p.requires_grad_(False)  # no gradient is computed, no weight can move
    total = steps if steps is not None else 10**9
    warmup = min(optim.warmup_steps, math.ceil(total / 10) if steps is not None else 10)
    deadline = None if minutes is None else time.perf_counter() + 60.0 * minutes
    order = _batches(len(data["inputs"]), batch, np.random.default_rng([seed, 1]))
    seed_everything(seed)
    model.train()
    carry = None
    losses: list[float] = []
    bar = tqdm(total=steps, desc="adapt", unit="step", dynamic_ncols=True, disable=not progress)
    step, t0 = 0, time.perf_counter()
    try:
        while step < total:
            if deadline is not None and time.perf_counter() >= deadline:
                break
            idx = next(order)
            tensors = {k: torch.from_numpy(v[idx]).to(device) for k, v in data.items()}
            if carry is None:
                carry = model.initial_carry(tensors)
            result = model(carry, tensors)
            carry = result.carry
            if result.loss.requires_grad:
                (result.loss / batch).backward()
            step += 1
            set_lr(optimizers, step, warmup, total, optim.lr_min_ratio)
            for opt in optimizers:
                opt.step()
                opt.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(model)
            losses.append(float(result.loss.detach()) / batch)
            bar.update(1)
            if step % 10 == 0 or step == total:
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if step == 3 and echo is not None and steps is not None and steps > 3:
                per_step = (time.perf_counter() - t0) / 3
                echo(
                    f"adapt: {steps} steps of {batch} rows, about {per_step:.2f} s per step: "
                    f"~{per_step * steps / 60:.1f} min"
                )
    finally:
        bar.close()
    if scope == "embeddings":
        for p in model.parameters():
            p.requires_grad_(True)
    first = float(np.mean(losses[:5])) if losses else float("nan")
    last = float(np.mean(losses[-5:])) if losses else float("nan")
    return step, first, last


__all__ = [
    "DEFAULT_NUM_AUG",
    "DEFAULT_STEPS",
    "SCOPES",
    "AdaptResult",
    "adapt",
    "check_adaptable",
    "check_puzzles",
    "recipe_optim",
]
