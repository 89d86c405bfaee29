"""A block is post-norm(token mixer) + post-norm(channel MLP): h <- norm(h + mixer(h, rope)),
h <- norm(h + mlp(h)); `ReasoningStack` is the shared network every recursion step calls.

The mixer and the MLP are chosen by name from the ``register_components`` kinds "mixer" and
"mlp" (docs/engine.md, "Mixers and MLPs"): a `MixerSpec` or `MLPSpec` says how to build the
module from the block's `BlockDims` and what the FLOP count and the preflight memory estimate
need (forward FLOPs and saved-activation floats per sequence). The built-ins (attention,
mlp_t, swiglu) are the specs below, registered by `trmkit.models.plugin` as a plugin would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import attrs
import torch
from torch import nn

from trmkit.errors import PluginError
from trmkit.models.layers import Attention, SwiGLU, TokenSwiGLU, add_rms_norm, swiglu_width

Rope = tuple[torch.Tensor, torch.Tensor] | None
Spec = TypeVar("Spec")


@attrs.frozen
class BlockDims:
    """What a mixer or an MLP is built for (one block of a config)."""

    hidden: int
    """D, the channel width."""
    length: int
    """L, the sequence length including the puzzle prefix."""
    expansion: float
    heads: int
    eps: float
    """the post-norms' epsilon."""
    prefix_len: int
    """the puzzle-embedding positions at the start of the sequence."""


@attrs.frozen
class _ModuleSpec:
    """What both specs hold: how to build the module and what it costs."""

    build: Callable[[BlockDims], nn.Module]
    flops: Callable[[BlockDims], int]
    """forward matmul FLOPs on one sequence."""
    activation_floats: Callable[[BlockDims], int]
    """floats it keeps for backward on one sequence (fp32 CPU path, docs/training.md)."""


@attrs.frozen
class MixerSpec(_ModuleSpec):
    """A token mixer: ``build(dims)`` returns a module called as ``mixer(h, rope)`` on
    h [B, L, D] that returns the residual update [B, L, D] (a view is fine)."""

    attribute: str = attrs.field(
        validator=attrs.validators.and_(
            attrs.validators.matches_re(r"[a-z][a-z0-9_]*"),
            attrs.validators.not_(attrs.validators.in_(("mlp",))),
        )
    )
    """the block attribute holding it: its state-dict prefix (``self_attn``, ``mlp_t``; not
    ``mlp``, the MLP's)."""
    norm_dim: int = -1
    """the axis its post-norm normalises: -1 channels, 1 the sequence (MLP-t)."""


@attrs.frozen
class MLPSpec(_ModuleSpec):
    """A channel MLP: ``build(dims)`` returns a module called as ``mlp(h)`` on h [B, L, D]
    that returns the residual update [B, L, D]; held as the block's ``mlp`` attribute."""


def _spec(kind: str, name: str, cls: type[Spec]) -> Spec:
    """The registered ``kind`` component ``name``, checked against its spec class (an unknown
    name: one line naming ``model.<kind>`` and the known names)."""
    from trmkit import plugins

    entry = plugins.component(kind, name, f"model.{kind}")
    if not isinstance(entry.component, cls):
        raise PluginError(
            f"plugin {entry.plugin!r}: {kind} {name!r} is a {type(entry.component).__name__}, "
            f"not a trmkit.models.blocks.{cls.__name__}; register one (docs/engine.md, "
            f"'Mixers and MLPs')"
        )
    return entry.component


NORM_FLOATS_PER_TOKEN = 5
"""what a block keeps around its two post-norms, per token in units of D: the block input,
the residual sums and the RMS outputs (docs/training.md)."""


class Block(nn.Module):
    """h = RMS(h + mixer(h, rope)); h = RMS(h + mlp(h)). Knows its own cost per sequence."""

    def __init__(self, mixer: MixerSpec, mlp: MLPSpec, dims: BlockDims) -> None:
        super().__init__()
        self.mixer_attribute = mixer.attribute
        self.norm_dim = mixer.norm_dim
        self.eps = dims.eps
        self.add_module(mixer.attribute, mixer.build(dims))
        self.mlp = mlp.build(dims)
        self.flops = mixer.flops(dims) + mlp.flops(dims)
        """forward matmul FLOPs on one sequence."""
        self.activation_floats = (
            NORM_FLOATS_PER_TOKEN * dims.length * dims.hidden
            + mixer.activation_floats(dims)
            + mlp.activation_floats(dims)
        )
        """floats kept for backward on one sequence."""

    def forward(self, h: torch.Tensor, rope: Rope) -> torch.Tensor:
        mixer = getattr(self, self.mixer_attribute)
        h = add_rms_norm(h, mixer(h, rope), self.eps, dim=self.norm_dim)
        return add_rms_norm(h, self.mlp(h), self.eps)


class ReasoningStack(nn.Module):
    """net(h, injection) = blocks(h + injection): the network every recursion step calls."""

    def __init__(self, blocks: Sequence[Block]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(blocks)
        self.flops = sum(block.flops for block in blocks)
        """forward matmul FLOPs of one call on one sequence."""
        self.activation_floats = sum(block.activation_floats for block in blocks)
        """floats one call keeps for backward on one sequence."""

    def forward(self, h: torch.Tensor, injection: torch.Tensor | None, rope: Rope) -> torch.Tensor:
        if injection is not None:
            h = h + injection
        for layer in self.layers:
            h = layer(h, rope)
        return h


def make_stack(dims: BlockDims, num_layers: int, mixer: str, mlp: str) -> ReasoningStack:
    """``num_layers`` blocks of the registered mixer and MLP named ``mixer`` and ``mlp``."""
    mixer_s, mlp_s = _spec("mixer", mixer, MixerSpec), _spec("mlp", mlp, MLPSpec)
    return ReasoningStack([Block(mixer_s, mlp_s, dims) for _ in range(num_layers)])


# ---------------------------------------------------------------- the built-in components
# A linear map in -> out on N tokens costs 2 N in out FLOPs; attention adds 2 H L^2 hd for the
# scores and again for the weighted sum (docs/engine.md, "FLOPs and the benchmark"). With
# inner = H hd: projections 2 L D (3 inner + inner), scores and weighted sum 4 L^2 inner.
ATTENTION = MixerSpec(
    build=lambda d: Attention(d.hidden, d.heads),
    flops=lambda d: 4 * d.length * (d.heads * (d.hidden // d.heads)) * (2 * d.hidden + d.length),
    # q, k, v, the SDPA output and the output projection's input; the CPU flash kernel keeps
    # no L x L matrix
    activation_floats=lambda d: 5 * d.length * d.hidden,
    attribute="self_attn",
)
MLP_T = MixerSpec(
    build=lambda d: TokenSwiGLU(d.length, d.expansion),
    flops=lambda d: 6 * d.hidden * d.length * swiglu_width(d.length, d.expansion),
    # its [D, L] rows, gate/up [D, 2 I_t], product [D, I_t] and output
    activation_floats=lambda d: d.hidden * (3 * swiglu_width(d.length, d.expansion) + 2 * d.length),
    attribute="mlp_t",
    norm_dim=1,
)
SWIGLU = MLPSpec(
    build=lambda d: SwiGLU(d.hidden, d.expansion),
    flops=lambda d: 6 * d.length * d.hidden * swiglu_width(d.hidden, d.expansion),
    # its input, the fused gate/up projection 2I and the product I
    activation_floats=lambda d: d.length * (d.hidden + 3 * swiglu_width(d.hidden, d.expansion)),
)
