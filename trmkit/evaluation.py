"""Evaluation: exact/token accuracy per supervision step, halting histogram, adaptive halting.

The official code evaluates only the state after the last of N_sup steps. Here one pass
drives the model step by step (`trmkit.models.rollout`, the loop `trmkit solve` shares;
``model.eval()``: no early halting, no exploration) for K steps and records, from the same
computation:

* accuracy after each step 1..K (K may exceed the N_sup the model was trained with: does
  thinking longer help?);
* the halting histogram: the first step where the halting head says stop (q_halt > 0), or
  "never";
* the *adaptive* answer: each sequence's prediction at its first halting step (as training
  halts), with its accuracy and mean steps, against the fixed-K answer.

The headline metrics (and what goes to the task's evaluator, e.g. ARC voting and
submission.json) are those of the `trmkit.inference.InferencePolicy`: by default the
fixed-K answer of one exact trajectory; with test-time compute, S trajectories per row
(augmented and/or noisy, run as extra rows of the same forward), each stopped by its
halting policy, one chosen by the selection rule (docs/test-time-compute.md). The
per-step table then shows the selected answer when every trajectory stops at that step;
``fixed_*``, ``adaptive_*`` and the histogram always describe the exact trajectory.
Works in one process or several (Accelerate): each rank evaluates its slice of every batch,
sums are reduced and predictions gathered to the main process for the task evaluator.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from trmkit import atomic
from trmkit.batch import IGNORE_LABEL_ID
from trmkit.errors import OptionError, PluginError, TrmkitError
from trmkit.inference.engine import RowBatch, answer_checker, check_policy, decide, record
from trmkit.inference.policy import HaltPolicy, InferencePolicy, check_record_fits
from trmkit.inference.scoring import samples_per_batch, seq_scores
from trmkit.models.protocol import RecursiveModel
from trmkit.reports import plot_eval_report
from trmkit.task import EvalContext, PredictionBatch, Task


@attrs.define
class EvalReport:
    metrics: dict[str, float]
    per_step: list[dict[str, float]]
    halting_histogram: list[int]
    """index i < K: sequences whose halting head first fired at step i+1; index K: never."""
    steps: int

    def write(self, out_dir: Path, plot: bool = True) -> None:
        """metrics.json (`one_name_per_metric`), per_step.json (+ eval.png with ``plot`` and
        matplotlib)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics = _finite(one_name_per_metric(self.metrics))
        atomic.write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        steps = attrs.asdict(self, filter=lambda field, _: field.name != "metrics")
        atomic.write_text(out_dir / "per_step.json", json.dumps(steps, indent=2) + "\n")
        if plot and not plot_eval_report(
            self.per_step, self.halting_histogram, out_dir / "eval.png"
        ):
            print("note: matplotlib not installed (pip install 'trmkit[plots]'): no eval.png")


