"""EqR (plugins/trmkit_methods/eqr.py, docs/methods.md "EqR: Equilibrium Reasoners"): the
damped noisy update by hand on a tiny float64 net, random initial latents at every reset, the
loss without the continue term, the residual output and its halting policy and selection
rule by hand, then training, exact resume, seeded breadth in eval and solve, and the bad
inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tiny_training import TINY_RECIPE, build_tiny_data, one_thread, tiny_trainer
from torch import nn

from trmkit import load
from trmkit.checkpoint.state import read_safetensors
from trmkit.cli import cli
from trmkit.config import load_recipe
from trmkit.data.loader import EvalLoader
from trmkit.data.store import open_store
from trmkit.errors import ConfigError, OptionError
from trmkit.inference.engine import Record, RowBatch, check_policy, decide, record, stop_steps
from trmkit.inference.policy import HaltPolicy, InferencePolicy, SelectPolicy
from trmkit.inference.samples import INVALID
from trmkit.models import build_model
from trmkit.models.init import trunc_normal_
from trmkit.models.protocol import LatentNoise
from trmkit.plugins import get_task
from trmkit.training.trainer import Trainer
from trmkit_methods.eqr import ResidualHalt, ResidualSelect, classes

LAM = 0.8
W = ((0.5, -1.0), (1.0, 0.25))


class TanhNet(nn.Module):
    """f(h + injection) = tanh((h + injection) W), the shared network replaced by hand."""

    def forward(self, h, injection, rope):
        return torch.tanh((h + injection) @ torch.tensor(W, dtype=torch.float64))


def _tiny_core(noise: float):
    config_cls, core_cls, _ = classes()
    cfg = config_cls(
        seq_len=1,
        vocab_size=3,
        hidden_size=2,
        num_heads=1,
        mixer="mlp_t",
        pos_encodings="none",
        h_cycles=2,
        l_cycles=2,
        l_layers=1,
        damping=LAM,
        noise=noise,
        forward_dtype="float64",
    )
    core = core_cls(cfg)
    core.net = TanhNet()
    return core


def _by_hand(y, z, x, eps):
    """Two cycles of (z <- upd(z, y + x) twice, y <- upd(y, z)), in plain Python floats."""

    def f(v):
        return [math.tanh(v[0] * W[0][j] + v[1] * W[1][j]) for j in range(2)]

    def upd(h, inj):
        out = f([h[0] + inj[0], h[1] + inj[1]])
        e = next(eps)
        return [(1 - LAM) * h[i] + LAM * out[i] + e[i] for i in range(2)]

    for _ in range(2):
        yx = [y[0] + x[0], y[1] + x[1]]
        z = upd(z, yx)
        z = upd(z, yx)
        y = upd(y, z)
    return y, z


@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_damped_noisy_update_by_hand(sigma):
    core = _tiny_core(sigma)
    y0, z0, x = [0.5, -1.0], [0.25, 0.75], [1.0, 0.0]
    t = lambda v: torch.tensor([[v]], dtype=torch.float64)  # noqa: E731  [B=1, L=1, D=2]
    core.generator = torch.Generator().manual_seed(7)
    out, y = core.recurse({"y": t(y0), "z": t(z0)}, t(x), None)
    replay = torch.Generator().manual_seed(7)
    eps = (
        (sigma * torch.randn((1, 1, 2), generator=replay, dtype=torch.float64)).view(-1).tolist()
        if sigma
        else [0.0, 0.0]
        for _ in range(6)
    )
    hand_y, hand_z = _by_hand(y0, z0, x, eps)
    assert out["y"].view(-1).tolist() == pytest.approx(hand_y, abs=1e-12)
    assert out["z"].view(-1).tolist() == pytest.approx(hand_z, abs=1e-12)
    assert torch.equal(y, out["y"])
    if sigma == 0:  # no draw at all without noise
        assert torch.equal(core.generator.get_state(), torch.Generator().manual_seed(7).get_state())


def _model(**extra):
    dims = dict(seq_len=16, vocab_size=6, hidden_size=16, num_heads=2, mixer="mlp_t")
    dims.update(pos_encodings="none", h_cycles=2, l_cycles=2, l_layers=1, halt_max_steps=3)
    return build_model("eqr", {**dims, "batch_size": 4, **extra})


def _batch(rows: int = 4):
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(1, 6, (rows, 16), generator=g, dtype=torch.int32)
    labels = torch.randint(1, 6, (rows, 16), generator=g, dtype=torch.int32)
    return {"inputs": inputs, "labels": labels, "puzzle_identifiers": torch.zeros(rows).int()}


def test_reset_draws_fresh_truncated_normal_latents_per_row_and_position():
    model = _model()
    assert model.config.puzzle_emb_ndim == 0 and model.config.step_loss == "act_no_continue"
    carry = model.initial_carry(_batch())
    every = torch.ones(4, dtype=torch.bool)

    def draw(seed, mask=every):
        model.set_generator(torch.Generator().manual_seed(seed))
        return model.core.reset_latents(mask, carry.latents)

    first = draw(3)
    replay = torch.Generator().manual_seed(3)
    for name in ("y", "z"):  # y first, then z, from the one generator
        expected = trunc_normal_(torch.empty(4, 16, 16), std=1.0, generator=replay)
        assert torch.equal(first[name], expected), name
        value = first[name]
        assert not torch.equal(value[0], value[1]) and not torch.equal(value[0, 0], value[0, 1])
        assert value.abs().max() <= 2 / 0.87962566103423978 + 1e-6
    assert all(torch.equal(first[k], draw(3)[k]) for k in first)  # same seed, same latents
    assert not torch.equal(first["y"], draw(4)["y"])
    kept = draw(3, torch.tensor([True, False, True, False]))
    assert torch.equal(kept["z"][1], carry.latents["z"][1])
    assert torch.equal(kept["z"][0], first["z"][0])


def test_residual_output_is_the_mean_norm_of_the_logit_change():
    model = _model().eval()
    batch = _batch()
    model.set_generator(torch.Generator().manual_seed(5))
    result = model(model.initial_carry(batch), batch)
    replay = torch.Generator().manual_seed(5)
    y_start = trunc_normal_(torch.empty(4, 16, 16), std=1.0, generator=replay)
    start = model.core.heads(y_start)[0]
    expected = (result.outputs["logits"] - start).norm(dim=-1).mean(dim=-1)
    assert result.outputs["residual"].shape == (4,)
    assert torch.allclose(result.outputs["residual"], expected, rtol=1e-6, atol=1e-6)


def test_loss_has_no_continue_term():
    batch = _batch()
    results = {}
    for loss in ("act_no_continue", "act"):
        model = _model(act_continue=True, forward_dtype="float64", step_loss=loss).train()
        torch.manual_seed(1)
        results[loss] = model(model.initial_carry(batch), batch)
    r = results["act_no_continue"]
    logits = r.outputs["logits"].detach().double().numpy()  # the heads run in fp32
    q = r.outputs["q_halt_logits"].detach().double().numpy()
    labels = batch["labels"].numpy()
    s = np.where(logits < 0, 1 / (1 - logits), logits + 1)  # stablemax
    picked = np.take_along_axis(s, labels[..., None].astype(np.int64), axis=-1)[..., 0]
    lm = (-np.log(picked / s.sum(-1))).mean(-1).sum()
    correct = (logits.argmax(-1) == labels).all(-1)
    bce = np.log1p(np.exp(q)) - q * correct
    assert r.loss.item() == pytest.approx(lm + 0.5 * bce.sum(), rel=1e-6)
    assert r.metrics["q_continue_loss"].item() == 0.0
    assert results["act"].metrics["q_continue_loss"].item() > 0  # "act" would train it


# ----------------------------------------------------- the residual rules, by hand
def _record() -> Record:
    """1 row, 5 samples, 3 steps. Answers (one token) per step: sample 2 changes 6 -> 5."""
    answers = [[7, 5, 6, 9, 7], [7, 5, 6, 9, 7], [7, 5, 5, 9, 7]]
    residual = [[0.9] * 5, [0.1, 0.3, 0.2, 0.5, 0.4], [0.1, 0.1, 0.4, 0.3, 0.6]]
    shape = (3, 5, 1)
    return Record(
        preds=np.array(answers, np.int16).reshape(3, 5, 1, 1),
        q=np.zeros(shape, np.float32),
        same=np.zeros(shape, bool),
        inputs=np.zeros((1, 1)),
        seconds=0.0,
        aux={"residual": np.array(residual, np.float32).reshape(shape)},
    )


def test_residual_halt_and_select_by_hand():
    rec = _record()
    halt = HaltPolicy.parse("residual:0.15")
    assert str(halt) == "residual:0.15" and halt.needs == ("residual",)
    # first residual < 0.15: sample 0 at step 2, sample 1 at step 3, the others never
    assert stop_steps(rec, halt, 3, 5)[0].tolist() == [[2], [3], [3], [3], [3]]
    assert str(SelectPolicy.parse("residual")) == "residual:3:4"

    def pick(select, halt="fixed", **kw):
        return decide(rec, halt, select, **kw).preds[0, 0]

    # W=3 means .367 .433 .5 .567 .633: top 4 = samples 0-3 answering 7 5 5 9 -> 5
    assert pick("residual") == 5
    # W=2 means .1 .2 .3 .4 .5; top 5: 7 (0, 4) ties 5 (1, 2) -> the lowest residual, 7
    assert pick("residual:2:5") == 7 and pick("residual:2:1") == 7 and pick("residual:2") == 5
    # W=1: .1 .1 .4 .3 .6, top 2 = samples 0, 1: one vote each, equal residual -> sample 0
    assert pick("residual:1:2") == 7
    # depth 2, W=1: .1 .3 .2 .5 .4 -> top 4 = 0, 2, 1, 4 answering 7 6 5 7 -> 7
    assert pick("residual:1", depth=2) == 7
    # halted by residual:0.15 (sample 0 at step 2), W=2: .5 .2 .3 .4 .5 -> 1, 2, 3, 0 -> 5
    assert pick("residual:2", halt) == 5
    rec.preds[2, 0] = INVALID  # an undecodable answer is never chosen
    assert pick("residual:2:1") == 5


@pytest.mark.parametrize(
    ("make", "text", "message"),
    [
        (HaltPolicy.parse, "residual", "--halt 'residual': give the threshold TAU > 0"),
        (HaltPolicy.parse, "residual:0", "--halt 'residual:0': give the threshold"),
        (HaltPolicy.parse, "residual:nan", "--halt 'residual:nan': give the threshold"),
        (SelectPolicy.parse, "residual:0", "--select 'residual:0': expected residual[:W[:K]]"),
        (SelectPolicy.parse, "residual:1:2:3", "--select 'residual:1:2:3': expected"),
        (SelectPolicy.parse, "residual:a", "--select 'residual:a': expected"),
    ],
)
def test_bad_rule_arguments_are_one_line(make, text, message):
    with pytest.raises(OptionError) as exc:
        make(text)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)
    assert isinstance(make(text.split(":")[0] + ":2").rule, (ResidualHalt, ResidualSelect))


def test_bad_config_is_one_line():
    for field, value in (("damping", 0.0), ("damping", 1.5), ("noise", -0.1)):
        with pytest.raises(ConfigError, match=rf"^model.{field}: must be"):
            _model(**{field: value})


# --------------------------------------------------------- training and inference
RECIPE = TINY_RECIPE.replace(
    'name = "trm"', 'name = "eqr"\nstep_loss = "act_no_continue"\nnoise = 0.05'
)
RECIPE = RECIPE.replace("puzzle_emb_ndim = 32\npuzzle_emb_len = 1\n", "")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    before = one_thread()
    tmp = tmp_path_factory.mktemp("eqr")
    data = build_tiny_data(tmp / "data")
    (tmp / "eqr.toml").write_text(RECIPE)
    trainer = Trainer(
        load_recipe(tmp / "eqr.toml"), run_dir=tmp / "run", data_dir=data, progress=False
    )
    trainer.run()
    yield tmp, data
    torch.set_num_threads(before)


def _train_losses(run):
    records = map(json.loads, (run / "metrics.jsonl").open())
    return [(r["step"], r["lm_loss"], r["q_halt_loss"]) for r in records if r["split"] == "train"]


def test_trains_and_resumes_exactly(env):
    tmp, data = env
    recipe = load_recipe(tmp / "eqr.toml")
    assert recipe.model.name == "eqr"
    first = Trainer(recipe, run_dir=tmp / "resumed", data_dir=data, progress=False)
    first.run(until=4)
    del first
    second = Trainer(recipe, run_dir=tmp / "resumed", data_dir=data, progress=False, resume=True)
    assert second.step == 4
    second.run()
    losses = _train_losses(tmp / "run")
    assert len(losses) == 8 and all(lm > 0 for _, lm, _ in losses)
    assert _train_losses(tmp / "resumed") == losses
    a = read_safetensors(tmp / "run" / "checkpoints" / "step_8" / "model.safetensors")
    b = read_safetensors(tmp / "resumed" / "checkpoints" / "step_8" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_breadth_is_seeded_random_latents(env):
    tmp, data = env
    model = load(tmp / "run").model.eval()
    task = get_task("sudoku-4x4")
    batch = next(iter(EvalLoader(open_store(data, task).split("test"), 8)))
    rows = RowBatch(*(np.asarray(batch[k]) for k in ("inputs", "puzzle_identifiers")), np.arange(8))
    # no augmentation, no --noise: the samples differ by their random initial latents
    policy = InferencePolicy(samples=4, augment=False, select="residual", seed=1)
    check_policy(policy, model, task, False)
    rec = record(model, rows, policy, task, depth=3)
    again = record(model, rows, policy, task, depth=3)
    assert np.array_equal(rec.aux["residual"], again.aux["residual"])
    assert np.array_equal(rec.preds, again.preds)
    residual = rec.aux["residual"]
    assert residual.shape == (3, 4, 8) and not np.array_equal(residual[:, 0], residual[:, 1])
    other = record(model, rows, InferencePolicy(samples=4, augment=False, seed=2), task, depth=3)
    assert not np.array_equal(other.q, rec.q)
    # --noise is sigma of samples 2..S; sample 0 runs at the trained sigma (0.05)
    generator = torch.Generator().manual_seed(0)
    model.set_latent_noise(LatentNoise(torch.tensor([0.0, 0.5, 0.2]), generator))
    assert model.core.sigma.tolist() == pytest.approx([0.05, 0.5, 0.2])
    assert model.core.generator is generator
    model.set_latent_noise(None)
    assert model.core.sigma is None and model.core.generator is None


def test_eval_and_solve_cli_with_residual_breadth(env):
    tmp, _ = env
    run = str(tmp / "run")
    options = ["--samples", "4", "--no-augment", "--select", "residual", "--halt", "residual:0.5"]
    outs = []
    for name in ("a", "b"):
        result = CliRunner().invoke(cli, ["eval", run, "--out", str(tmp / name), *options])
        assert result.exit_code == 0, result.output
        outs.append(json.loads((tmp / name / "metrics.json").read_text()))
    assert outs[0]["select"] == "residual:3:4" and outs[0]["halt"] == "residual:0.5"
    for key in ("exact_accuracy", "accuracy", "forward_passes"):
        assert outs[0][key] == outs[1][key], key
    solve = ["solve", run, "1..4.3....2..1..", "--json", *options]
    answers = [CliRunner().invoke(cli, solve) for _ in range(2)]
    assert answers[0].exit_code == 0, answers[0].output
    assert json.loads(answers[0].output)[0]["answer"] == json.loads(answers[1].output)[0]["answer"]


def test_residual_on_a_model_without_it_is_one_line(env, tmp_path):
    _, data = env
    tiny_trainer(tmp_path, data, run="trm").run(until=4)
    run = str(tmp_path / "trm")
    cases = (
        (["--samples", "2", "--select", "residual"], "--select residual: the model trm keeps no"),
        (["--halt", "residual:0.1"], "--halt residual: the model trm keeps no 'residual'"),
        (["--samples", "4", "--no-augment"], "--samples 4: the samples would all be identical"),
    )
    for options, message in cases:
        result = CliRunner().invoke(cli, ["eval", run, "--out", str(tmp_path / "ev"), *options])
        lines = [line for line in result.output.strip().splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1, result.output
        assert message in lines[0] and "Traceback" not in result.output
        assert not (tmp_path / "ev").exists()
