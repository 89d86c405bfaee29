"""trmkit: Tiny Recursive Models and their relatives on grid puzzles."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(path, *, weights="ema", device="cpu"):  # noqa: ANN001, ANN201 - lazy re-export keeps `import trmkit` light
    """Load a checkpoint bundle (safetensors + manifest.json) without unpickling anything:
    ``trmkit.checkpoint.load_bundle`` (``weights`` "ema" or "raw", ``device`` a torch device
    this machine has, e.g. "cpu")."""
    from trmkit.checkpoint import load_bundle

    return load_bundle(path, weights=weights, device=device)
