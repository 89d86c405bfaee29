"""Recipe loading, --set overrides, errors and TOML round trips."""

import pytest
import tomllib
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trmkit.cli import cli
from trmkit.config import load_recipe, recipe_from_dict, recipe_to_toml, save_recipe
from trmkit.errors import ConfigError, UnknownNameError

PAPER = ["sudoku-extreme-mlp", "sudoku-extreme-att", "maze-hard", "arc-agi-1", "arc-agi-2"]


@pytest.mark.parametrize("name", PAPER)
def test_paper_recipes_round_trip(name, tmp_path):
    recipe = load_recipe(name)
    assert recipe.expected and recipe.hardware and recipe.description
    path = save_recipe(recipe, tmp_path / "r.toml")
    assert load_recipe(str(path)) == recipe


def test_paper_hyperparameters():
    mlp = load_recipe("sudoku-extreme-mlp")
    assert mlp.model.fields["mixer"] == "mlp_t" and mlp.model.fields["pos_encodings"] == "none"
    assert (mlp.optim.lr, mlp.optim.weight_decay, mlp.optim.global_batch_size) == (1e-4, 1.0, 768)
    arc = load_recipe("arc-agi-1")
    assert arc.model.fields["l_cycles"] == 4 and arc.optim.puzzle_emb_lr == 1e-2
    assert (arc.optim.weight_decay, arc.train.epochs) == (0.1, 100000)
    assert arc.train.eval_interval == 10000
    assert load_recipe("maze-hard").model.fields["l_cycles"] == 4


def test_overrides_are_typed():
    r = load_recipe(
        "sudoku-extreme-att",
        [
            "model.hidden_size=128",
            "optim.lr=3e-4",
            "optim.ema=false",
            "train.max_steps=10",
            "data.source=csv",
            "data.options.path=x.csv",
        ],
    )
    assert r.model.fields["hidden_size"] == 128 and r.optim.lr == 3e-4
    assert r.optim.ema is False and r.train.max_steps == 10
    assert r.data.source == "csv" and r.data.options == {"path": "x.csv"}
    cfg = r.model_config(seq_len=81, vocab_size=11)
    assert cfg.hidden_size == 128


@pytest.mark.parametrize(
    ("assignment", "needle"),
    [
        ("model.hiden_size=3", "model.hidden_size"),
        ("optim.lr=fast", "optim.lr"),
        ("train.epochs=2.5", "train.epochs"),
        ("bogus.x=1", "model.<field>"),
        ("optim.lr", "key=value"),
    ],
)
def test_bad_overrides_name_key_and_allowed(assignment, needle):
    with pytest.raises(ConfigError, match=None) as info:
        load_recipe("maze-hard", [assignment])
    assert needle in str(info.value)


def test_unknown_keys_in_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[optim]\nlearning_rate = 1.0\n")
    with pytest.raises(ConfigError, match="optim.learning_rate"):
        load_recipe(str(path))
    path.write_text('[model]\nname = "trm"\nwidth = 3\n')
    with pytest.raises(ConfigError, match="width"):
        load_recipe(str(path))
    with pytest.raises(UnknownNameError):
        load_recipe("no-such-recipe")


@settings(max_examples=20, deadline=None)
@given(st.text(max_size=30), st.floats(1e-6, 1.0), st.integers(1, 10**6), st.booleans())
@example("\x7f", 1.0, 1, False)  # TOML forbids a raw DEL in strings (found by hypothesis)
def test_toml_writer_round_trip(text, lr, steps, ema):
    recipe = load_recipe("sudoku-extreme-mlp", [f"optim.lr={lr!r}", f"train.max_steps={steps}"])
    recipe.description = text
    recipe.optim.ema = ema
    assert recipe_from_dict(tomllib.loads(recipe_to_toml(recipe))) == recipe


def test_model_command_prints_counts():
    result = CliRunner().invoke(cli, ["model", "--recipe", "sudoku-extreme-mlp"])
    assert result.exit_code == 0, result.output
    assert "trainable parameters: 5028866" in result.output.splitlines()
    assert "puzzle embedding table: 1 x 512" in result.output
    assert "FLOPs per supervision step" in result.output
    result = CliRunner().invoke(
        cli,
        [
            "model",
            "--recipe",
            "maze-hard",
            "--set",
            "model.seq_len=10",
            "--set",
            "model.vocab_size=4",
        ],
    )
    assert result.exit_code == 0 and "10 tokens" in result.output
    bad = CliRunner().invoke(cli, ["model", "--recipe", "maze-hard", "--set", "model.x=1"])
    assert bad.exit_code != 0 and "model.x" in bad.output and "Traceback" not in bad.output
