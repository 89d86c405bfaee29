"""trmkit: Tiny Recursive Models and their relatives on grid puzzles."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(path):  # noqa: ANN001 - re-exported lazily to keep `import trmkit` light
    """Load a checkpoint bundle (safetensors + manifest.json) without unpickling anything."""
    from trmkit.checkpoint import load_bundle

    return load_bundle(path)
