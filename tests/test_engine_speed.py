"""The no-graph fast paths of the layers (evaluation, training's no-grad cycles) compute the
same numbers as the graph paths: split SwiGLU projections bit for bit, the sequence-axis RMS
norm within fp32 rounding; state-dict keys are unchanged."""

from __future__ import annotations

import torch

from trmkit.models.layers import SwiGLU, TokenSwiGLU, rms_norm


def _both(module: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        fast = module(x)
    graph = module(x.clone().requires_grad_(True)).detach()
    return fast, graph


def test_split_swiglu_is_bit_identical_to_the_fused_projection():
    torch.manual_seed(0)
    mlp = SwiGLU(64, 4.0)
    x = torch.randn(8, 37, 64)
    fast, graph = _both(mlp, x)
    assert torch.equal(fast, graph)
    assert set(mlp.state_dict()) == {"gate_up_proj.weight", "down_proj.weight"}


def test_split_token_swiglu_is_bit_identical():
    torch.manual_seed(1)
    mixer = TokenSwiGLU(37, 4.0)
    x = torch.randn(4, 37, 64)
    fast, graph = _both(mixer, x)
    assert torch.equal(fast, graph)
    assert set(mixer.state_dict()) == {"gate_up_proj.weight", "down_proj.weight"}


def test_sequence_axis_rms_norm_matches_the_reference_formula():
    torch.manual_seed(2)
    x = torch.randn(8, 37, 64)
    ref = x * torch.rsqrt(x.double().square().mean(1, keepdim=True) + 1e-5).float()
    with torch.no_grad():
        fast = rms_norm(x, 1e-5, dim=1)
    graph = rms_norm(x.clone().requires_grad_(True), 1e-5, dim=1).detach()
    torch.testing.assert_close(fast, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(graph, ref, rtol=1e-6, atol=1e-6)
