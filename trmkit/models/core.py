"""Shared pieces of every recursive core: config fields, input embedding, heads, latents.

A *core* maps (latents, data) -> (new latents, logits, q_halt, q_continue) for one
supervision step; `trmkit.models.act.ACTModel` wraps it with the ACT carry and the loss.
Concrete cores (TRM, single-z, multi-z, HRM, transformer) only define their latents, the
recursion in `recurse` and how often it calls each network (`stack_calls`), from which the
base class counts FLOPs and the preflight's activation memory; their configs say where the
official code keeps the same tensors and fields (`OfficialLayout`).
"""

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from trmkit.errors import ConfigError
from trmkit.models.blocks import BlockDims, ReasoningStack, make_stack
from trmkit.models.init import trunc_normal_
from trmkit.models.layers import CastedEmbedding, CastedLinear, RotaryEmbedding
from trmkit.models.protocol import StepFlops
from trmkit.models.sparse_embedding import SparsePuzzleEmbedding

POS_ENCODINGS = ("rope", "learned", "none")
LOSS_TYPES = ("stablemax_cross_entropy", "softmax_cross_entropy")
# How a sequence halts early in training (docs/engine.md, "Halting rules"):
#   auto                q_halt_vs_continue when act_continue is on, else q_halt (TRM, HRM)
#   q_halt              q_halt > 0
#   q_halt_vs_continue  q_halt > q_continue (the transformer baseline, HRM)
#   fixed               never early: every sequence runs halt_max_steps steps
HALT_RULES = ("auto", "q_halt", "q_halt_vs_continue", "fixed")
MAX_SIZE = 2**31 - 1
"""the largest value of a size field (`CoreConfig.positive`): torch refuses sizes beyond int64
with a TypeError deep in a layer (docs/errors.md)."""
# float64 is for verification (e.g. against the official code's numbers), not for training
DTYPES = {name: getattr(torch, name) for name in ("float32", "bfloat16", "float16", "float64")}


@attrs.frozen
class OfficialField:
    """One key of the official ``arch`` config and the trmkit config field it is, read in
    both directions: import sets ``ours = read(arch[official])``, export writes
    ``arch[official] = write(ours)`` (a ValueError when the official code has no such value)."""

    official: str
    ours: str | None = None
    """the trmkit field; None: a constant ``default`` the official schema wants (export only)."""
    read: Callable[[Any], Any] = int
    write: Callable[[Any], Any] = lambda value: value
    default: Any = None
    """the official value when the key is absent (None: the key is required)."""


@attrs.frozen
class OfficialLayout:
    """Where an architecture with an official lineage keeps its tensors and config fields in
    the official code's checkpoints (docs/interop.md); one table, read by
    `trmkit.interop.official` for import and export. A config class declares it as its
    ``official`` class attribute (None: no official counterpart)."""

    arch: str
    """the official ``arch.name``, module@class."""
    tensors: Mapping[str, str]
    """official name -> trmkit name beyond the tensors every official model shares; a name
    ending in "." is a prefix (a layer stack: the names inside a layer are the same)."""
    fields: tuple[OfficialField, ...] = ()
    fixed: Mapping[str, Any] = attrs.field(factory=dict)
    """trmkit fields the official code cannot vary: set on import, checked on export."""
    rows: Mapping[str, str] = attrs.field(factory=dict)
    """trmkit tensor -> the official name of each of its rows, ``{}`` the 1-based row."""
    unused: frozenset[str] = frozenset()
    """trmkit buffers the architecture registers but never reads (kept as built)."""

    @property
    def module(self) -> str:
        """The official module (the part of ``arch`` before "@", last component)."""
        return self.arch.split("@", 1)[0].rsplit(".", 1)[-1]


@runtime_checkable
class OfficialLineage(Protocol):
    """A config class that says whether (and how) its architecture maps to the official code:
    every `CoreConfig`; a third-party config may declare it too."""

    official: ClassVar[OfficialLayout | None]


