"""TRM-CGAR (docs/methods.md, "TRM-CGAR"): the 0.7^(t-1) step weights and the (T, n) depth
curriculum, pinned by hand; its recipes; FLOPs weighed by the schedule; training, exact
resume across a curriculum boundary, eval and solve; a curriculum refused on a model without
T and n."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner
from tiny_training import TINY_RECIPE, build_tiny_data, one_thread

from trmkit import load, plugins
from trmkit.batch import IGNORE_LABEL_ID
from trmkit.cli import cli
from trmkit.config import load_recipe
from trmkit.models import build_model
from trmkit.models.losses import StepView
from trmkit.training.preflight import Machine, estimate
from trmkit_methods.cgar import CGARStepLoss, curriculum

DEEP = {"h_cycles": [[0.0, 1], [0.3, 2], [0.6, 3]], "l_cycles": [[0.0, 2], [0.3, 4], [0.6, 6]]}
TINY_CGAR = TINY_RECIPE.replace(
    "h_cycles = 2\nl_cycles = 2\n", 'h_cycles = 3\nl_cycles = 6\nstep_loss = "cgar"\n'
) + (
    "\n[model.schedule]\nh_cycles = [[0.0, 1], [0.3, 2], [0.6, 3]]\n"
    "l_cycles = [[0.0, 2], [0.3, 4], [0.6, 6]]\n"
)
"""tiny_training's recipe (8 steps) at (T, n) = (3, 6) with CGAR: steps 1-3 at p < 0.3 run
(1, 2), steps 4-5 (p = 3/8, 4/8) run (2, 4), steps 6-8 run (3, 6)."""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    before = one_thread()
    yield build_tiny_data(tmp_path_factory.mktemp("data") / "store")
    torch.set_num_threads(before)


def _view(steps, max_steps):
    steps = torch.tensor(steps)
    return StepView({}, steps, max_steps, None, None, None, {})


def test_step_weights_by_hand():
    w = CGARStepLoss().weight(_view([1, 2, 3, 2], 3))
    assert w.tolist() == pytest.approx([1 / 2.19, 0.7 / 2.19, 0.49 / 2.19, 0.7 / 2.19], abs=1e-15)
    assert CGARStepLoss(decay=0.5).weight(_view([1, 2], 2)).tolist() == [2 / 3, 1 / 3]
    registered = plugins.component("step_loss", "cgar", "model.step_loss").component
    assert registered == CGARStepLoss(decay=0.7, halt_loss=True, continue_loss=True)


def _nll_and_bce(logits, q_halt, labels):
    """Per row: the mean over valid tokens of -log stablemax(label), and the BCE of q_halt
    against "every valid token right", each by its formula."""
    x = logits.detach().double()
    s = torch.where(x >= 0, x + 1.0, 1.0 / (1.0 - x))
    nll, bce = [], []
    for row in range(labels.shape[0]):
        valid = [i for i in range(labels.shape[1]) if labels[row, i] != IGNORE_LABEL_ID]
        nll.append(
            sum(-math.log(s[row, i, labels[row, i]].item() / s[row, i].sum().item()) for i in valid)
            / len(valid)
        )
        right = all(logits[row, i].argmax() == labels[row, i] for i in valid)
        p = 1 / (1 + math.exp(-q_halt[row].detach().item()))
        bce.append(-math.log(p) if right else -math.log(1 - p))
    return nll, bce


def test_weighted_loss_on_a_tiny_model_by_hand():
    """Rows at different steps (row 0 restarted, as ACT halting does) take their own step's
    weight: loss = sum_rows w_t(row) (nll + 0.5 bce), w = [1, 0.7, 0.49] / 2.19."""
    torch.manual_seed(0)
    cfg = dict(seq_len=16, vocab_size=6, hidden_size=16, num_heads=2, puzzle_emb_ndim=16)
    cfg.update(mixer="mlp_t", pos_encodings="none", l_layers=1, halt_max_steps=3)
    model = build_model("trm", {**cfg, "step_loss": "cgar"}).eval()
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(1, 6, (3, 16), generator=g)
    labels[0, :4] = IGNORE_LABEL_ID
    batch = {
        "inputs": torch.randint(1, 6, (3, 16), generator=g),
        "labels": labels,
        "puzzle_identifiers": torch.zeros(3, dtype=torch.int32),
    }
    carry = model.initial_carry(batch)
    for expected_steps in ([1, 1, 1], [1, 2, 2]):
        result = model(carry, batch)
        assert result.carry.steps.tolist() == expected_steps
        out = result.outputs
        nll, bce = _nll_and_bce(out["logits"], out["q_halt_logits"], labels)
        w = [0.7 ** (t - 1) / 2.19 for t in expected_steps]
        lm = sum(wi * n for wi, n in zip(w, nll, strict=True))
        halt = sum(wi * b for wi, b in zip(w, bce, strict=True))
        assert result.metrics["lm_loss"].item() == pytest.approx(lm, rel=1e-5)
        assert result.metrics["q_halt_loss"].item() == pytest.approx(halt, rel=1e-5)
        assert result.loss.item() == pytest.approx(lm + 0.5 * halt, rel=1e-5)
        carry = result.carry
        carry.halted[0] = True  # row 0 halts: the next step starts it again at t = 1


def test_curriculum_relative_to_the_final_depth():
    assert curriculum(3, 6) == DEEP
    assert curriculum(2, 2) == {"h_cycles": [[0.0, 1], [0.3, 2]], "l_cycles": [[0.0, 1], [0.3, 2]]}
    assert curriculum(4, 1) == {"h_cycles": [[0.0, 2], [0.3, 3], [0.6, 4]], "l_cycles": [[0.0, 1]]}


@pytest.mark.parametrize("name", ["trm", "trm-singlez", "hrm"])
def test_curriculum_sets_t_and_n_by_progress(name):
    cfg = dict(seq_len=16, vocab_size=6, hidden_size=16, num_heads=2, puzzle_emb_ndim=16)
    model = build_model(name, {**cfg, "h_cycles": 3, "l_cycles": 6, "schedule": curriculum(3, 6)})
    depth = {}
    for p in (0.1, 0.45, 0.9, 1.0):
        model.set_progress(p)
        depth[p] = (model.core.config.h_cycles, model.core.config.l_cycles)
    assert depth == {0.1: (1, 2), 0.45: (2, 4), 0.9: (3, 6), 1.0: (3, 6)}


def _fields(name):
    recipe = load_recipe(name)
    model = dict(recipe.model.fields)
    return recipe, model, {k: model.pop(k, None) for k in ("step_loss", "schedule")}


@pytest.mark.parametrize(
    ("cgar", "base"),
    [
        ("sudoku-9x9-quick-cgar", "sudoku-9x9-quick"),
        ("sudoku-9x9-deep-cgar", "sudoku-9x9-deep"),
        ("sudoku-extreme-cgar", "sudoku-extreme-mlp"),
    ],
)
def test_recipes_change_only_the_loss_and_the_curriculum(cgar, base):
    recipe, model, method = _fields(cgar)
    other, other_model, none = _fields(base)
    assert (recipe.data, recipe.optim, recipe.train) == (other.data, other.optim, other.train)
    assert model == other_model and none == {"step_loss": None, "schedule": None}
    assert method == {
        "step_loss": "cgar",
        "schedule": curriculum(model["h_cycles"], model["l_cycles"]),
    }
    assert recipe.expected and recipe.hardware and recipe.description


def test_deep_baseline_is_the_quick_preset_at_t3_n6():
    deep, model, _ = _fields("sudoku-9x9-deep")
    quick, quick_model, _ = _fields("sudoku-9x9-quick")
    assert (deep.data, deep.optim, deep.train) == (quick.data, quick.optim, quick.train)
    assert model == {**quick_model, "h_cycles": 3, "l_cycles": 6}


def test_preflight_flops_follow_the_curriculum():
    machine = Machine(matmul_flops=1e12, available_bytes=None)
    recipe = load_recipe("sudoku-9x9-deep-cgar")

    def flops(**fields):
        cfg = recipe.model_config(seq_len=81, vocab_size=11, **fields)
        return estimate("trm", cfg, 128, 1876, machine).step_flops

    stages = [flops(schedule={}, h_cycles=t, l_cycles=n) for t, n in ((1, 2), (2, 4), (3, 6))]
    mean = flops()
    assert mean == round(0.3 * stages[0] + 0.3 * stages[1] + 0.4 * stages[2])
    assert stages[0] < stages[1] < stages[2] and 0.6 < mean / stages[2] < 0.7
    result = CliRunner().invoke(cli, ["model", "--recipe", "sudoku-9x9-deep-cgar"])
    assert result.exit_code == 0, result.output
    final = f"train {stages[2] / 1e9:.2f} GFLOP (forward"
    scheduled = f"model.schedule: train {mean / 1e9:.2f} GFLOP per step on average over the "
    assert final in result.output
    assert f"{scheduled}budget ({mean / stages[2]:.2f}x the final values)" in result.output


def _losses(run):
    records = map(json.loads, (run / "metrics.jsonl").open())
    return [(r["step"], r["lm_loss"]) for r in records if r["split"] == "train"]


def test_train_resume_across_a_boundary_eval_and_solve(tmp_path, data):
    from trmkit.training.trainer import Trainer

    recipe_path = tmp_path / "tiny-cgar.toml"
    recipe_path.write_text(TINY_CGAR)

    def trainer(run, resume=False):
        recipe = load_recipe(recipe_path)
        return Trainer(recipe, run_dir=tmp_path / run, data_dir=data, progress=False, resume=resume)

    straight = trainer("straight")
    straight.run()
    first = trainer("resumed")
    first.run(until=4)  # checkpoint at step 4, inside (2, 4); step 6 runs at p = 5/8 >= 0.6
    assert first.model.core.config.l_cycles == 6  # evaluated at step 4: the final depth
    del first
    second = trainer("resumed", resume=True)
    second.run(until=5)
    assert (second.model.core.config.h_cycles, second.model.core.config.l_cycles) == (2, 4)
    second.run()
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "straight")
    a, b = straight.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    bundle = load(tmp_path / "resumed")
    assert (bundle.model.core.config.h_cycles, bundle.model.core.config.l_cycles) == (3, 6)
    out = tmp_path / "ev"
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "resumed"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads((out / "per_step.json").read_text())["per_step"]) == 3
    result = CliRunner().invoke(
        cli, ["solve", str(tmp_path / "resumed"), "1..4.3....2..1..", "--json"]
    )
    assert result.exit_code == 0, result.output
    [answer] = json.loads(result.output)
    assert len(answer["answer"]) == 4


TRANSFORMER = """
[data]
task = "sudoku-4x4"
[model]
name = "transformer"
step_loss = "cgar"
[model.schedule]
h_cycles = [[0.0, 1], [0.3, 2], [0.6, 3]]
"""


def _refused(tmp_path, text, *extra):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--recipe", str(recipe), "--out", str(out), *extra])
    assert result.exit_code == 1
    assert not out.exists()
    [line] = result.output.strip().splitlines()
    return line


def test_curriculum_on_a_model_without_t_and_n_is_refused(tmp_path):
    line = _refused(tmp_path, TRANSFORMER)
    assert line.endswith(
        "model.schedule.h_cycles: not a field of model 'transformer'; schedule one of its fields"
    )
    plain = TRANSFORMER.partition("[model.schedule]")[0]
    line = _refused(tmp_path, plain, "--set", "model.schedule={l_cycles = [[0.0, 2], [0.3, 4]]}")
    assert line.endswith(
        "--set model.schedule.l_cycles: not a field of model 'transformer'; schedule one of its "
        "fields"
    )


def test_curriculum_on_a_third_party_model_is_refused(tmp_path):
    from test_third_party_model import RECIPE_MODEL, TinyArchPlugin

    plugins.load_plugins()
    plugins.pm.register(TinyArchPlugin, name="tiny-arch-cgar")
    plugins.reset()
    try:
        text = '[data]\ntask = "sudoku-4x4"\n' + RECIPE_MODEL + "[model.schedule]\n"
        line = _refused(tmp_path, text + "h_cycles = [[0.0, 1], [0.3, 2]]\n")
    finally:
        plugins.pm.unregister(name="tiny-arch-cgar")
        plugins.reset()
    assert "model.schedule is not a field of model 'tiny-recurrent'" in line
