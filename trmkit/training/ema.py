"""EMA of the trainable parameters, as the official code: s <- rate * s + (1 - rate) * p.

Buffers (puzzle table, initial latents) are not averaged. For evaluation the shadow weights
are swapped into the live model in place (`swapped`) or copied (`copy_to`): no deep copy of
the whole training state, as the official code makes for every evaluation (docs/engine.md,
deviation 6).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

_PREFIXES = ("module.", "_orig_mod.")


def _clean(name: str) -> str:
    while name.startswith(_PREFIXES):
        name = name.split(".", 1)[1]
    return name.replace("._orig_mod.", ".")


def _params(model: nn.Module) -> dict[str, nn.Parameter]:
    return {_clean(n): p for n, p in model.named_parameters() if p.requires_grad}


class EMA:
    def __init__(self, model: nn.Module, rate: float = 0.999) -> None:
        self.rate = rate
        self.shadow = {n: p.detach().clone() for n, p in _params(model).items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        params = _params(model)
        live = [params[name].detach() for name in self.shadow]
        torch._foreach_lerp_(list(self.shadow.values()), live, 1.0 - self.rate)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        params = _params(model)
        for name, value in self.shadow.items():
            params[name].copy_(value)

    @contextlib.contextmanager
    def swapped(self, model: nn.Module) -> Iterator[nn.Module]:
        """Inside the block the model holds the EMA weights; the live ones come back after."""
        params = _params(model)

        @torch.no_grad()
        def swap() -> None:  # the shadow and the live weights trade places
            for name, value in self.shadow.items():
                params[name].data, self.shadow[name] = value, params[name].data

        swap()
        try:
            yield model
        finally:
            swap()

    def state_dict(self) -> dict:
        return {"rate": self.rate, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        self.rate = float(state["rate"])
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state does not match the model: {sorted(missing)[:3]}")
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
