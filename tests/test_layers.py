"""Primitive layers: truncated-normal init, RMS norm, RoPE, SwiGLU widths, MLP-t mixing."""

import math

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from trmkit.models.blocks import MLP_T, SWIGLU, Block, BlockDims
from trmkit.models.init import trunc_normal_
from trmkit.models.layers import (
    RotaryEmbedding,
    SwiGLU,
    TokenSwiGLU,
    apply_rope,
    rms_norm,
    rotate_half,
    swiglu_width,
)


def test_trunc_normal_has_exact_std_and_bounds():
    torch.manual_seed(0)
    x = trunc_normal_(torch.empty(400_000), std=0.5)
    assert abs(x.std().item() - 0.5) < 0.005
    # bounds are +-2 sigma of the *untruncated* scaled normal: 2 * 0.5 / 0.8796
    assert x.abs().max().item() <= 2 * 0.5 / 0.87962566 + 1e-6
    assert x.abs().max().item() > 1.0  # not the torch default absolute [-2, 2] on std
    assert torch.count_nonzero(trunc_normal_(torch.ones(10), std=0.0)) == 0


def test_swiglu_widths_match_reference_table():
    assert swiglu_width(512, 4) == 1536
    assert swiglu_width(97, 4) == 512
    assert swiglu_width(916, 4) == 2560
    assert sum(p.numel() for p in SwiGLU(512, 4).parameters()) == 2_359_296
    assert sum(p.numel() for p in TokenSwiGLU(97, 4).parameters()) == 148_992


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(2, 16), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_rms_norm_unit_rms_on_chosen_axis(b, length, d, seed):
    # seeded from hypothesis (reproducible); the mean square after the norm is exactly
    # ms / (ms + eps), which is 1 only up to eps / ms (a row of two small values: ~1e-3)
    x = torch.randn(b, length, d * 2, generator=torch.Generator().manual_seed(seed)) * 3 + 1
    ms = x.square().mean(-1)
    y = rms_norm(x, 1e-5)
    assert torch.allclose(y.square().mean(-1), ms / (ms + 1e-5), atol=1e-5)
    ms1 = x.square().mean(1)
    z = rms_norm(x, 1e-5, dim=1)
    assert torch.allclose(z.square().mean(1), ms1 / (ms1 + 1e-5), atol=1e-5)
    manual = x / torch.sqrt(x.square().mean(1, keepdim=True) + 1e-5)
    assert torch.allclose(z, manual, atol=1e-6)


def test_rotate_half_and_rope_convention():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rotate_half(x).tolist() == [-3.0, -4.0, 1.0, 2.0]
    rope = RotaryEmbedding(head_dim=4, max_positions=3, theta=10000.0)
    cos, sin = rope()
    # position p, frequency i: angle p * theta^(-2i/4), duplicated over the two halves
    assert torch.allclose(cos[2], torch.tensor([math.cos(2), math.cos(0.02)] * 2), atol=1e-6)
    q = torch.randn(1, 3, 1, 4)
    out = apply_rope(q, cos, sin)
    # pair (i, i+2) rotated by the angle of frequency i
    a = 2.0
    x0, x2 = q[0, 2, 0, 0], q[0, 2, 0, 2]
    assert torch.allclose(out[0, 2, 0, 0], x0 * math.cos(a) - x2 * math.sin(a), atol=1e-5)
    assert torch.allclose(out[0, 2, 0, 2], x2 * math.cos(a) + x0 * math.sin(a), atol=1e-5)
    assert torch.allclose(out[0, 0], q[0, 0])  # position 0 is not rotated
    assert torch.allclose(out.norm(dim=-1), q.norm(dim=-1), atol=1e-5)


def test_mlp_t_equals_transposed_swiglu_with_rms_over_sequence():
    torch.manual_seed(1)
    dims = BlockDims(hidden=8, length=5, expansion=4.0, heads=2, eps=1e-5, prefix_len=0)
    block = Block(MLP_T, SWIGLU, dims)
    h = torch.randn(2, 5, 8)
    # reference formulation: transpose to [B, D, L], SwiGLU over L, RMS over L, transpose back
    ht = h.transpose(1, 2)
    w_gu, w_d = block.mlp_t.gate_up_proj.weight, block.mlp_t.down_proj.weight
    gate, up = F.linear(ht, w_gu).chunk(2, dim=-1)
    ht = ht + F.linear(F.silu(gate) * up, w_d)
    ht = ht / torch.sqrt(ht.square().mean(-1, keepdim=True) + 1e-5)
    ref = ht.transpose(1, 2)
    ref = rms_norm(ref + block.mlp(ref), 1e-5)
    assert torch.allclose(block(h, None), ref, atol=1e-5)
