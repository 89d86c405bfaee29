"""Exact trainable-parameter counts of the paper's models (reference section 2.9)."""

import pytest
import torch

from trmkit.config import load_recipe
from trmkit.models import build_model, count_parameters

RECIPES = [
    ("sudoku-extreme-mlp", 81, 11, 5_028_866),
    ("sudoku-extreme-att", 81, 11, 6_828_034),
    ("maze-hard", 900, 6, 6_822_914),
    ("arc-agi-1", 900, 12, 6_829_058),
    ("arc-agi-2", 900, 12, 6_829_058),
]


@pytest.mark.parametrize(("recipe", "seq_len", "vocab", "expected"), RECIPES)
def test_recipe_parameter_counts(recipe, seq_len, vocab, expected):
    r = load_recipe(recipe)
    cfg = r.model_config(seq_len=seq_len, vocab_size=vocab, num_puzzle_identifiers=3)
    with torch.device("meta"):
        model = build_model(r.model.name, cfg)
    assert count_parameters(model) == expected
    # the puzzle table is a buffer, never a trainable parameter
    assert model.puzzle_emb.weights.shape == (3, 512)
    assert all(p is not model.puzzle_emb.weights for p in model.parameters())


def test_other_counts():
    with torch.device("meta"):
        hrm = build_model("hrm", {"seq_len": 81, "vocab_size": 11})
        hrm_arc = build_model("hrm", {"seq_len": 900, "vocab_size": 12})
        mlp_maze = build_model("trm", {"seq_len": 900, "vocab_size": 6, "mixer": "mlp_t"})
        four = build_model("trm", {"mixer": "mlp_t", "pos_encodings": "none", "l_layers": 4})
    assert count_parameters(hrm) == 27_275_266
    assert count_parameters(hrm_arc) == 27_276_290
    assert count_parameters(mlp_maze) == 18_795_522
    assert count_parameters(four) == 10_045_442
