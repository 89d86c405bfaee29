"""toy-flip: a tiny third-party task used by trmkit's tests.

Grids of 2..4 x 2..4 cells with colours 0..3; the output is the input mirrored left-right.
Tokens: PAD 0, EOS 1 (the row under and the column right of the grid, as ARC does), colour
c -> c + 2, on a 5x5 canvas (seq_len 25, vocab 6). Augmentation: an optional up-down flip
(which commutes with the left-right mirror, so every variant is still a valid puzzle) and
a colour permutation, recorded as ``[flip, p0, p1, p2, p3]``.

Only the plain per-grid contract is implemented by `ToyCodec`/`ToyAugmenter`; the
`FastToyCodec`/`FastToyAugmenter` subclasses add the optional batched methods so tests can
check that the builder's fast path gives byte-identical stores.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from trmkit.errors import SourceError
from trmkit.hookspecs import hookimpl
from trmkit.task import BuildDefaults, Example, RawData, RawPuzzle, Source, SourceRequest, Task

SIDE = 5
COLOURS = 4
PAD, EOS = 0, 1


class ToyCodec:
    seq_len = SIDE * SIDE
    vocab_size = COLOURS + 2
    pad_id = PAD
    ignore_label_id = PAD

    def encode(self, grid):
        grid = np.asarray(grid)
        h, w = grid.shape
        if not (1 <= h < SIDE and 1 <= w < SIDE) or grid.min() < 0 or grid.max() >= COLOURS:
            raise ValueError(f"toy grids are 1..4 x 1..4 with colours 0..3, got {grid.shape}")
        canvas = np.zeros((SIDE, SIDE), dtype=np.uint8)
        canvas[:h, :w] = grid + 2
        canvas[h, :w] = EOS
        canvas[:h, w] = EOS
        return canvas.reshape(-1)

    def decode(self, tokens):
        canvas = np.asarray(tokens).reshape(SIDE, SIDE).astype(np.int64)
        colour = canvas >= 2
        h = int(np.argmin(colour[:, 0])) if not colour[:, 0].all() else SIDE
        w = int(np.argmin(colour[0])) if not colour[0].all() else SIDE
        return canvas[:h, :w] - 2

    def encode_puzzle(self, examples, *, split, rng):
        inputs = np.stack([self.encode(e.input) for e in examples])
        labels = np.stack([self.encode(e.output) for e in examples])
        return inputs, labels


class FastToyCodec(ToyCodec):
    def encode_batch(self, grids):
        grids = np.asarray(grids)
        n, h, w = grids.shape
        canvas = np.zeros((n, SIDE, SIDE), dtype=np.uint8)
        canvas[:, :h, :w] = grids + 2
        canvas[:, h, :w] = EOS
        canvas[:, :h, w] = EOS
        return canvas.reshape(n, -1)


IDENTITY = np.array([0, 0, 1, 2, 3], dtype=np.int64)


class ToyAugmenter:
    transform_size = 1 + COLOURS

    def identity(self):
        return IDENTITY.copy()

    def draw(self, puzzle, num_aug, rng):
        seen = {tuple(IDENTITY)}
        out = []
        for _ in range(5 * num_aug):
            if len(out) == num_aug:
                break
            t = np.concatenate([[rng.integers(2)], rng.permutation(COLOURS)]).astype(np.int64)
            if tuple(t) not in seen:
                seen.add(tuple(t))
                out.append(t)
        return out

    def apply(self, transform, grid):
        grid = np.asarray(grid)
        if transform[0]:
            grid = grid[::-1]
        return np.asarray(transform[1:])[grid]

    def invert(self, transform, grid):
        grid = np.argsort(np.asarray(transform[1:]))[np.asarray(grid)]
        return grid[::-1] if transform[0] else grid


class FastToyAugmenter(ToyAugmenter):
    def apply_batch(self, transforms, grids):
        transforms, grids = np.asarray(transforms), np.asarray(grids)
        flipped = np.where(transforms[:, :1, None].astype(bool), grids[:, ::-1], grids)
        n = len(grids)
        out = np.take_along_axis(transforms[:, 1:], flipped.reshape(n, -1), axis=1)
        return out.reshape(grids.shape)


class _Run:
    def __init__(self):
        self.right = self.total = 0

    def update(self, batch):
        keep = batch.puzzle_index >= 0
        mask = batch.labels[keep] != PAD
        same = (batch.predictions[keep] == batch.labels[keep]) | ~mask
        self.right += int(same.all(axis=1).sum())
        self.total += int(keep.sum())

    def finish(self):
        return {"exact_accuracy": self.right / max(1, self.total)}


class ToyEvaluator:
    def start(self, context):
        return _Run()


def _random_grid(rng):
    h, w = rng.integers(2, SIDE, size=2)
    return rng.integers(0, COLOURS, size=(h, w))


def generate(request: SourceRequest) -> RawData:
    """``count`` puzzles: i % 4 == 3 -> test only; i % 3 == 0 -> train and test; else train."""
    count = int(request.options.get("count", 12))
    examples = int(request.options.get("examples", 3))
    rng = np.random.default_rng(request.seed)
    puzzles = []
    for i in range(count):

        def pairs(n):
            return [Example(g, np.fliplr(g)) for g in (_random_grid(rng) for _ in range(n))]

        train = () if i % 4 == 3 else pairs(int(rng.integers(1, examples + 1)))
        test = pairs(1) if (i % 4 == 3 or i % 3 == 0) else ()
        puzzles.append(RawPuzzle(name=f"toy{i:03d}", train=train, test=test))
    params = json.dumps({"count": count, "examples": examples, "seed": request.seed})
    return RawData(puzzles, files={"generator": hashlib.sha256(params.encode()).hexdigest()})


def read_file(request: SourceRequest) -> RawData:
    """A JSON file ``{"puzzles": [{"name", "train": [{"input", "output"}], "test": [...]}]}``."""
    path = Path(request.path)
    try:
        text = path.read_text()
        data = json.loads(text)
        puzzles = [
            RawPuzzle(
                name=p["name"],
                train=[Example(e["input"], e["output"]) for e in p.get("train", [])],
                test=[Example(e["input"], e["output"]) for e in p.get("test", [])],
            )
            for p in data["puzzles"]
        ]
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"{path}: not a toy puzzle file ({type(exc).__name__}: {exc})") from None
    return RawData(puzzles, files={path.name: hashlib.sha256(text.encode()).hexdigest()})


def make_task(fast: bool = False, **defaults) -> Task:
    return Task(
        name="toy-flip",
        description="mirror small coloured grids left-right (trmkit test plugin)",
        codec=FastToyCodec() if fast else ToyCodec(),
        augmenter=FastToyAugmenter() if fast else ToyAugmenter(),
        evaluator=ToyEvaluator(),
        sources={
            "gen": Source(
                "gen",
                "seeded random grids",
                generate,
                kind="generator",
                options={"count": "number of puzzles", "examples": "max train examples"},
            ),
            "file": Source("file", "a JSON puzzle file", read_file, kind="path"),
        },
        defaults=BuildDefaults(
            source="gen",
            num_aug=defaults.get("num_aug", 3),
            puzzle_ids=defaults.get("puzzle_ids", "per_variant"),
            augment_test=defaults.get("augment_test", False),
        ),
        path_source="file",
    )


@hookimpl
def register_tasks(register):
    register(make_task(), aliases=("toy",))
