"""The optimisers: the dense one chosen by ``optim.name`` from the registered "optimizer"
components (`OptimizerSpec`; docs/engine.md, "Optimisers"), and the official code's two in
pure PyTorch (CPU, CUDA, MPS).

`AdamATan2`: decoupled lr-scaled decay, Adam moments, and the update
``p -= (lr / (1 - b1^t)) * atan2(m, sqrt(v) / sqrt(1 - b2^t))``: the first bias correction
scales the step outside the atan2, no epsilon, a = b = 1: the CUDA kernel of `adam-atan2`
0.0.3, the release the official code installs (docs/engine.md, "Optimisers"). The
`adam-atan2-pytorch` substitute uses a = 1.27 and is not identical. `SparseSignSGD`:
sign-SGD on the puzzle-table rows present in the batch, decay on those rows only, gathered
across processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import torch
import torch.distributed as dist

from trmkit import plugins
from trmkit.config import OptimSection
from trmkit.errors import PluginError
from trmkit.models.protocol import RecursiveModel
from trmkit.models.sparse_embedding import SparsePuzzleEmbedding


class AdamATan2(torch.optim.Optimizer):
    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.95),
        weight_decay: float = 0.0,
        foreach: bool = True,
    ) -> None:
        if lr < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid AdamATan2 settings lr={lr} betas={betas} wd={weight_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, foreach=foreach)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, ms, vs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                params.append(p)
                grads.append(p.grad)
                ms.append(state["exp_avg"])
                vs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if params:
                update = _foreach_update if group["foreach"] else _single_update
                update(params, grads, ms, vs, steps, group)
        return loss


def _coefficients(step: float, group: dict) -> tuple[float, float, float, float, float]:
    lr, wd = group["lr"], group["weight_decay"]
    b1, b2 = group["betas"]
    return lr, 1.0 - lr * wd, 1.0 - b1**step, math.sqrt(1.0 - b2**step), 1.0 - b1


def _single_update(params, grads, ms, vs, steps, group) -> None:
    b2 = group["betas"][1]
    for p, g, m, v, t in zip(params, grads, ms, vs, steps, strict=False):
        t += 1
        lr, shrink, bc1, bc2_sqrt, w1 = _coefficients(float(t), group)
        p.mul_(shrink)
        m.lerp_(g, w1)
        v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
        p.add_(torch.atan2(m, v.sqrt() / bc2_sqrt), alpha=-lr / bc1)


def _foreach_update(params, grads, ms, vs, steps, group) -> None:
    b2 = group["betas"][1]
    torch._foreach_add_(steps, 1.0)
    # steps of one group advance together (set by this optimizer), so one set of scalars
    lr, shrink, bc1, bc2_sqrt, w1 = _coefficients(float(steps[0]), group)
    if shrink != 1.0:
        torch._foreach_mul_(params, shrink)
    torch._foreach_lerp_(ms, grads, w1)
    torch._foreach_mul_(vs, b2)
    torch._foreach_addcmul_(vs, grads, grads, value=1.0 - b2)
    denom = torch._foreach_sqrt(vs)
    torch._foreach_div_(denom, bc2_sqrt)
    for p, m, d in zip(params, ms, denom, strict=False):
        p.add_(torch.atan2(m, d, out=d), alpha=-lr / bc1)


class SparseSignSGD(torch.optim.Optimizer):
    """w <- w (1 - lr wd) - lr sign(sum of grads) on the rows present in the batch only.

    With torch.distributed initialised, the (ids, grads) of every process are all-gathered
    first, so each process applies the same update to its copy of the table.
    """

    def __init__(
        self, embedding: SparsePuzzleEmbedding, lr: float = 1e-2, weight_decay: float = 0.0
    ) -> None:
        self.embedding = embedding
        defaults = dict(lr=lr, weight_decay=weight_decay)
        super().__init__([embedding.weights], defaults)

    def zero_grad(self, set_to_none: bool = True) -> None:  # noqa: ARG002
        self.embedding.pending = []

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        table = self.embedding.weights
        pending = self.embedding.take_pending()
        if pending is None:
            ids = torch.zeros(0, dtype=torch.long, device=table.device)
            grads = torch.zeros(0, table.shape[1], dtype=table.dtype, device=table.device)
        else:
            ids, grads = pending
        ids, grads = _gather_rows(ids, grads.to(table.dtype))
        if ids.numel() == 0:
            return loss
        unique, inverse = torch.unique(ids, return_inverse=True)
        summed = torch.zeros(unique.numel(), table.shape[1], dtype=table.dtype, device=table.device)
        summed.index_add_(0, inverse, grads)
        group = self.param_groups[0]
        lr, wd = group["lr"], group["weight_decay"]
        rows = table[unique]
        rows.mul_(1.0 - lr * wd).add_(summed.sign(), alpha=-lr)
        table[unique] = rows
        return loss


def _gather_rows(ids: torch.Tensor, grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All-gather variable-length (ids, grads) across processes (padded to the longest)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return ids, grads
    world = dist.get_world_size()
    count = torch.tensor([ids.numel()], device=ids.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    pad = max(sizes) - ids.numel()
    ids_p = torch.cat([ids, ids.new_zeros(pad)])
    grads_p = torch.cat([grads, grads.new_zeros(pad, grads.shape[1])])
    all_ids = [torch.empty_like(ids_p) for _ in range(world)]
    all_grads = [torch.empty_like(grads_p) for _ in range(world)]
    dist.all_gather(all_ids, ids_p)
    dist.all_gather(all_grads, grads_p)
    kept_ids = torch.cat([a[:n] for a, n in zip(all_ids, sizes, strict=True)])
    return kept_ids, torch.cat([g[:n] for g, n in zip(all_grads, sizes, strict=True)])


NamedParams = Sequence[tuple[str, torch.nn.Parameter]]


@runtime_checkable
class OptimizerSpec(Protocol):
    """A dense optimiser by name (kind "optimizer"): builds the optimisers of the trainable
    parameters. The puzzle table is never among them: it keeps `SparseSignSGD`."""

    def build(self, named: NamedParams, optim: OptimSection) -> list[torch.optim.Optimizer]:
        """Optimisers (lr 0: the schedule sets it) over ``named`` (name, parameter) pairs;
        `param_groups` splits them by ``optim.no_decay``."""
        ...


def param_groups(named: NamedParams, optim: OptimSection) -> list[dict[str, Any]]:
    """[decayed params] + [params whose name contains an ``optim.no_decay`` pattern, wd 0];
    empty groups are left out, so the default (no patterns) is one group, as before."""
    plain = [p for n, p in named if not any(pat in n for pat in optim.no_decay)]
    exempt = [p for n, p in named if any(pat in n for pat in optim.no_decay)]
    groups = [{"params": plain, "weight_decay": optim.weight_decay}]
    groups.append({"params": exempt, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


@attrs.frozen
class AdamSpec:
    """``optimizer(param_groups, lr=0, betas)`` as an `OptimizerSpec`."""

    optimizer: Callable[..., torch.optim.Optimizer]

    def build(self, named: NamedParams, optim: OptimSection) -> list[torch.optim.Optimizer]:
        betas = (optim.beta1, optim.beta2)
        return [self.optimizer(param_groups(named, optim), lr=0.0, betas=betas)]


class MuonSpec:
    """`torch.optim.Muon` on the 2-D weights of the hidden layers, AdamW on the rest (the
    embeddings, the output heads, biases and norms), as torch's documentation recommends.
    ``adjust_lr_fn="match_rms_adamw"`` lets both share ``optim.lr`` and ``weight_decay``."""

    def build(self, named: NamedParams, optim: OptimSection) -> list[torch.optim.Optimizer]:
        def matrix(name: str, p: torch.Tensor) -> bool:
            return p.ndim == 2 and "embed" not in name and not name.startswith("heads.")

        core = [(n, p) for n, p in named if matrix(n.removeprefix("core."), p)]
        rest = [(n, p) for n, p in named if not matrix(n.removeprefix("core."), p)]
        out: list[torch.optim.Optimizer] = []
        if core:
            muon = torch.optim.Muon  # type: ignore[attr-defined]
            out.append(muon(param_groups(core, optim), lr=0.0, adjust_lr_fn="match_rms_adamw"))
        if rest:
            out += AdamSpec(torch.optim.AdamW).build(rest, optim)
        return out


def register(register: Any) -> None:
    """The built-in dense optimisers (called by `trmkit.training.plugin`)."""
    register("optimizer", "adam_atan2", AdamSpec(AdamATan2), "AdamATan2 (the official code's)")
    register("optimizer", "adamw", AdamSpec(torch.optim.AdamW), "torch.optim.AdamW")
    if hasattr(torch.optim, "Muon"):  # torch >= 2.9 ships it
        register("optimizer", "muon", MuonSpec(), "torch.optim.Muon on matrices, AdamW else")


def build_optimizers(model: RecursiveModel, optim_cfg: OptimSection) -> list[torch.optim.Optimizer]:
    """The ``optim.name`` optimisers over the trainable params + [SparseSignSGD over the puzzle
    table, if any].

    ``optim_cfg`` is the recipe's optim section. Each param group records ``base_lr`` for
    the schedule; the initial lr is 0 (the schedule sets it before every step). The model
    is never wrapped (no DDP; `compile_model` compiles in place), so its `puzzle_emb` is
    the table itself.
    """
    spec = plugins.component("optimizer", optim_cfg.name, "optim.name")
    if not isinstance(spec.component, OptimizerSpec):
        raise PluginError(
            f"plugin {spec.plugin!r}: optimizer {optim_cfg.name!r} does not implement "
            "trmkit.training.optim.OptimizerSpec (build)"
        )
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizers = spec.component.build(named, optim_cfg)
    for opt in optimizers:
        for group in opt.param_groups:
            group["base_lr"] = optim_cfg.lr
    emb = model.puzzle_emb
    if emb is not None:
        sparse = SparseSignSGD(emb, lr=0.0, weight_decay=optim_cfg.puzzle_emb_weight_decay)
        sparse.param_groups[0]["base_lr"] = optim_cfg.puzzle_emb_lr
        optimizers.append(sparse)
    return optimizers
