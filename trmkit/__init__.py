"""trmkit: Tiny Recursive Models and their relatives on grid puzzles.

The Python API (docs/python-api.md) is `trmkit.load` and `trmkit.train`; both import
`trmkit.api` inside the function, so ``import trmkit`` stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "train"]


def load(path, *, weights="ema", device="cpu"):  # noqa: ANN001, ANN201 - lazy re-export keeps `import trmkit` light
    """A trained model (`trmkit.api.LoadedModel`) from a bundle or run directory, read
    without unpickling anything: ``.solve(puzzles, ...)``, ``.evaluate(...)``, ``.task``,
    ``.manifest``, ``.config``, ``.model`` (the ``torch.nn.Module``). ``weights`` "ema" or
    "raw", ``device`` a torch device this machine has, e.g. "cpu"."""
    from trmkit.api import load as load_model

    return load_model(path, weights=weights, device=device)


def train(recipe, **options):  # noqa: ANN001, ANN003, ANN201 - lazy re-export
    """Train a recipe as `trmkit train` does and return the run (`trmkit.api.Run`: its
    directory, final metrics, ``.load()``); the options are `trmkit.api.train`'s."""
    from trmkit.api import train as train_recipe

    return train_recipe(recipe, **options)
