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
submission.json) use the fixed-K predictions, or the adaptive ones with ``adaptive=True``.
Works in one process or several (Accelerate): each rank evaluates its slice of every batch,
sums are reduced and predictions gathered to the main process for the task evaluator.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from trmkit.batch import IGNORE_LABEL_ID
from trmkit.models.protocol import RecursiveModel
from trmkit.models.rollout import StepView, inference_depth, rollout
from trmkit.reports import plot_eval_report
from trmkit.task import EvalContext, PredictionBatch, Task


@attrs.define
class EvalReport:
    metrics: dict[str, float]
    per_step: list[dict[str, float]]
    halting_histogram: list[int]
    """index i < K: sequences whose halting head first fired at step i+1; index K: never."""
    steps: int

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "per_step": self.per_step,
                "halting_histogram": self.halting_histogram, "steps": self.steps}

    def write(self, out_dir: Path, plot: bool = True) -> None:
        """metrics.json, per_step.json (+ eval.png with ``plot`` and matplotlib)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(_finite(self.metrics), indent=2) + "\n")
        (out_dir / "per_step.json").write_text(json.dumps(
            {"per_step": self.per_step, "halting_histogram": self.halting_histogram,
             "steps": self.steps}, indent=2) + "\n")
        if plot and not plot_eval_report(self.per_step, self.halting_histogram,
                                         out_dir / "eval.png"):
            print("note: matplotlib not installed (pip install 'trmkit[plots]'): no eval.png")


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


@attrs.define
class _Sums:
    steps: int
    count: float = 0.0
    per_step_acc: np.ndarray = attrs.field(init=False)
    per_step_exact: np.ndarray = attrs.field(init=False)
    histogram: np.ndarray = attrs.field(init=False)
    adaptive_acc: float = 0.0
    adaptive_exact: float = 0.0
    adaptive_steps: float = 0.0

    def __attrs_post_init__(self) -> None:
        self.per_step_acc = np.zeros(self.steps)
        self.per_step_exact = np.zeros(self.steps)
        self.histogram = np.zeros(self.steps + 1)

    def as_tensor(self, device: torch.device) -> torch.Tensor:
        flat = np.concatenate([[self.count, self.adaptive_acc, self.adaptive_exact,
                                self.adaptive_steps], self.per_step_acc, self.per_step_exact,
                               self.histogram])
        return torch.tensor(flat, dtype=torch.float64, device=device)

    def load_tensor(self, t: torch.Tensor) -> None:
        a = t.cpu().numpy()
        k = self.steps
        self.count, self.adaptive_acc, self.adaptive_exact, self.adaptive_steps = a[:4]
        self.per_step_acc = a[4:4 + k]
        self.per_step_exact = a[4 + k:4 + 2 * k]
        self.histogram = a[4 + 2 * k:]


def _seq_scores(preds: torch.Tensor, labels: torch.Tensor, valid_rows: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence token accuracy and exactness over non-ignored labels."""
    mask = labels != IGNORE_LABEL_ID
    n = mask.sum(-1)
    correct = ((preds == labels) & mask).sum(-1)
    rows = valid_rows & (n > 0)
    acc = torch.where(rows, correct.double() / n.clamp(min=1).double(), 0.0)
    exact = rows & (correct == n)
    return acc, exact


def evaluation_context(task: Task, split: Any, out_dir: Path | None) -> EvalContext:
    return EvalContext(codec=task.codec, augmenter=task.augmenter,
                       group_names=list(split.group_names), puzzle_group=split.puzzle_group,
                       transforms=np.asarray(split.transforms), out_dir=out_dir)


