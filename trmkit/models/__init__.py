"""The recursive-reasoning engine: TRM and relatives behind one ACT wrapper.

model = build_model("trm", cfg)         # cfg: the registered attrs config (or a dict)
carry = model.initial_carry(batch)
result = model(carry, batch)            # a StepResult: carry, loss, metrics, outputs, all_halted

Every registered architecture implements `trmkit.models.protocol.RecursiveModel`.

This package module imports no torch: the built-in plugin `trmkit.models.plugin` lives in
it and is loaded by commands that need no model (`trmkit tasks`).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from trmkit.config import make_model_config
from trmkit.errors import ConfigError, PluginError

if TYPE_CHECKING:
    import torch

    from trmkit.models.protocol import RecursiveModel

make_config = make_model_config
"""The registered config class of a model built from a dict (unknown keys refused)."""


_BUILT_AS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def model_name(model: Any) -> str:
    """The registered name `build_model` built ``model`` under (``trm``, ``eqr``, ...), which
    one-line errors name; the class name for a model built another way."""
    return _BUILT_AS.get(model, type(model).__name__)


def build_model(name: str, config: Any) -> Any:
    """Instantiate a registered architecture from its config or a dict.

    The result is checked against the model contract (`RecursiveModel`); a factory whose
    model lacks part of it is a PluginError naming the plugin that registered it. A config
    the factory refuses (e.g. a width its MLP cannot take) is one line naming the model.
    """
    from trmkit import plugins
    from trmkit.models.protocol import missing_members

    spec = plugins.get_model(name)
    try:
        model = spec.factory(make_config(name, config))
    except ConfigError as exc:
        raise ConfigError(f"{exc} (model {name!r})") from None
    missing = missing_members(model)
    if missing:
        raise PluginError(
            f"plugin {spec.plugin!r}: model {name!r} does not implement the model contract "
            f"(trmkit.models.protocol.RecursiveModel, docs/engine.md); missing: "
            f"{', '.join(missing)}"
        )
    _BUILT_AS[model] = name
    return model


def compile_model(model: RecursiveModel, **options: Any) -> RecursiveModel:
    """torch.compile the model's `compile_targets` in place (the shared networks, not the ACT
    bookkeeping, which has data-dependent Python control flow). Parameter names and state
    dicts are unchanged."""
    import torch

    for net in model.compile_targets():
        net.forward = torch.compile(net.forward, **options)
    return model


def count_parameters(model: torch.nn.Module | RecursiveModel) -> int:
    """Trainable parameters (the puzzle table and init latents are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def __getattr__(name: str) -> Any:
    if name in ("RecursiveModel", "StepFlops", "StepResult"):
        from trmkit.models import protocol

        return getattr(protocol, name)
    raise AttributeError(f"module 'trmkit.models' has no attribute {name!r}")


__all__ = [
    "RecursiveModel",
    "StepFlops",
    "StepResult",
    "build_model",
    "compile_model",
    "count_parameters",
    "make_config",
    "model_name",
]
