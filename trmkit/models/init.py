"""JAX-style truncated-normal initialisation, as the official code's `trunc_normal_init_`.

``torch.nn.init.trunc_normal_`` truncates at absolute bounds and does not correct the
standard deviation; the reference draws from a unit normal truncated at +-2 and rescales so
the *truncated* distribution has exactly the requested std. We reproduce that rule.
"""

from __future__ import annotations

import math

import torch

# std of a standard normal truncated to [-2, 2]
_TRUNC2_STD = 0.87962566103423978


@torch.no_grad()
def trunc_normal_(
    tensor: torch.Tensor, std: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill ``tensor`` in place with a normal truncated at +-2 sigmas, std exactly ``std``
    (drawn from ``generator``, default torch's global RNG).

    Inverse-CDF sampling: u ~ U[erf(-2/sqrt2), erf(2/sqrt2)], x = sqrt2 * erfinv(u), then
    scaled by std / (std of the truncated unit normal) and clipped for rounding safety.
    """
    if std == 0:
        return tensor.zero_()
    bound = 2.0
    scale = std / _TRUNC2_STD
    lo = math.erf(-bound / math.sqrt(2))
    hi = math.erf(bound / math.sqrt(2))
    work = (
        tensor
        if tensor.dtype in (torch.float32, torch.float64)
        else torch.empty_like(tensor, dtype=torch.float32)
    )
    work.uniform_(lo, hi, generator=generator)
    work.erfinv_().mul_(math.sqrt(2) * scale).clamp_(-bound * scale, bound * scale)
    if work is not tensor:
        tensor.copy_(work)
    return tensor


def lecun_std(fan_in: int) -> float:
    """LeCun-normal std used by every linear layer of the reference: 1/sqrt(fan_in)."""
    return 1.0 / math.sqrt(fan_in)
