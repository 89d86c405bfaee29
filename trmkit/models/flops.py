"""FLOPs of one supervision step, counted from the architecture (matmuls only).

A linear map in -> out on N tokens costs 2*N*in*out; attention adds 2*B*H*L*L*hd for the
scores and again for the weighted sum. Element-wise work (norms, SiLU, RoPE) is left out,
so "achieved FLOP/s" compares the model's matmul work with a peak matmul rate. Backward of
the calls inside the gradient graph costs twice their forward (input and weight grads).
"""

from __future__ import annotations

from trmkit.errors import ConfigError
from trmkit.models.core import CoreConfig
from trmkit.models.layers import swiglu_width
from trmkit.models.protocol import StepFlops


def block_flops(cfg: CoreConfig, batch: int, mixer: str = "attention") -> int:
    """Forward FLOPs of one block on a [batch, L, D] activation."""
    length, d = cfg.total_len, cfg.hidden_size
    tokens = batch * length
    inter = swiglu_width(d, cfg.expansion)
    flops = 6 * tokens * d * inter  # channel SwiGLU: gate_up (2I) + down
    if mixer == "mlp_t":
        inter_t = swiglu_width(length, cfg.expansion)
        flops += 6 * batch * d * length * inter_t
    else:
        heads = cfg.num_heads
        hd = d // heads
        flops += 2 * tokens * d * 3 * heads * hd + 2 * tokens * heads * hd * d
        flops += 4 * batch * heads * length * length * hd
    return flops


def head_flops(cfg: CoreConfig, batch: int) -> int:
    return 2 * batch * cfg.seq_len * cfg.hidden_size * cfg.vocab_size + 4 * batch * cfg.hidden_size


def _calls(cfg: CoreConfig) -> tuple[int, int, int, str]:
    """(layers per call of the no-grad part, no-grad calls, grad calls, mixer) per model."""
    from trmkit.models.hrm import HRMConfig
    from trmkit.models.transformer import TransformerConfig
    from trmkit.models.trm import TRMConfig

    if isinstance(cfg, HRMConfig):
        raise TypeError("HRM is counted by hrm_layer_calls")
    if isinstance(cfg, TransformerConfig):
        return cfg.num_layers, 0, 1, "attention"
    if not isinstance(cfg, TRMConfig):
        raise ConfigError(
            f"no FLOP count for a {type(cfg).__name__}: its model implements step_flops itself "
            "(the model contract, docs/engine.md)"
        )
    per_cycle = cfg.l_cycles + 1
    return cfg.l_layers, (cfg.h_cycles - 1) * per_cycle, per_cycle, cfg.mixer


def step_flops(cfg: CoreConfig, batch: int) -> StepFlops:
    """FLOPs of one supervision step for ``batch`` sequences of a built-in architecture."""
    from trmkit.models.hrm import HRMConfig

    if isinstance(cfg, HRMConfig):
        block = block_flops(cfg, batch, cfg.mixer)
        l_calls = cfg.h_cycles * cfg.l_cycles
        h_calls = cfg.h_cycles
        total_layers = l_calls * cfg.l_layers + h_calls * cfg.h_layers
        grad_layers = cfg.l_layers + cfg.h_layers
        fwd = total_layers * block + head_flops(cfg, batch)
        bwd = 2 * (grad_layers * block + head_flops(cfg, batch))
    else:
        layers, nograd, grad, mixer = _calls(cfg)
        block = block_flops(cfg, batch, mixer)
        fwd = (nograd + grad) * layers * block + head_flops(cfg, batch)
        bwd = 2 * (grad * layers * block + head_flops(cfg, batch))
    extra = fwd if cfg.act_continue else 0
    return StepFlops(forward=fwd, backward=bwd, extra_forward=extra)