def one_name_per_metric(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` without a second name for one number (docs/recipes.md, "Metric names"):
    ``fixed_exact_accuracy`` / ``fixed_accuracy`` when the policy is one trajectory of fixed
    depth (they are then ``exact_accuracy`` / ``accuracy`` by definition), and a task
    evaluator's ``task/<name>`` when it equals trmkit's ``<name>``."""
    plain = metrics.get("halt") == "fixed" and metrics.get("samples") == 1
    same = {"fixed_exact_accuracy", "fixed_accuracy"} if plain else set()
    for key, value in metrics.items():
        if key.startswith("task/") and metrics.get(key.removeprefix("task/")) == value:
            same.add(key)
    return {k: v for k, v in metrics.items() if k not in same}


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


@attrs.define
class _Sums:
    """Sums over the counted rows of one process; reduced across processes as one float64
    tensor of every field but ``steps``, in field order."""

    steps: int
    count: float = 0.0
    per_step_acc: np.ndarray = attrs.field(init=False)
    per_step_exact: np.ndarray = attrs.field(init=False)
    histogram: np.ndarray = attrs.field(init=False)
    adaptive_acc: float = 0.0
    adaptive_exact: float = 0.0
    adaptive_steps: float = 0.0
    policy_acc: float = 0.0
    policy_exact: float = 0.0
    policy_steps: float = 0.0
    """trajectory steps summed over every sample of every counted row (forward passes)."""
    seconds: float = 0.0

    def __attrs_post_init__(self) -> None:
        self.per_step_acc = np.zeros(self.steps)
        self.per_step_exact = np.zeros(self.steps)
        self.histogram = np.zeros(self.steps + 1)

    def as_tensor(self, device: torch.device) -> torch.Tensor:
        parts = [np.ravel(getattr(self, f.name)) for f in attrs.fields(_Sums)[1:]]
        return torch.tensor(np.concatenate(parts), dtype=torch.float64, device=device)

    def load_tensor(self, t: torch.Tensor) -> None:
        rest = t.cpu().numpy()
        for f in attrs.fields(_Sums)[1:]:
            size = np.size(old := getattr(self, f.name))
            setattr(self, f.name, rest[:size] if isinstance(old, np.ndarray) else rest[0])
            rest = rest[size:]


def check_batch_size(batch_size: int) -> None:
    """``batch_size`` must be an integer >= 1 (0 or below would evaluate nothing)."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise OptionError(
            f"batch_size {batch_size!r}: must be an integer >= 1; pass the number of rows "
            "per forward pass"
        )


def check_model_fits_split(model: RecursiveModel, split: Any) -> None:
    """The model's config must have the split's seq_len, vocab_size and number of puzzle
    ids (one line naming the first that differs), else it would fail mid-run or read
    tokens it was not trained on. The trainer fills these config fields from the training
    split (`trmkit.config.Recipe.model_config`)."""
    config = attrs.asdict(model.config)
    for key in ("seq_len", "vocab_size", "num_puzzle_identifiers"):
        have, want = config.get(key), getattr(split.meta, key)
        if have is not None and int(have) != int(want):
            raise TrmkitError(
                f"{key}: the model was built for {have}, the split has {want}; evaluate on a "
                "split built like the model's training data"
            )


@torch.no_grad()
def evaluate(
    model: RecursiveModel,
    split: Any,
    task: Task | None,
    *,
    batch_size: int,
    steps: int | None = None,
    policy: InferencePolicy | None = None,
    accelerator: Any = None,
    out_dir: Path | None = None,
    max_examples: int = 0,
    progress: bool = False,
) -> EvalReport:
    """Evaluate ``model`` on a store split; see the module docstring.

    ``batch_size`` is the global batch of forward rows (split across processes; with S
    samples, batch_size / S test rows per batch). ``task`` None skips the task's evaluator
    (only the built-in metrics). ``max_examples`` > 0 stops after the batches that cover
    the first ``max_examples`` rows (cheap periodic evals). ``policy`` sets depth, halting,
    samples and selection (docs/test-time-compute.md); without it ``steps`` sets the depth."""
    from trmkit.data.loader import EvalLoader

    check_batch_size(batch_size)
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 0:
        raise OptionError(
            f"max_examples {max_examples!r}: must be an integer >= 0 (0: every test row)"
        )
    check_model_fits_split(model, split)
    if policy is None:
        policy = InferencePolicy(steps=steps)
    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    is_main = rank == 0
    device = next(model.parameters()).device
    k = int(policy.steps) if policy.steps else model.halt_max_steps
    per_variant = int(split.meta.num_puzzle_identifiers) > 1
    check_policy(policy, model, task, per_variant)
    rows_per_batch = samples_per_batch(batch_size, policy.samples, world)
    check_record_fits(
        k, policy.samples, rows_per_batch, int(split.meta.seq_len), aux=len(policy.needs())
    )
    loader = EvalLoader(split, rows_per_batch, rank=rank, world_size=world)
    n_batches = len(loader)
    if max_examples > 0:
        n_batches = min(n_batches, -(-max_examples // rows_per_batch))
    run = None
    if task is not None and is_main:
        context = EvalContext(
            codec=task.codec,
            augmenter=task.augmenter,
            group_names=list(split.group_names),
            puzzle_group=split.puzzle_group,
            transforms=np.asarray(split.transforms),
            out_dir=out_dir,
        )
        run = task.evaluator.start(context)
    ignore_id = int(split.meta.ignore_label_id)
    sums = _Sums(k)
    # every draw of the inference (noise, a stochastic model's own) comes from one generator
    generator = torch.Generator(device=device).manual_seed(policy.seed * 1009 + rank)
    was_training = model.training
    model.eval()
    bar = None
    try:
        for batch in itertools.islice(loader, n_batches):
            batch = {key: torch.as_tensor(v) for key, v in batch.items()}
            preds, q = _run_batch(model, batch, k, policy, task, per_variant, generator, sums)
            if run is not None or world > 1:
                _feed(run, batch, preds, q, ignore_id, accelerator, world, device)
            if bar is None and progress and is_main:
                # shown once the first batch ran: a refusal at its first step (a model
                # without an output the rules need) prints nothing else
                from tqdm.auto import tqdm

                bar = tqdm(
                    total=n_batches, desc=f"eval ({k} steps)", leave=False, dynamic_ncols=True
                )
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    if world > 1:
        sums.load_tensor(accelerator.reduce(sums.as_tensor(device), reduction="sum"))
    task_metrics = _task_metrics(task, run.finish()) if run is not None and task else {}
    return _report(sums, k, policy, task_metrics)


def _task_metrics(task: Task, metrics: Any) -> dict[str, float]:
    """What the task's evaluator returned, as name -> float; anything else is one
    `PluginError` line naming the plugin and task (docs/plugins.md, section 3)."""
    from trmkit.plugins import owner_of

    plugin = owner_of(task)
    who = f"plugin {plugin!r}, task {task.name!r}" if plugin else f"task {task.name!r}"
    fix = "trmkit.testing.check_task(task) checks the evaluator"
    if not isinstance(metrics, Mapping):
        raise PluginError(
            f"{who}: evaluator's finish() returned {type(metrics).__name__}, not a dict of "
            f"metric name -> number ({fix})"
        )
    for key, value in metrics.items():
        if not (isinstance(key, str) and isinstance(value, numbers.Real)):
            raise PluginError(
                f"{who}: evaluator's finish() metric {key!r} = {value!r:.60} is not a number "
                f"under a str name ({fix})"
            )
    return {key: float(value) for key, value in metrics.items()}


def _run_batch(
    model: RecursiveModel,
    batch: dict[str, torch.Tensor],
    k: int,
    policy: InferencePolicy,
    task: Task | None,
    per_variant: bool,
    generator: torch.Generator | None,
    sums: _Sums,
) -> tuple[np.ndarray, np.ndarray]:
    """Record the batch's trajectories, add its scores to ``sums``; returns the policy's
    answers [B, L] and their halting confidences [B]."""
    labels = batch["labels"].numpy()
    valid_rows = batch["puzzle_index"].numpy() >= 0
    counted = valid_rows & ((labels != IGNORE_LABEL_ID).sum(-1) > 0)
    rows = RowBatch(
        inputs=batch["inputs"].numpy(),
        puzzle_ids=batch["puzzle_identifiers"].numpy(),
        keys=batch["example_index"].numpy(),
    )
    rec = record(
        model, rows, policy, task, depth=k, per_variant_ids=per_variant, generator=generator
    )
    sums.seconds += rec.seconds
    checker = answer_checker(task, rec.inputs) if policy.checks and task else None
    fixed = HaltPolicy("fixed")
    for depth in range(1, k + 1):
        d = decide(rec, fixed, policy.select, depth=depth, checker=checker)
        acc, exact = seq_scores(d.preds, labels, counted)
        sums.per_step_acc[depth - 1] += acc.sum()
        sums.per_step_exact[depth - 1] += exact.sum()
    # the halting head of the exact trajectory (sample 0), as training halts
    ada = decide(rec, HaltPolicy("q"), "q", samples=1)
    ada_acc, ada_exact = seq_scores(ada.preds, labels, counted)
    sums.count += counted.sum()
    sums.adaptive_acc += ada_acc.sum()
    sums.adaptive_exact += ada_exact.sum()
    sums.adaptive_steps += ada.steps[0][counted].sum()
    fires = rec.q[:, 0] > 0
    first = np.where(fires.any(axis=0), fires.argmax(axis=0), k)
    sums.histogram += np.bincount(first[counted], minlength=k + 1)[: k + 1]
    chosen = decide(rec, policy.halt, policy.select, checker=checker)
    acc, exact = seq_scores(chosen.preds, labels, counted)
    sums.policy_acc += acc.sum()
    sums.policy_exact += exact.sum()
    sums.policy_steps += chosen.steps[:, counted].sum()
    return chosen.preds.astype(np.int64), chosen.confidence


def _feed(run, batch, preds, conf, ignore_id, accelerator, world, device) -> None:
    fields = {  # the PredictionBatch fields
        "inputs": batch["inputs"],
        "labels": batch["labels"].masked_fill(batch["labels"] == IGNORE_LABEL_ID, ignore_id),
        # an undecodable sample answer (INVALID) is shown to the evaluator as the pad token
        "predictions": torch.as_tensor(preds).clamp(min=0),
        "puzzle_index": batch["puzzle_index"],
        "q_halt": torch.as_tensor(conf, dtype=torch.float64),
    }
    if world > 1:
        fields = {k: accelerator.gather(f.to(device).contiguous()) for k, f in fields.items()}
    if run is None:
        return
    arrays = {k: f.cpu().numpy() for k, f in fields.items()}
    keep = arrays["puzzle_index"] >= 0  # padding rows are -1
    run.update(PredictionBatch(**{k: a[keep] for k, a in arrays.items()}))


def _report(
    sums: _Sums, k: int, policy: InferencePolicy, task_metrics: dict[str, float]
) -> EvalReport:
    n = max(sums.count, 1.0)
    per_step = [
        {
            "step": s + 1,
            "accuracy": float(sums.per_step_acc[s] / n),
            "exact_accuracy": float(sums.per_step_exact[s] / n),
        }
        for s in range(k)
    ]
    fixed = per_step[-1]
    metrics: dict[str, Any] = {
        "count": int(sums.count),
        "steps": k,
        "fixed_exact_accuracy": fixed["exact_accuracy"],
        "fixed_accuracy": fixed["accuracy"],
        "adaptive_exact_accuracy": float(sums.adaptive_exact / n),
        "adaptive_accuracy": float(sums.adaptive_acc / n),
        "adaptive_mean_steps": float(sums.adaptive_steps / n),
        "adaptive": policy.halt.kind == "q",
        "halt": str(policy.halt),
        "samples": policy.samples,
        "noise": float(policy.noise),
        "select": str(policy.select),
        "exact_accuracy": float(sums.policy_exact / n),
        "accuracy": float(sums.policy_acc / n),
        "mean_steps": float(sums.policy_steps / n / policy.samples),
        "forward_passes": float(sums.policy_steps / n),
        "seconds": float(sums.seconds),
    }
    for key, value in task_metrics.items():
        metrics[f"task/{key}" if key in metrics else key] = float(value)
    return EvalReport(
        metrics=metrics,
        per_step=per_step,
        halting_histogram=[int(x) for x in sums.histogram],
        steps=k,
    )