@torch.no_grad()
def evaluate(
    model: RecursiveModel,
    split: Any,
    task: Task | None,
    *,
    batch_size: int,
    steps: int | None = None,
    adaptive: bool = False,
    accelerator: Any = None,
    out_dir: Path | None = None,
    max_examples: int = 0,
    progress: bool = False,
) -> EvalReport:
    """Evaluate ``model`` on a store split; see the module docstring.

    ``batch_size`` is the global batch (split across processes). ``task`` None skips the
    task's evaluator (only the built-in metrics). ``max_examples`` > 0 stops after the
    batches that cover the first ``max_examples`` rows (cheap periodic evals).
    """
    from trmkit.data.loader import EvalLoader

    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    is_main = rank == 0
    device = next(model.parameters()).device
    k = int(steps) if steps else model.halt_max_steps
    loader = EvalLoader(split, batch_size, rank=rank, world_size=world)
    n_batches = len(loader)
    if max_examples > 0:
        n_batches = min(n_batches, -(-max_examples // batch_size))
    run = None
    if task is not None and is_main:
        run = task.evaluator.start(evaluation_context(task, split, out_dir))
    ignore_id = int(split.meta.ignore_label_id)
    sums = _Sums(k)
    was_training = model.training
    model.eval()
    bar = None
    if progress and is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_batches, desc=f"eval ({k} steps)", leave=False, dynamic_ncols=True)
    try:
        with inference_depth(model, k):
            for i, batch in enumerate(loader):
                if i >= n_batches:
                    break
                batch = {key: torch.as_tensor(v).to(device) for key, v in batch.items()}
                final_preds, final_q, ada_preds, ada_q = _run_batch(model, batch, k, sums)
                if run is not None or world > 1:
                    preds, q = (ada_preds, ada_q) if adaptive else (final_preds, final_q)
                    _feed(run, batch, preds, q, ignore_id, accelerator, world)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    if accelerator is not None and world > 1:
        sums.load_tensor(accelerator.reduce(sums.as_tensor(device), reduction="sum"))
    return _report(sums, k, adaptive, run.finish() if run is not None else {})


def _run_batch(model: RecursiveModel, batch: dict[str, torch.Tensor], k: int, sums: _Sums):
    valid_rows = batch["puzzle_index"] >= 0
    labels = batch["labels"]
    model_batch = {key: batch[key] for key in ("inputs", "labels", "puzzle_identifiers")}

    def score(view: StepView) -> None:
        acc, exact = _seq_scores(view.preds, labels, valid_rows)
        sums.per_step_acc[view.step - 1] += acc.sum().item()
        sums.per_step_exact[view.step - 1] += exact.sum().item()

    out = rollout(model, model_batch, k, on_step=score)
    ada_acc, ada_exact = _seq_scores(out.adaptive_preds, labels, valid_rows)
    counted = valid_rows & ((labels != IGNORE_LABEL_ID).sum(-1) > 0)
    sums.count += counted.sum().item()
    sums.adaptive_acc += ada_acc.sum().item()
    sums.adaptive_exact += ada_exact.sum().item()
    sums.adaptive_steps += torch.where(counted, out.halt_step.clamp(max=k), 0).sum().item()
    hist = torch.bincount((out.halt_step[counted] - 1).clamp(max=k), minlength=k + 1)
    sums.histogram += hist.cpu().numpy()
    return out.preds, out.q_halt, out.adaptive_preds, out.adaptive_q


def _feed(run, batch, preds, q, ignore_id, accelerator, world) -> None:
    labels = batch["labels"].masked_fill(batch["labels"] == IGNORE_LABEL_ID, ignore_id)
    fields = [batch["inputs"], labels, preds, batch["puzzle_index"], torch.sigmoid(q.double())]
    if world > 1:
        fields = [accelerator.gather(f.contiguous()) for f in fields]
    if run is None:
        return
    inputs, labels, preds, pidx, qh = (f.cpu().numpy() for f in fields)
    keep = pidx >= 0
    run.update(PredictionBatch(inputs=inputs[keep], labels=labels[keep],
                               predictions=preds[keep], puzzle_index=pidx[keep],
                               q_halt=qh[keep]))


def _report(sums: _Sums, k: int, adaptive: bool, task_metrics: dict[str, float]) -> EvalReport:
    n = max(sums.count, 1.0)
    per_step = [{"step": s + 1, "accuracy": float(sums.per_step_acc[s] / n),
                 "exact_accuracy": float(sums.per_step_exact[s] / n)} for s in range(k)]
    fixed = per_step[-1]
    metrics: dict[str, float] = {
        "count": int(sums.count),
        "steps": k,
        "fixed_exact_accuracy": fixed["exact_accuracy"],
        "fixed_accuracy": fixed["accuracy"],
        "adaptive_exact_accuracy": float(sums.adaptive_exact / n),
        "adaptive_accuracy": float(sums.adaptive_acc / n),
        "adaptive_mean_steps": float(sums.adaptive_steps / n),
        "adaptive": bool(adaptive),
    }
    src = "adaptive" if adaptive else "fixed"
    metrics["exact_accuracy"] = metrics[f"{src}_exact_accuracy"]
    metrics["accuracy"] = metrics[f"{src}_accuracy"]
    for key, value in task_metrics.items():
        metrics[f"task/{key}" if key in metrics else key] = float(value)
    return EvalReport(metrics=metrics, per_step=per_step,
                      halting_histogram=[int(x) for x in sums.histogram], steps=k)
