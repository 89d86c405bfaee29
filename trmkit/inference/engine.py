"""Run S trajectories per row for K steps in one batched forward, then decide.

`record` expands a batch of B rows into S x B rows (sample-major: sample j of row b is row
j * B + b; sample 0 is the row itself, exact, so S = 1 without noise is the plain
evaluation), runs them K supervision steps through `trmkit.models.rollout`, and keeps, per
step and sample, the answer in the row's own frame and its halting logit. `decide` then
applies a halting policy and a selection rule at any depth <= K and any sample count <= S,
without running the model again: one `record` serves a whole depth x breadth sweep.
Halting policies and selection rules come from the registry (`trmkit.inference.policy`);
`record` also keeps the per-step auxiliary outputs they need (never the logits).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable

import attrs
import numpy as np
import torch

from trmkit.batch import IGNORE_LABEL_ID
from trmkit.errors import OptionError
from trmkit.inference.policy import (
    Candidates,
    HaltPolicy,
    InferencePolicy,
    SelectPolicy,
    Trajectories,
)
from trmkit.inference.samples import (
    INVALID,
    attempt,
    augmented_inputs,
    decode_rows,
    draw_transforms,
    to_row_frame,
)
from trmkit.models import model_name
from trmkit.models.protocol import LatentNoise, NoisyRecursion, RecursiveModel, StochasticRecursion
from trmkit.models.rollout import StepView, inference_depth, rollout
from trmkit.task import AnswerChecker, Task

Checker = Callable[[int, np.ndarray], bool]
"""checker(row, answer tokens) -> the task's verdict (`answer_checker`)."""


@attrs.frozen
class RowBatch:
    """B rows to answer, in token space."""

    inputs: np.ndarray
    """int [B, L] input tokens."""
    puzzle_ids: np.ndarray
    """int [B] puzzle-embedding rows."""
    keys: np.ndarray
    """int [B] stable row ids (seed the per-row augmentation draws)."""


