"""Primitive layers of the reference network (section 2.3-2.4), in plain PyTorch.

Weights are stored in fp32 and cast to the activation dtype at call time (bf16 on GPU,
a no-op in fp32), so the optimiser always sees fp32 parameters. There are no norm gains
and no biases except the Q head's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trmkit.models.init import lecun_std, trunc_normal_


def round_up(value: int, multiple: int) -> int:
    return -(value // -multiple) * multiple


def swiglu_width(hidden: int, expansion: float) -> int:
    """Intermediate width of the SwiGLU: round(expansion * h * 2/3) rounded up to 256."""
    return round_up(round(expansion * hidden * 2 / 3), 256)


def rms_norm(x: torch.Tensor, eps: float, dim: int = -1) -> torch.Tensor:
    """Post-norm RMS normalisation without gain, computed in fp32 and cast back.

    ``dim`` is the normalised axis: -1 (channels) for every sub-layer except the MLP-t
    token mixer, which normalises over the sequence axis.
    """
    dtype = x.dtype
    if dim == -1 or dim == x.ndim - 1:
        return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(dtype)
    xf = x.float()
    return (xf * torch.rsqrt(xf.square().mean(dim, keepdim=True) + eps)).to(dtype)


class CastedLinear(nn.Module):
    """Linear layer with fp32 weights [out, in], LeCun truncated-normal init, cast at call."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        trunc_normal_(self.weight, std=lecun_std(self.in_features))
        if self.bias is not None:
            with torch.no_grad():
                self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, bias={self.bias is not None}"


class CastedEmbedding(nn.Module):
    """Embedding table [num, dim] in fp32, truncated-normal init with ``init_std``."""

    def __init__(self, num: int, dim: int, init_std: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num, dim))
        trunc_normal_(self.weight, std=init_std)

    def forward(self, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return F.embedding(ids.long(), self.weight).to(dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]} x {self.weight.shape[1]}"


class RotaryEmbedding(nn.Module):
    """RoPE tables for positions 0..L-1: angles duplicated to the full head dim (concat
    convention, used with `rotate_half`). Kept in fp32 as non-persistent buffers."""

    def __init__(self, head_dim: int, max_positions: int, theta: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        positions = torch.arange(max_positions, dtype=torch.float32)
        freqs = torch.outer(positions, inv_freq)
        angles = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos, self.sin


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last axis."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [B, L, ..., hd] by the [L, hd] tables; in fp32, cast back."""
    dtype = x.dtype
    xf = x.float()
    shape = (cos.shape[0], *([1] * (x.ndim - 3)), cos.shape[1])
    cos = cos.view(shape)
    sin = sin.view(shape)
    return (xf * cos + rotate_half(xf) * sin).to(dtype)


class Attention(nn.Module):
    """Non-causal multi-head self-attention: fused QKV (no bias), RoPE, SDPA, output proj.

    head_dim = hidden // heads (floor, as the reference does for the 12-head baseline).
    """

    def __init__(self, hidden: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden // num_heads
        inner = self.head_dim * num_heads
        self.qkv_proj = CastedLinear(hidden, 3 * inner)
        self.o_proj = CastedLinear(inner, hidden)

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        b, length, _ = x.shape
        qkv = self.qkv_proj(x).view(b, length, 3, self.num_heads, self.head_dim)
        if rope is not None:  # rotate q and k in one pass over [B, L, 2, H, hd]
            qk = apply_rope(qkv[:, :, :2], *rope)
            q, k = qk.unbind(dim=2)
            v = qkv[:, :, 2]
        else:
            q, k, v = qkv.unbind(dim=2)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=False
        )
        return self.o_proj(out.transpose(1, 2).reshape(b, length, -1))


class SwiGLU(nn.Module):
    """down(silu(gate) * up) with one fused gate/up projection; width by `swiglu_width`."""

    def __init__(self, hidden: int, expansion: float) -> None:
        super().__init__()
        self.inter = swiglu_width(hidden, expansion)
        self.gate_up_proj = CastedLinear(hidden, 2 * self.inter)
        self.down_proj = CastedLinear(self.inter, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class TokenSwiGLU(nn.Module):
    """The MLP-t token mixer: a SwiGLU of "hidden size" L applied along the sequence axis.

    Same parameters as ``SwiGLU(L)`` (state-dict compatible with the reference's transposed
    formulation), but computed as W @ h on [B, L, D] directly, so no transpose copies are made.
    """

    def __init__(self, length: int, expansion: float) -> None:
        super().__init__()
        self.inter = swiglu_width(length, expansion)
        self.gate_up_proj = CastedLinear(length, 2 * self.inter)
        self.down_proj = CastedLinear(self.inter, length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_up = torch.matmul(self.gate_up_proj.weight.to(x.dtype), x)  # [B, 2I, D]
        gate, up = gate_up.split(self.inter, dim=1)
        return torch.matmul(self.down_proj.weight.to(x.dtype), F.silu(gate) * up)
