"""Primitive layers of the official TRM network (RMS norm, SwiGLU, RoPE, attention,
the MLP-t token mixer, casted linear and embedding), in plain PyTorch.

Weights are stored in fp32 and cast to the activation dtype at call time (bf16 on GPU,
a no-op in fp32), so the optimiser always sees fp32 parameters. There are no norm gains
and no biases except the Q head's.

Each layer has one reference formulation (the composite maths of the official code) and,
behind the one switch `cpu_kernels`, fused fp32 kernels that compute the same values with
fewer passes over memory (docs/engine.md, "Speed at small sizes"); tests/test_fused_layers.py
holds them to the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trmkit.errors import ConfigError
from trmkit.models.init import lecun_std, trunc_normal_


def swiglu_width(hidden: int, expansion: float) -> int:
    """Intermediate width of the SwiGLU: round(expansion * h * 2/3) rounded up to 256."""
    return -(round(expansion * hidden * 2 / 3) // -256) * 256


def cpu_kernels(x: torch.Tensor) -> bool:
    """The switch: fp32 activations outside a torch.compile trace take the fused eager
    kernels (the CPU path); everything else takes the reference composite.

    Other dtypes (bf16 on GPU) keep the reference's "upcast, compute, cast back" composite,
    and under torch.compile the composite is what Inductor fuses best, so both use it."""
    return x.dtype == torch.float32 and not torch.compiler.is_compiling()


def _rms_scale(x: torch.Tensor, eps: float, dim: int) -> torch.Tensor:
    """rsqrt(mean(x^2) + eps) over ``dim`` (kept). Over the innermost axis one vector_norm
    pass (no x^2 temporary); over another axis (MLP-t's sequence axis) x^2 and a sum instead:
    vector_norm's strided reduction was 6-13x slower there on CPU (docs/engine.md)."""
    if dim != x.ndim - 1:
        return x.square().sum(dim, keepdim=True).div_(x.shape[dim]).add_(eps).rsqrt_()
    norm = torch.linalg.vector_norm(x, 2, dim=dim, keepdim=True)
    return norm.square_().div_(x.shape[dim]).add_(eps).rsqrt_()


class _RMSNormFn(torch.autograd.Function):
    """y = x * r, r = rsqrt(mean(x^2) + eps); backward dx = r (g - y mean(g y)).

    The composite (pow, mean, add, rsqrt, mul) costs about five passes forward and more
    backward on CPU; this costs two forward and four backward, and saves only (y, r)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float, dim: int) -> torch.Tensor:
        r = _rms_scale(x, eps, dim)
        y = x * r
        ctx.save_for_backward(y, r)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        y, r = ctx.saved_tensors
        mean_gy = (g * y).mean(ctx.dim, keepdim=True)
        return torch.addcmul(g, y, mean_gy, value=-1.0).mul_(r), None, None


def rms_norm(x: torch.Tensor, eps: float, dim: int = -1, inplace: bool = False) -> torch.Tensor:
    """Post-norm RMS normalisation without gain, computed in fp32 and cast back.

    ``dim`` is the normalised axis: -1 (channels) for every sub-layer except the MLP-t
    token mixer, which normalises over the sequence axis. ``inplace`` lets a caller that
    owns ``x`` (a fresh residual sum) reuse its storage when no graph is being recorded.
    """
    dim = dim % x.ndim
    if cpu_kernels(x):
        if not (torch.is_grad_enabled() and x.requires_grad):
            r = _rms_scale(x, eps, dim)
            return x.mul_(r) if inplace else x * r
        return _RMSNormFn.apply(x, eps, dim)
    if dim == x.ndim - 1:
        return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)
    xf = x.float()
    return (xf * torch.rsqrt(xf.square().mean(dim, keepdim=True) + eps)).to(x.dtype)


def add_rms_norm(h: torch.Tensor, delta: torch.Tensor, eps: float, dim: int = -1) -> torch.Tensor:
    """rms_norm(h + delta): the post-norm residual. Without a graph the sum and the scaling
    reuse ``delta``'s storage (a sub-layer output nobody else holds); ``h`` goes first so the
    sum keeps ``h``'s (contiguous) layout when ``delta`` is a transposed view."""
    if cpu_kernels(h) and not torch.is_grad_enabled() and delta.is_contiguous():
        return rms_norm(delta.add_(h), eps, dim, inplace=True)
    return rms_norm(h + delta, eps, dim)


class CastedLinear(nn.Module):
    """Linear layer with fp32 weights [out, in], LeCun truncated-normal init, cast at call."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        weight = trunc_normal_(torch.empty(out_features, in_features), std=lecun_std(in_features))
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

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
    xf = x.float()
    shape = (cos.shape[0], *([1] * (x.ndim - 3)), cos.shape[1])
    return (xf * cos.view(shape) + rotate_half(xf) * sin.view(shape)).to(x.dtype)


def _rotate_into(out: torch.Tensor, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """out = x rotated by (cos, sin) in the concat convention, written half by half:
    (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin). ``cos``/``sin`` hold one half-table.
    Rotating by -angle (the backward) is the same call with ``-sin``."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    o1, o2 = out[..., :half], out[..., half:]
    torch.mul(x1, cos, out=o1)
    o1.addcmul_(x2, sin, value=-1.0)
    torch.mul(x2, cos, out=o2)
    o2.addcmul_(x1, sin)


class _RopeQKVFn(torch.autograd.Function):
    """RoPE on q and k of a fused [B, L, 3, H, hd] projection, v passed through, into one
    new tensor: no rotate_half cat, and a backward (rotation by -angle) that writes the whole
    qkv gradient at once instead of zero-filling it around a slice."""

    @staticmethod
    def forward(ctx, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(qkv)
        _rotate_into(out[:, :, :2], qkv[:, :, :2], cos, sin)
        out[:, :, 2].copy_(qkv[:, :, 2])
        ctx.save_for_backward(cos, sin)
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        cos, sin = ctx.saved_tensors
        grad = torch.empty_like(g)
        _rotate_into(grad[:, :, :2], g[:, :, :2], cos, -sin)
        grad[:, :, 2].copy_(g[:, :, 2])
        return grad, None, None


def rope_qkv(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """[B, L, 3, H, hd] with q and k rotated by the [L, hd] tables (same maths as
    `apply_rope` on q and k). fp32 takes the fused path (in place when no graph is
    recorded); other dtypes rotate in fp32 and cast back as the reference does."""
    if not cpu_kernels(qkv):
        qk = apply_rope(qkv[:, :, :2], cos, sin)
        return torch.cat((qk, qkv[:, :, 2:]), dim=2)
    half = cos.shape[-1] // 2
    shape = (cos.shape[0], 1, 1, half)
    cos_h, sin_h = cos[:, :half].reshape(shape), sin[:, :half].reshape(shape)
    if torch.is_grad_enabled() and qkv.requires_grad:
        return _RopeQKVFn.apply(qkv, cos_h, sin_h)
    qk = qkv[:, :, :2]
    x1, x2 = qk[..., :half], qk[..., half:]
    x1_sin = x1 * sin_h
    x1.mul_(cos_h).addcmul_(x2, sin_h, value=-1.0)
    x2.mul_(cos_h).add_(x1_sin)
    return qkv


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
        if rope is not None:  # rotate q and k together over [B, L, 2, H, hd]
            qkv = rope_qkv(qkv, *rope)
        q, k, v = qkv.unbind(dim=2)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=False
        )
        return self.o_proj(out.transpose(1, 2).reshape(b, length, -1))


class _SwiGLUFn(torch.autograd.Function):
    """silu(gate) * up on a fused [..., 2I] projection. Saves only the projection (not
    silu(gate)), and the backward writes d(gate) and d(up) straight into one [..., 2I]
    gradient instead of autograd's split-backward concatenation."""

    @staticmethod
    def forward(ctx, gate_up: torch.Tensor) -> torch.Tensor:
        gate, up = gate_up.chunk(2, dim=-1)
        ctx.save_for_backward(gate_up)
        return F.silu(gate).mul_(up)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (gate_up,) = ctx.saved_tensors
        gate, up = gate_up.chunk(2, dim=-1)
        grad = torch.empty_like(gate_up)
        d_gate, d_up = grad.chunk(2, dim=-1)
        torch.mul(g, up, out=d_up)  # scratch: g * up, consumed by silu_backward below
        torch.ops.aten.silu_backward.grad_input(d_up, gate, grad_input=d_gate)
        torch.mul(F.silu(gate), g, out=d_up)
        return grad


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up for gate, up = gate_up.chunk(2, -1) (the reference)."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


SPLIT_MAX_WIDTH = 512
"""widest SwiGLU intermediate (I) whose no-graph kernel is `swiglu_split`: at I <= 512
(D <= 128, and MLP-t's token mixer up to L = 192) the split measured 1.09-1.18x on the eval
rollout; at D = 512 (I = 1536) one fused matmul is faster (split 0.95x), docs/engine.md."""


def swiglu_split(x: torch.Tensor, gate_up: CastedLinear) -> torch.Tensor:
    """silu(x W_gate^T) * (x W_up^T) as two matmuls on the row halves of the fused [2I, in]
    weight (contiguous views: the state dict keeps one ``gate_up_proj``). Without a graph this
    beats one [.., 2I] matmul + chunk: silu and the product then run on contiguous tensors,
    not on strided halves, and no 2I-wide temporary is written. The same values: each output
    element is the same dot product over the same inputs."""
    inter = gate_up.out_features // 2
    weight = gate_up.weight
    gate = F.linear(x, weight[:inter])
    return F.silu(gate, inplace=True).mul_(F.linear(x, weight[inter:]))


def gated(x: torch.Tensor, gate_up: CastedLinear) -> torch.Tensor:
    """silu(gate) * up of ``gate_up(x)``: the reference, or under `cpu_kernels` the split
    matmuls (no graph, I <= `SPLIT_MAX_WIDTH`) or `_SwiGLUFn` (in place without a graph)."""
    if not cpu_kernels(x):
        return swiglu(gate_up(x))
    if not torch.is_grad_enabled() and gate_up.out_features <= 2 * SPLIT_MAX_WIDTH:
        return swiglu_split(x, gate_up)
    return _SwiGLUFn.apply(gate_up(x))


class SwiGLU(nn.Module):
    """down(silu(gate) * up) with one fused gate/up projection; width by `swiglu_width`."""

    def __init__(self, hidden: int, expansion: float) -> None:
        super().__init__()
        self.inter = swiglu_width(hidden, expansion)
        if self.inter < 1:  # was a ZeroDivisionError in the initialisation
            raise ConfigError(
                f"model.expansion: {expansion:g} gives a SwiGLU over {hidden} features an "
                f"intermediate width of {self.inter}; use model.expansion >= {0.75 / hidden:.3g}"
            )
        self.gate_up_proj = CastedLinear(hidden, 2 * self.inter)
        self.down_proj = CastedLinear(self.inter, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(gated(x, self.gate_up_proj))


class TokenSwiGLU(SwiGLU):
    """The MLP-t token mixer: a SwiGLU of "hidden size" L (built as ``TokenSwiGLU(L,
    expansion)``) applied along the sequence axis.

    Same parameters and maths as the reference's transposed SwiGLU: h [B, L, D] is copied
    once to [B*D, L] rows, both projections are single large 2-D matmuls, and the result is
    returned as a transposed *view* [B, L, D] that the residual add materialises. (Computing
    W @ h on [B, L, D] looks copy-free, but torch folds it into the same matmul and then
    copies the 2I-wide [B, 2I, D] result back, an order of magnitude more memory traffic.)
    """

    def forward(self, x: torch.Tensor, rope: object = None) -> torch.Tensor:
        """``rope`` is ignored: positions are the axis it mixes (the mixer call signature)."""
        b, length, d = x.shape
        rows = x.transpose(1, 2).reshape(b * d, length)
        out = self.down_proj(gated(rows, self.gate_up_proj))  # [B*D, L]
        return out.view(b, d, length).transpose(1, 2)
