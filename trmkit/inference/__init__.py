"""Test-time compute: deeper, wider and better-chosen answers from the same weights.

`InferencePolicy` says how (depth, halting, samples, noise, selection); `record` runs the
trajectories of a batch in one forward and `decide` picks each row's answer; `sweep` maps
accuracy against compute. `trmkit.evaluation` and `trmkit.solve` are built on it
(docs/test-time-compute.md).

The package imports no torch until an engine name is used, so commands can parse the
options (`trmkit.inference.policy`) without loading a model stack.
"""

from __future__ import annotations

from typing import Any

from trmkit.inference.policy import HaltPolicy, InferencePolicy, SelectPolicy

_ENGINE = ("Decision", "Record", "RowBatch", "check_policy", "decide", "record")


def __getattr__(name: str) -> Any:
    if name in _ENGINE:
        from trmkit.inference import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'trmkit.inference' has no attribute {name!r}")


__all__ = ["HaltPolicy", "InferencePolicy", "SelectPolicy", *_ENGINE]