@attrs.define(kw_only=True)
class CoreConfig:
    """Fields common to every architecture. The first four are filled from the dataset.

    ``step_loss`` names the registered per-step loss (docs/engine.md, "Per-step losses");
    ``schedule`` sets the fields in `schedulable` by training progress, ``{field: [[fraction,
    value], ...]}`` (docs/engine.md, "Training progress and schedules")."""

    schedulable: ClassVar[tuple[str, ...]] = ("halt_exploration_prob",)
    """the fields a schedule may set: none of them sizes a parameter."""

    official: ClassVar[OfficialLayout | None] = None

    positive: ClassVar[tuple[str, ...]] = (
        "seq_len",
        "vocab_size",
        "num_puzzle_identifiers",
        "hidden_size",
        "num_heads",
        "halt_max_steps",
    )
    """the integer fields that must be >= 1 (a subclass adds its own)."""

    seq_len: int = 81
    vocab_size: int = 11
    num_puzzle_identifiers: int = 1
    batch_size: int = 768
    hidden_size: int = 512
    num_heads: int = 8
    expansion: float = 4.0
    puzzle_emb_ndim: int = 512
    puzzle_emb_len: int = 16
    pos_encodings: str = "rope"
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    halt_max_steps: int = 16
    halt_exploration_prob: float = 0.1
    act_continue: bool = False
    halt_rule: str = "auto"
    loss_type: str = "stablemax_cross_entropy"
    forward_dtype: str = "auto"
    step_loss: str = "act"
    schedule: dict = attrs.field(factory=dict)

    @property
    def prefix_len(self) -> int:
        """P: puzzle_emb_len, or ceil(ndim / D) when 0 (HRM's rule); 0 without embeddings."""
        if self.puzzle_emb_ndim <= 0:
            return 0
        if self.puzzle_emb_len > 0:
            return self.puzzle_emb_len
        return -(self.puzzle_emb_ndim // -self.hidden_size)

    @property
    def total_len(self) -> int:
        return self.seq_len + self.prefix_len

    def validate(self) -> None:
        def need(ok: bool, key: str, message: str) -> None:
            if not ok:
                raise ConfigError(f"model.{key}: {message}")

        for key in self.positive:  # at most int32: torch sizes beyond int64 overflow
            need(1 <= getattr(self, key) <= MAX_SIZE, key, f"must be between 1 and {MAX_SIZE}")
        need(self.hidden_size // self.num_heads >= 2, "num_heads", "head_dim must be >= 2")
        for key in ("puzzle_emb_ndim", "puzzle_emb_len"):
            need(getattr(self, key) >= 0, key, "must be >= 0")
        need(self.rope_theta > 0, "rope_theta", "must be > 0")
        need(self.rms_norm_eps >= 0, "rms_norm_eps", "must be >= 0")
        for key, allowed in (
            ("pos_encodings", POS_ENCODINGS),
            ("loss_type", LOSS_TYPES),
            ("halt_rule", HALT_RULES),
            ("forward_dtype", ("auto", *DTYPES)),
        ):
            value = getattr(self, key)
            need(value in allowed, key, f"{value!r} is not one of {', '.join(allowed)}")
        need(0.0 <= self.halt_exploration_prob <= 1.0, "halt_exploration_prob", "must be in [0,1]")
        # expansion <= 0 sizes a SwiGLU of width 0 (ZeroDivisionError in its initialiser)
        need(0.0 < self.expansion < math.inf, "expansion", "must be a positive finite number")
        need(
            self.puzzle_emb_ndim <= self.prefix_len * self.hidden_size or self.prefix_len == 0,
            "puzzle_emb_ndim",
            "must fit in puzzle_emb_len * hidden_size values",
        )
        from trmkit.models.schedule import config_at

        for key, pieces in self.schedule.items():  # schedulable, and valid in every piece
            if key not in self.schedulable:
                raise ConfigError(
                    f"model.schedule.{key}: not schedulable for {type(self).__name__}; "
                    f"schedulable: {', '.join(self.schedulable)}"
                )
            for start, _ in pieces:
                try:
                    config_at(self, start).validate()
                except ConfigError as exc:
                    raise ConfigError(f"model.schedule.{key} from {start:g}: {exc}") from None

    @property
    def block_dims(self) -> BlockDims:
        return BlockDims(
            hidden=self.hidden_size,
            length=self.total_len,
            expansion=self.expansion,
            heads=self.num_heads,
            eps=self.rms_norm_eps,
            prefix_len=self.prefix_len,
        )

    @property
    def training_halt_rule(self) -> str:
        """The resolved rule: ``auto`` becomes q_halt_vs_continue or q_halt."""
        if self.halt_rule != "auto":
            return self.halt_rule
        return "q_halt_vs_continue" if self.act_continue else "q_halt"

    def dtype_for(self, device: torch.device) -> torch.dtype:
        """ "auto": bf16 on CUDA, fp32 elsewhere (the CPU path is fp32 throughout)."""
        if self.forward_dtype == "auto":
            return torch.bfloat16 if device.type == "cuda" else torch.float32
        return DTYPES[self.forward_dtype]


class InputEncoder(nn.Module):
    """Token embedding, puzzle prefix, optional learned positions, scale by sqrt(D) (2.2)."""

    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.hidden = d
        self.prefix_len = cfg.prefix_len
        self.scale = math.sqrt(d)
        self.embed_tokens = CastedEmbedding(cfg.vocab_size, d, init_std=1.0 / self.scale)
        self.puzzle_emb = (
            SparsePuzzleEmbedding(cfg.num_puzzle_identifiers, cfg.puzzle_emb_ndim)
            if cfg.puzzle_emb_ndim > 0
            else None
        )
        self.embed_pos = (
            CastedEmbedding(cfg.total_len, d, init_std=1.0 / self.scale)
            if cfg.pos_encodings == "learned"
            else None
        )

    def extra_repr(self) -> str:
        return f"prefix_len={self.prefix_len}"

    def forward(
        self, inputs: torch.Tensor, puzzle_ids: torch.Tensor, dtype: torch.dtype
    ) -> torch.Tensor:
        x = self.embed_tokens(inputs, dtype)
        if self.puzzle_emb is not None:
            pe = self.puzzle_emb(puzzle_ids).to(dtype)
            pad = self.prefix_len * self.hidden - pe.shape[-1]
            if pad > 0:
                pe = F.pad(pe, (0, pad))
            x = torch.cat((pe.view(-1, self.prefix_len, self.hidden), x), dim=1)
        if self.embed_pos is not None:
            x = 0.707106781 * (x + self.embed_pos.weight.to(dtype))
        return self.scale * x


class OutputHeads(nn.Module):
    """lm_head on y without the prefix, Q head on position 0 (weight 0, bias -5), in fp32.

    The reference runs lm_head in bf16 on GPU; computing both heads in fp32 is a deliberate,
    slightly more precise choice (the heads are a negligible share of the FLOPs).
    """

    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__()
        self.prefix_len = cfg.prefix_len
        self.lm_head = CastedLinear(cfg.hidden_size, cfg.vocab_size)
        self.q_head = CastedLinear(cfg.hidden_size, 2, bias=True)
        with torch.no_grad():
            self.q_head.weight.zero_()
            assert self.q_head.bias is not None
            self.q_head.bias.fill_(-5.0)
        d, seq, vocab = cfg.hidden_size, cfg.seq_len, cfg.vocab_size
        self.flops = 2 * seq * d * vocab + 4 * d
        """forward matmul FLOPs on one sequence."""
        self.activation_floats = 3 * seq * vocab
        """floats kept for backward on one sequence: the logits, their softmax, its gradient."""

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.lm_head(y[:, self.prefix_len :].float())
        q = self.q_head(y[:, 0].float())
        return logits, q[:, 0], q[:, 1]


class RecursiveCore(nn.Module):
    """Base class: encoder + heads + rotary tables + fixed random initial latents.

    Subclasses set ``latent_names``, register one fixed initial vector per latent with
    `register_init` (a truncated-normal std-1 buffer ``<name>_init``), and implement
    ``recurse(latents, x, rope) -> (latents, y_for_heads)`` and ``stack_calls()``. Their
    shared networks are `ReasoningStack` attributes (compiled by `compile_model`, built by
    `stack`); the FLOPs and the activation memory of a step follow from ``stack_calls``.
    """

    latent_names: tuple[str, ...] = ()

    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.encoder = InputEncoder(cfg)
        self.heads = OutputHeads(cfg)
        self.rotary = (
            RotaryEmbedding(cfg.hidden_size // cfg.num_heads, cfg.total_len, cfg.rope_theta)
            if cfg.pos_encodings == "rope"
            else None
        )

    # ---------------------------------------------------------------- latents
    def initial_latents(self, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Zero latents of the right shape/dtype; every slot starts halted, so they are reset."""
        dtype = self.config.dtype_for(device)
        out = {}
        for name in self.latent_names:
            init = getattr(self, f"{name}_init")
            shape = (batch_size, *init.shape[:-1], self.config.total_len, self.config.hidden_size)
            out[name] = torch.zeros(shape, dtype=dtype, device=device)
        return out

    def reset_latents(
        self, reset: torch.Tensor, latents: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Halted slots get the init vectors broadcast over every position."""
        out = {}
        for name, value in latents.items():
            init = getattr(self, f"{name}_init").to(value.dtype)
            init = init.unsqueeze(-2)  # [..., 1, D]: same vector at every position
            mask = reset.view(-1, *([1] * (value.ndim - 1)))
            out[name] = torch.where(mask, init, value)
        return out

    # ---------------------------------------------------------------- forward
    @property
    def puzzle_emb(self) -> SparsePuzzleEmbedding | None:
        return self.encoder.puzzle_emb

    def rope(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None if self.rotary is None else self.rotary()

    def recurse(self, latents, x, rope):  # pragma: no cover - abstract
        raise NotImplementedError

    def compile_targets(self) -> Sequence[nn.Module]:
        """The shared networks: every `ReasoningStack` attribute of the core."""
        return [m for m in self.children() if isinstance(m, ReasoningStack)]

    def stack(
        self, num_layers: int, mixer: str = "attention", mlp: str = "swiglu"
    ) -> ReasoningStack:
        """A shared network of ``num_layers`` blocks of the named mixer and MLP."""
        return make_stack(self.config.block_dims, num_layers, mixer, mlp)

    def stack_calls(self) -> Sequence[tuple[ReasoningStack, int, int]]:  # pragma: no cover
        """(network, calls without gradient, calls in the autograd graph) of one step."""
        raise NotImplementedError

    def step_flops(self, batch: int) -> StepFlops:
        """Matmul FLOPs of one supervision step: every network call and the heads forward,
        twice the graph's calls and the heads backward, and the ACT-continue target pass."""
        calls = self.stack_calls()
        heads = self.heads.flops
        forward = batch * (sum((nograd + grad) * net.flops for net, nograd, grad in calls) + heads)
        backward = 2 * batch * (sum(grad * net.flops for net, _, grad in calls) + heads)
        extra = forward if self.config.act_continue else 0
        return StepFlops(forward=forward, backward=backward, extra_forward=extra)

    def step_activation_floats(self, batch: int) -> int:
        """Floats one training step's autograd graph keeps: the graph's network calls and
        the heads (`trmkit.models.protocol.StepMemory`)."""
        calls = self.stack_calls()
        graph = sum(grad * net.activation_floats for net, _, grad in calls)
        return batch * (graph + self.heads.activation_floats)

    def forward(self, latents: dict[str, torch.Tensor], data: dict[str, torch.Tensor]):
        inputs = data["inputs"]
        dtype = self.config.dtype_for(inputs.device)
        x = self.encoder(inputs, data["puzzle_identifiers"], dtype)
        latents = {k: v.to(dtype) for k, v in latents.items()}
        new_latents, y = self.recurse(latents, x, self.rope())
        logits, q_halt, q_continue = self.heads(y)
        return {k: v.detach() for k, v in new_latents.items()}, logits, q_halt, q_continue


def register_init(module: nn.Module, name: str, shape: tuple[int, ...]) -> None:
    """A persistent fp32 buffer of truncated-normal (std 1) values: a fixed initial latent.

    The official code keeps these in bf16; we keep fp32 and cast at reset (same values on
    CPU; docs/engine.md, deviation 3)."""
    module.register_buffer(f"{name}_init", trunc_normal_(torch.empty(shape), std=1.0))
