"""The fused fp32 kernels of trmkit.models.layers agree with the plain composite maths.

gradcheck runs the autograd functions in float64 (their maths is dtype-agnostic); the
module-level tests compare the fp32 fast path with the composite formula in float64.
"""

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from trmkit.models.layers import (
    SPLIT_MAX_WIDTH,
    CastedLinear,
    RotaryEmbedding,
    _RMSNormFn,
    _RopeQKVFn,
    _SwiGLUFn,
    add_rms_norm,
    apply_rope,
    gated,
    rms_norm,
    rope_qkv,
    swiglu,
)


def test_fused_functions_pass_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _RMSNormFn.apply(t, 1e-5, 2), (x,))
    assert torch.autograd.gradcheck(lambda t: _RMSNormFn.apply(t, 1e-5, 1), (x,))
    gu = torch.randn(3, 4, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_SwiGLUFn.apply, (gu,))
    qkv = torch.randn(2, 5, 3, 2, 4, dtype=torch.float64, requires_grad=True)
    cos = torch.rand(5, 1, 1, 2, dtype=torch.float64)
    sin = torch.rand(5, 1, 1, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: _RopeQKVFn.apply(t, cos, sin), (qkv,))


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 3), st.integers(2, 7), st.integers(1, 3), st.booleans())
def test_fast_paths_match_composite(b, length, heads, grad):
    torch.manual_seed(b * 100 + length * 10 + heads)
    hd = 4
    x = torch.randn(b, length, heads * hd)
    ref = x.double()
    for dim in (2, 1):
        want = ref * torch.rsqrt(ref.square().mean(dim, keepdim=True) + 1e-5)
        with torch.set_grad_enabled(grad):
            got = rms_norm(x.clone().requires_grad_(grad), 1e-5, dim=dim)
            fused = add_rms_norm(x, torch.zeros_like(x), 1e-5, dim=dim)
        assert torch.allclose(got.double(), want, atol=1e-5)
        assert torch.allclose(fused.double(), want, atol=1e-5)
    gu = torch.randn(b, length, 2 * hd)
    gate, up = gu.double().chunk(2, -1)
    with torch.set_grad_enabled(grad):
        got = swiglu(gu.requires_grad_(grad))
    assert torch.allclose(got.double(), F.silu(gate) * up, atol=1e-6)
    xin = torch.randn(b, length, hd)
    for inter in (hd, SPLIT_MAX_WIDTH + 1):  # the split kernel (no graph), then _SwiGLUFn
        proj = CastedLinear(hd, 2 * inter)
        gate, up = F.linear(xin.double(), proj.weight.double()).chunk(2, -1)
        with torch.set_grad_enabled(grad):
            got = gated(xin, proj)
        assert torch.allclose(got.double(), F.silu(gate) * up, atol=1e-5)
    cos, sin = RotaryEmbedding(hd, length)()
    qkv = torch.randn(b, length, 3, heads, hd)
    want_qk = apply_rope(qkv[:, :, :2].double(), cos.double(), sin.double())
    with torch.set_grad_enabled(grad):
        got = rope_qkv(qkv.clone().requires_grad_(grad), cos, sin)
    assert torch.allclose(got[:, :, :2].double(), want_qk, atol=1e-5)
    assert torch.equal(got[:, :, 2], qkv[:, :, 2])


def test_fused_gradients_match_composite_fp32():
    torch.manual_seed(3)
    x = torch.randn(4, 9, 16, requires_grad=True)
    g = torch.randn(4, 9, 16)
    (rms_norm(x, 1e-5, dim=1) * g).sum().backward()
    fused = x.grad.clone()
    x.grad = None
    xd = x.double()
    ((xd * torch.rsqrt(xd.square().mean(1, keepdim=True) + 1e-5)) * g.double()).sum().backward()
    assert torch.allclose(fused.double(), x.grad.double(), atol=1e-5)