@attrs.define
class Record:
    """What `record` kept of S trajectories x B rows over K steps."""

    preds: np.ndarray
    """int16 [K, S, B, L] answers in each row's frame (`INVALID` rows: not decodable)."""
    q: np.ndarray
    """float32 [K, S, B] halting logits."""
    same: np.ndarray
    """bool [K, S, B]: the answer equals the previous step's (always False at step 1)."""
    inputs: np.ndarray
    """int [B, L] the rows' input tokens."""
    seconds: float
    """wall time of the forward passes (the rollout), for cost reports."""
    aux: dict[str, np.ndarray] = attrs.field(factory=dict)
    """float32 [K, S, B] per auxiliary output the rules need (`InferencePolicy.needs`)."""
    _valid: np.ndarray | None = None
    _checker: object = None

    @property
    def depth(self) -> int:
        return self.preds.shape[0]

    @property
    def samples(self) -> int:
        return self.preds.shape[1]

    def valid(self, checker: Checker, k: np.ndarray, s: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cached checker verdicts for the answers at (step k, sample s, row b)."""
        if self._valid is None or self._checker is not checker:
            self._valid = np.full(self.q.shape, -1, dtype=np.int8)
            self._checker = checker
        cache = self._valid
        todo = cache[k, s, b] < 0
        for kk, ss, bb in zip(k[todo], s[todo], b[todo], strict=True):
            answer = self.preds[kk, ss, bb]
            cache[kk, ss, bb] = 0 if (answer == INVALID).any() else int(checker(int(bb), answer))
        return cache[k, s, b].astype(bool)

    def trajectories(
        self, depth: int, samples: int, checker: Checker | None = None
    ) -> Trajectories:
        """Steps 1..``depth`` of the first ``samples`` samples, as a halting policy sees them."""
        same = self.same[:depth, :samples]
        run = np.zeros(same.shape, dtype=np.int64)
        for k in range(1, depth):
            run[k] = np.where(same[k], run[k - 1] + 1, 0)
        verdicts = None if checker is None else functools.partial(self.valid, checker)
        return Trajectories(
            q=self.q[:depth, :samples],
            same=same,
            run=run,
            aux={name: v[:depth, :samples] for name, v in self.aux.items()},
            verdicts=verdicts,
        )


@attrs.frozen
class Decision:
    """The chosen answer of every row."""

    preds: np.ndarray
    """int16 [B, L] in the row's frame."""
    confidence: np.ndarray
    """float [B] sigmoid(q_halt) of the chosen trajectory at its stopping step."""
    sample: np.ndarray
    """int [B] the chosen sample."""
    steps: np.ndarray
    """int [S, B] the step each trajectory stopped at (its forward passes)."""
    votes: np.ndarray
    """int [B] samples whose answer equals the chosen one."""


def augmentation_allowed(task: Task | None, per_variant_ids: bool) -> bool:
    """Augmented samples need a task and shared puzzle ids: with per-variant ids (ARC) a new
    variant has no trained embedding row (the stored variants already vote)."""
    return task is not None and not per_variant_ids


def check_policy(
    policy: InferencePolicy, model: RecursiveModel, task: Task | None, per_variant_ids: bool
) -> None:
    """One-line refusals of a policy this model or task cannot run."""
    policy.validate()
    if policy.noise > 0 and not isinstance(model, NoisyRecursion):
        raise OptionError(
            f"--noise: the model {model_name(model)} cannot perturb its recursion "
            "(it does not implement trmkit.models.protocol.NoisyRecursion); use augmentation"
        )
    for chosen in (policy.halt, policy.select):
        if chosen.rule.checks and (task is None or not isinstance(task.evaluator, AnswerChecker)):
            name = task.name if task is not None else "(none)"
            raise OptionError(
                f"{chosen.OPTION} {chosen}: task {name!r} declares no answer checker (its "
                "evaluator has no check_answer, docs/plugins.md); choose a rule without one"
            )
    if policy.samples > 1:
        augments = policy.augment and augmentation_allowed(task, per_variant_ids)
        # a StochasticRecursion model's trajectories differ by themselves (docs/engine.md)
        if not augments and policy.noise == 0 and not isinstance(model, StochasticRecursion):
            why = (
                "augmentation is off"
                if not policy.augment
                else "this checkpoint's task uses per-variant puzzle ids, so its stored "
                "variants already vote and new ones have no trained embedding"
            )
            raise OptionError(
                f"--samples {policy.samples}: the samples would all be identical ({why}); "
                "give --noise SIGMA (e.g. 0.1)"
            )


def record(
    model: RecursiveModel,
    rows: RowBatch,
    policy: InferencePolicy,
    task: Task | None,
    *,
    depth: int,
    per_variant_ids: bool = False,
    generator: torch.Generator | None = None,
    needs: dict[str, str] | None = None,
) -> Record:
    """Run ``policy.samples`` trajectories of every row for ``depth`` steps (model in eval
    mode; the caller may set the depth with `inference_depth`, done here otherwise).
    ``needs`` (default `InferencePolicy.needs`) maps each auxiliary output to keep to the
    option that asked for it: a model that does not return one is refused at step 1."""
    device = next(model.parameters()).device
    s_count, b_count = policy.samples, len(rows.inputs)
    inputs = np.asarray(rows.inputs)
    transforms = None
    sample_inputs = [inputs] * s_count
    if s_count > 1 and policy.augment and augmentation_allowed(task, per_variant_ids):
        assert task is not None
        grids = decode_rows(task.codec, inputs)
        transforms = draw_transforms(
            task.augmenter, grids, np.asarray(rows.keys), s_count - 1, policy.seed
        )
        sample_inputs[1:] = [
            augmented_inputs(task.codec, task.augmenter, grids, t, inputs) for t in transforms
        ]
    flat = torch.as_tensor(np.concatenate(sample_inputs).astype(np.int32), device=device)
    pids = torch.as_tensor(
        np.tile(np.asarray(rows.puzzle_ids), s_count).astype(np.int32), device=device
    )
    batch = {
        "inputs": flat,
        "labels": torch.full_like(flat, IGNORE_LABEL_ID),
        "puzzle_identifiers": pids,
    }
    length = inputs.shape[1]
    preds = np.zeros((depth, s_count, b_count, length), dtype=np.int16)
    q = np.zeros((depth, s_count, b_count), dtype=np.float32)
    needs = policy.needs() if needs is None else needs
    aux = {name: np.zeros((depth, s_count, b_count), dtype=np.float32) for name in needs}

    def keep(view: StepView) -> None:
        for name, option in needs.items():
            if name not in view.aux:
                returned = ", ".join(sorted(view.aux)) or "none"
                raise OptionError(
                    f"{option}: the model {model_name(model)} keeps no {name!r} output "
                    f"(its auxiliary outputs: {returned}); choose a rule it supports"
                )
            aux[name][view.step - 1] = view.aux[name].float().reshape(s_count, b_count).cpu()
        preds[view.step - 1] = view.preds.reshape(s_count, b_count, length).cpu().numpy()
        q[view.step - 1] = view.q_halt.reshape(s_count, b_count).cpu().numpy()

    noisy = policy.noise > 0 and s_count > 1
    stochastic = isinstance(model, StochasticRecursion)
    if generator is None and (noisy or stochastic):
        generator = torch.Generator(device=device).manual_seed(policy.seed)
    with contextlib.ExitStack() as restore:
        if noisy:
            assert isinstance(model, NoisyRecursion) and generator is not None
            scale = torch.full((s_count * b_count,), float(policy.noise), device=device)
            scale[:b_count] = 0.0
            model.set_latent_noise(LatentNoise(scale=scale, generator=generator))
            restore.callback(model.set_latent_noise, None)
        if isinstance(model, StochasticRecursion):
            model.set_generator(generator)
            restore.callback(model.set_generator, None)
        restore.enter_context(inference_depth(model, depth))
        started = time.perf_counter()
        rollout(model, batch, depth, on_step=keep)
        seconds = time.perf_counter() - started
    same = np.zeros(q.shape, dtype=bool)
    same[1:] = (preds[1:] == preds[:-1]).all(axis=-1)
    if transforms is not None:  # in place: each answer is read once, before it is replaced
        assert task is not None
        for j in range(1, s_count):
            for k in range(depth):
                preds[k, j] = to_row_frame(
                    task.codec, task.augmenter, transforms[j - 1], preds[k, j]
                )
    return Record(preds=preds, q=q, same=same, inputs=inputs, seconds=seconds, aux=aux)


def stop_steps(
    rec: Record, halt: HaltPolicy | str, depth: int, samples: int, checker: Checker | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(int [S, B] stopping step 1..depth, int [S, B] how many steps before it the answer had
    already been the same) for every trajectory under ``halt``."""
    return _stops(rec.trajectories(depth, samples, checker), halt)


def _stops(t: Trajectories, halt: HaltPolicy | str) -> tuple[np.ndarray, np.ndarray]:
    fired = np.array(HaltPolicy.parse(halt).rule.fired(t), dtype=bool)  # a copy: the last fires
    fired[-1] = True
    stop = fired.argmax(axis=0)  # first step that fires (the last always does)
    stability = np.take_along_axis(t.run, stop[None], axis=0)[0]
    return stop + 1, stability


def decide(
    rec: Record,
    halt: HaltPolicy | str,
    select: SelectPolicy | str,
    *,
    depth: int | None = None,
    samples: int | None = None,
    checker: Checker | None = None,
) -> Decision:
    """Each row's answer under ``halt`` and ``select`` using the first ``samples`` samples
    and steps 1..``depth`` of ``rec`` (default: all of them)."""
    depth = rec.depth if depth is None else depth
    samples = rec.samples if samples is None else samples
    t = rec.trajectories(depth, samples, checker)
    stop, stability = _stops(t, halt)
    s_idx, b_idx = np.indices(stop.shape)
    b_count = stop.shape[1]
    answers = rec.preds[stop - 1, s_idx, b_idx]  # [S, B, L]
    conf = 1.0 / (1.0 + np.exp(-rec.q[stop - 1, s_idx, b_idx].astype(np.float64)))  # [S, B]
    ok = ~(answers == INVALID).any(axis=-1)
    equal = (answers[:, None] == answers[None]).all(axis=-1) & ok[:, None] & ok[None]  # [S,S,B]
    if samples == 1:
        chosen = np.zeros(b_count, dtype=np.int64)
    else:
        candidates = Candidates(answers, conf, ok, equal, stop, stability, t)
        chosen = np.asarray(SelectPolicy.parse(select).rule.choose(candidates))
    rows = np.arange(b_count)
    return Decision(
        preds=answers[chosen, rows],
        confidence=conf[chosen, rows],
        sample=chosen,
        steps=stop,
        votes=equal.sum(axis=1)[chosen, rows],
    )


def answer_checker(task: Task, rec_inputs: np.ndarray) -> Checker:
    """The `Checker` for `decide`: decodes the row and the answer and asks the evaluator."""
    evaluator = task.evaluator
    assert isinstance(evaluator, AnswerChecker)
    grids = decode_rows(task.codec, rec_inputs)

    def check(row: int, answer: np.ndarray) -> bool:
        puzzle = grids[row]
        if puzzle is None:
            return False
        grid = attempt(task.codec.decode, answer.astype(np.int64))
        return grid is not None and bool(evaluator.check_answer(puzzle, grid))

    return check


__all__ = [
    "Decision",
    "Record",
    "RowBatch",
    "answer_checker",
    "augmentation_allowed",
    "check_policy",
    "decide",
    "record",
    "stop_steps",
]
