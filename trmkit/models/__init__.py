"""The recursive-reasoning engine: TRM and relatives behind one ACT wrapper.

model = build_model("trm", cfg)         # cfg: the registered attrs config (or a dict)
carry = model.initial_carry(batch)
carry, loss, metrics, outputs, all_halted = model(carry, batch)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch

from trmkit.errors import ConfigError


def make_config(name: str, fields: Mapping[str, Any] | Any) -> Any:
    """The registered config class of model ``name`` built from a dict (unknown keys refused)."""
    from trmkit import plugins

    spec = plugins.get_model(name)
    if attrs.has(type(fields)):
        return fields
    allowed = {f.name for f in attrs.fields(spec.config_cls)}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ConfigError(
            f"model.{unknown[0]}: not a field of model {name!r}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return spec.config_cls(**dict(fields))


def model_config_from_dict(name: str, fields: Mapping[str, Any]) -> Any:
    """Alias of `make_config` for checkpoint manifests (a plain dict of config fields)."""
    return make_config(name, fields)


def model_config_to_dict(config: Any) -> dict[str, Any]:
    """A model config as a JSON/TOML-friendly dict (inverse of `model_config_from_dict`)."""
    return attrs.asdict(config)


def build_model(name: str, config: Any) -> torch.nn.Module:
    """Instantiate a registered architecture (an `ACTModel`) from its config or a dict."""
    from trmkit import plugins

    spec = plugins.get_model(name)
    return spec.factory(make_config(name, config))


def compile_model(model: torch.nn.Module, **options: Any) -> torch.nn.Module:
    """torch.compile the shared networks in place (not the ACT bookkeeping, which has
    data-dependent Python control flow). Parameter names and state dicts are unchanged."""
    core = model.core if hasattr(model, "core") else model
    for name in ("net", "h_net", "l_net"):
        net = getattr(core, name, None)
        if net is not None:
            net.forward = torch.compile(net.forward, **options)
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters (the puzzle table and init latents are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "build_model",
    "compile_model",
    "count_parameters",
    "make_config",
    "model_config_from_dict",
    "model_config_to_dict",
]
