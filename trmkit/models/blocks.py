"""The post-norm blocks (x <- norm(x + mixer(x)), x <- norm(x + mlp(x))) and the shared
reasoning stack.

The token mixer is injected: `AttentionBlock` and `MLPTBlock` are separate classes with the
same call signature, and `ReasoningStack` takes a ready list of blocks. `block_factory` is the
one place that maps a mixer name from a config to a block class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from trmkit.errors import ConfigError
from trmkit.models.layers import Attention, SwiGLU, TokenSwiGLU, add_rms_norm

Rope = tuple[torch.Tensor, torch.Tensor] | None


class AttentionBlock(nn.Module):
    """h = RMS(h + Attn(h)); h = RMS(h + SwiGLU(h))."""

    def __init__(self, hidden: int, num_heads: int, expansion: float, eps: float) -> None:
        super().__init__()
        self.self_attn = Attention(hidden, num_heads)
        self.mlp = SwiGLU(hidden, expansion)
        self.eps = eps

    def forward(self, h: torch.Tensor, rope: Rope) -> torch.Tensor:
        h = add_rms_norm(h, self.self_attn(h, rope), self.eps)
        return add_rms_norm(h, self.mlp(h), self.eps)


class MLPTBlock(nn.Module):
    """MLP-mixer block: token SwiGLU over the L axis with RMS over L, then channel SwiGLU."""

    def __init__(self, hidden: int, length: int, expansion: float, eps: float) -> None:
        super().__init__()
        self.mlp_t = TokenSwiGLU(length, expansion)
        self.mlp = SwiGLU(hidden, expansion)
        self.eps = eps

    def forward(self, h: torch.Tensor, rope: Rope = None) -> torch.Tensor:
        h = add_rms_norm(h, self.mlp_t(h), self.eps, dim=1)
        return add_rms_norm(h, self.mlp(h), self.eps)


class ReasoningStack(nn.Module):
    """net(h, injection) = blocks(h + injection): the network every recursion step calls."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(blocks)

    def forward(self, h: torch.Tensor, injection: torch.Tensor | None, rope: Rope) -> torch.Tensor:
        if injection is not None:
            h = h + injection
        for layer in self.layers:
            h = layer(h, rope)
        return h


MIXERS = ("attention", "mlp_t")


def block_factory(
    mixer: str, hidden: int, num_heads: int, length: int, expansion: float, eps: float
) -> Callable[[], nn.Module]:
    """A zero-argument constructor of one block for the named token mixer."""
    if mixer == "attention":
        return lambda: AttentionBlock(hidden, num_heads, expansion, eps)
    if mixer == "mlp_t":
        return lambda: MLPTBlock(hidden, length, expansion, eps)
    raise ConfigError(f"model.mixer: unknown token mixer {mixer!r}; choose one of {MIXERS}")


def make_stack(factory: Callable[[], nn.Module], num_layers: int) -> ReasoningStack:
    return ReasoningStack([factory() for _ in range(num_layers)])
