"""`generator_source`: a seeded, offline `trmkit.task.Source` from one example-making function.

    def make(rng, options):                  # -> one Example
        grid = rng.integers(0, 2, size=(options["side"], options["side"]))
        return Example(grid, step(grid))

    source = generator_source(make, count=2000, test_count=200,
                              options={"side": (12, "rows and columns")})

The source makes ``count`` training and ``test_count`` test puzzles (``--option count=N``,
``--option test_count=N`` and each extra int option override the defaults), skips an example
whose input grid it has made before, so the test split never repeats a training puzzle, and
records the parameters' hash as the dataset's provenance. Everything is drawn from
``numpy.random.default_rng(--seed)``, so the same seed gives the same puzzles.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping

import numpy as np

from trmkit.errors import SourceError
from trmkit.grids.csvsource import MAX_GENERATED, parse_int_option
from trmkit.task import Example, RawData, RawPuzzle, Source, SourceRequest

ExampleMaker = Callable[[np.random.Generator, Mapping[str, int]], Example]
"""(rng, int options) -> one `trmkit.task.Example` (input grid, solution grid)."""


def generator_source(
    make: ExampleMaker,
    *,
    count: int = 1000,
    test_count: int = 100,
    options: Mapping[str, tuple[int, str]] | None = None,
    name: str = "generate",
    description: str = "seeded generator (offline, deterministic for --seed)",
) -> Source:
    """A ``kind="generator"`` source calling ``make(rng, options)`` once per puzzle.

    ``options`` maps extra ``--option`` names to ``(default, help)``; their int values reach
    ``make`` with ``count`` and ``test_count``. Puzzles are named ``train-000000``,
    ``test-000000``, ... . A generator that cannot find enough distinct inputs after
    20 attempts per puzzle asked for is refused with a SourceError.
    """
    extra = dict(options or {})
    for key in ("count", "test_count"):
        if key in extra:
            raise ValueError(f"generator_source: option {key!r} is built in; pass {key}= instead")
    defaults = {"count": count, "test_count": test_count, **{k: v[0] for k, v in extra.items()}}
    maker = getattr(make, "__qualname__", type(make).__name__)
    most = {"count": MAX_GENERATED, "test_count": MAX_GENERATED}

    def load(request: SourceRequest) -> RawData:
        values = {
            key: parse_int_option(request.options, key, default, hi=most.get(key))
            for key, default in defaults.items()
        }
        rng = np.random.default_rng(request.seed)
        seen: set[bytes] = set()
        puzzles: list[RawPuzzle] = []
        for split, key in (("train", "count"), ("test", "test_count")):
            wanted, made, tries = values[key], 0, 0
            while made < wanted:
                if tries >= 20 * wanted:
                    raise SourceError(
                        f"generator {name!r} made only {made} distinct {split} puzzles of the "
                        f"{wanted} asked for in {tries} tries (it repeats itself); ask for fewer "
                        f"with --option {key}=N"
                    )
                tries += 1
                example = make(rng, values)
                if not isinstance(example, Example):
                    raise TypeError(
                        f"generator {maker} returned {type(example).__name__}; it must return "
                        f"a trmkit.task.Example(input_grid, output_grid)"
                    )
                grid = np.ascontiguousarray(example.input)
                key_bytes = f"{grid.shape}{grid.dtype}".encode() + grid.tobytes()
                if key_bytes in seen:
                    continue
                seen.add(key_bytes)
                meta = {"source": name}
                puzzles.append(RawPuzzle.single(f"{split}-{made:06d}", example, split, meta))
                made += 1
        params = {"generator": maker, "seed": request.seed, **values}
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        return RawData(puzzles, {name: digest}, f"generated: {params}")

    help_texts = {
        "count": f"training puzzles (default {count})",
        "test_count": f"test puzzles, none equal to a training one (default {test_count})",
        **{key: f"{text} (default {default})" for key, (default, text) in extra.items()},
    }
    return Source(name, description, load, kind="generator", options=help_texts)
