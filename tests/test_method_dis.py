"""DIS (docs/methods.md, "DIS: deep improvement supervision"): the path frames, the per-step
targets, the previous prediction and step embedding as the next step's input, no halting
loss, and training, evaluation, solving and exact resume from a tiny recipe."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tiny_training import build_tiny_data, one_thread, write_recipe

from trmkit.batch import IGNORE_LABEL_ID
from trmkit.checkpoint import latest_checkpoint
from trmkit.checkpoint.state import read_safetensors
from trmkit.cli import cli
from trmkit.errors import ConfigError
from trmkit.models import build_model, count_parameters
from trmkit_methods.dis import path_frame

TINY = dict(
    seq_len=6,
    vocab_size=11,
    hidden_size=16,
    num_heads=2,
    puzzle_emb_ndim=16,
    puzzle_emb_len=1,
    mixer="mlp_t",
    pos_encodings="none",
    halt_max_steps=2,
    forward_dtype="float64",
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    before = one_thread()
    yield build_tiny_data(tmp_path_factory.mktemp("data") / "store")
    torch.set_num_threads(before)


def _batch():
    return {  # row 0: d = 4 (positions 1, 2, 4, 5); row 1: position 5 ignored, d = 2
        "inputs": torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]], dtype=torch.int32),
        "labels": torch.tensor(
            [[1, 7, 8, 4, 9, 10], [3, 2, 3, 9, 5, IGNORE_LABEL_ID]], dtype=torch.int32
        ),
        "puzzle_identifiers": torch.zeros(2, dtype=torch.int32),
    }


def test_frames_by_hand():
    batch = _batch()
    order = torch.tensor([[5, 3, 0, 4, 1, 2], [1, 0, 2, 3, 4, 5]], dtype=torch.int32)

    def frame(s):
        return path_frame(batch["inputs"], batch["labels"], order, torch.tensor([s, s]), 2).tolist()

    # frame 1 flips floor(1 * 4 / 2) = 2 of row 0's differing positions, the two of lowest
    # order: position 2 (order 0) and 4 (order 1); row 1: floor(1 * 2 / 2) = 1, position 0
    assert frame(1) == [[1, 2, 8, 4, 9, 6], [3, 2, 3, 4, 5, IGNORE_LABEL_ID]]
    assert frame(0) == [[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, IGNORE_LABEL_ID]]
    assert frame(2) == batch["labels"].tolist() == frame(7)  # past N: the label


def test_paths_are_nested_and_drawn_per_slot_at_reset():
    torch.manual_seed(0)
    model = build_model("dis", {**TINY, "seq_len": 30, "halt_max_steps": 5}).train()
    g = torch.Generator().manual_seed(1)
    batch = {
        "inputs": torch.randint(1, 11, (4, 30), generator=g),
        "labels": torch.randint(1, 11, (4, 30), generator=g),
        "puzzle_identifiers": torch.zeros(4, dtype=torch.int32),
    }
    carry = model.initial_carry(batch)
    orders = []
    for _ in range(6):  # 5 steps, then the slots take new puzzles
        carry = model(carry, batch).carry
        orders.append(carry.latents["order"].clone())
    assert all(torch.equal(orders[0], o) for o in orders[1:5])
    assert not torch.equal(orders[0], orders[5])
    assert torch.equal(orders[0].sort(-1).values, torch.arange(30).expand(4, 30).int())
    differ = batch["inputs"] != batch["labels"]
    frames = [
        path_frame(batch["inputs"], batch["labels"], orders[0], torch.full((4,), s), 5)
        for s in range(6)
    ]
    for s in range(5):
        was, now = frames[s] == batch["labels"], frames[s + 1] == batch["labels"]
        assert (now | ~was).all()  # nested: a flipped position stays flipped
        assert torch.equal((now & differ).sum(-1), (s + 1) * differ.sum(-1) // 5)
    assert torch.equal(frames[0], batch["inputs"])


def _stablemax_ce(logits: torch.Tensor, target: list[list[int]]) -> float:
    """Sum over rows of the mean over valid tokens of -log(s(x_t) / sum s(x)), by the formula."""
    x = logits.double()
    s = torch.where(x >= 0, x + 1.0, 1.0 / (1.0 - x))
    total = 0.0
    for row, tokens in enumerate(target):
        terms = [
            -math.log(s[row, i, t].item() / s[row, i].sum().item())
            for i, t in enumerate(tokens)
            if t != IGNORE_LABEL_ID
        ]
        total += sum(terms) / len(terms)
    return total


def _frame_by_hand(inputs, labels, order, step, steps):
    out = []
    for x, y, o in zip(inputs.tolist(), labels.tolist(), order.tolist(), strict=True):
        differ = sorted(
            (o[i], i) for i in range(len(x)) if y[i] != IGNORE_LABEL_ID and x[i] != y[i]
        )
        flip = {i for _, i in differ[: step * len(differ) // steps]}
        out.append([y[i] if i in flip or y[i] == IGNORE_LABEL_ID else x[i] for i in range(len(x))])
    return out


def test_step_t_trains_towards_frame_t_without_halting_loss():
    torch.manual_seed(0)
    model = build_model("dis", TINY).train()
    batch = _batch()
    carry = model.initial_carry(batch)
    for step in (1, 2):
        result = model(carry, batch)
        carry = result.carry
        target = _frame_by_hand(batch["inputs"], batch["labels"], carry.latents["order"], step, 2)
        expected = _stablemax_ce(result.outputs["logits"], target)
        assert result.loss.item() == pytest.approx(expected, rel=1e-6)
        assert result.metrics["lm_loss"].item() == pytest.approx(expected, rel=1e-6)
        assert result.metrics["q_halt_loss"].item() == 0.0
        assert result.metrics["q_continue_loss"].item() == 0.0
        if step == 1:  # frame 1 is not the label: the loss against the label differs
            assert target != batch["labels"].tolist()
            assert expected != pytest.approx(
                _stablemax_ce(result.outputs["logits"], batch["labels"].tolist()), rel=1e-3
            )
        assert carry.halted.tolist() == [step == 2] * 2  # fixed: no early halting in training
        model.zero_grad()
        result.loss.backward()
        assert model.core.heads.q_head.weight.grad is None  # nothing trains the halting head


def test_previous_prediction_and_step_embedding_feed_the_next_step():
    torch.manual_seed(0)
    model = build_model("dis", {**TINY, "halt_max_steps": 3}).eval()
    core = model.core
    tokens, encoded, injections = [], [], []

    def on_encoder(module, args, out):
        tokens.append(args[0].clone())
        encoded.append(out.clone())

    core.encoder.register_forward_hook(on_encoder)
    core.net.register_forward_pre_hook(lambda m, args: injections.append(args[1].clone()))
    batch = _batch()
    carry, preds, ys = model.initial_carry(batch), [], []
    for _ in range(3):
        ys.append(carry.latents["y"])
        result = model(carry, batch)
        carry = result.carry
        preds.append(result.outputs["preds"])
    assert torch.equal(tokens[0], batch["inputs"])
    assert torch.equal(tokens[1], preds[0].int()) and torch.equal(tokens[2], preds[1].int())
    assert not torch.equal(preds[0], batch["inputs"])
    # the first call of step t gets y + x, x = the encoded tokens + sqrt(D) e_t at every position
    calls = core.config.l_cycles + 1
    weight = core.step_emb.weight.double()
    for t in range(3):
        y = core.y_init.double() if t == 0 else ys[t].double()
        added = injections[t * calls] - y - encoded[t]
        assert torch.allclose(added, 4.0 * weight[t].expand_as(added), atol=1e-12)


def test_compact_paper_parameter_count():
    model = build_model("dis", {"seq_len": 900, "vocab_size": 12, "num_heads": 8})
    d, vocab, inter, steps = 256, 12, 768, 6  # SwiGLU width: round(4 * 256 * 2 / 3) to 256
    block = 4 * d * d + 3 * d * inter  # q, k, v, o; gate, up, down
    heads = d * vocab + 2 * d + 2  # lm_head; q_head with its bias
    assert count_parameters(model) == block + vocab * d + heads + steps * d == 860162


def _train(*args):
    return CliRunner().invoke(cli, ["train", "--no-progress", *map(str, args)])


def _losses(run: Path):
    lines = (run / "metrics.jsonl").open()
    return [(r["step"], r["lm_loss"]) for r in map(json.loads, lines) if r["split"] == "train"]


def test_trains_evaluates_solves_and_resumes_exactly(data, tmp_path):
    recipe = write_recipe(tmp_path)
    dis = ["--set", "model.name=dis", "--data", data]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    result = _train("--recipe", recipe, *dis, "--out", straight, "--max-steps", 6)
    assert result.exit_code == 0, result.output
    assert "final: exact accuracy" in result.output
    assert _train("--recipe", recipe, *dis, "--out", resumed, "--max-steps", 4).exit_code == 0
    again = _train("--recipe", recipe, *dis, "--out", resumed, "--max-steps", 6, "--resume")
    assert again.exit_code == 0, again.output
    assert _losses(resumed) == _losses(straight) and len(_losses(straight)) == 6
    a = read_safetensors(latest_checkpoint(straight / "checkpoints") / "model.safetensors")
    b = read_safetensors(latest_checkpoint(resumed / "checkpoints") / "model.safetensors")
    assert a.keys() == b.keys() and "core.step_emb.weight" in a
    assert all(torch.equal(a[k], b[k]) for k in a)
    out = tmp_path / "ev"
    result = CliRunner().invoke(cli, ["eval", str(resumed), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads((out / "per_step.json").read_text())["per_step"]) == 3
    result = CliRunner().invoke(cli, ["solve", str(resumed), "1..4.3....2..1..", "--json"])
    assert result.exit_code == 0, result.output
    [answer] = json.loads(result.output)
    assert answer["steps"] == 3


def test_dis_step_loss_on_a_model_without_its_state_is_refused(data, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"^model.step_loss: 'dis' reads .*'order'.*TRMCore"):
        build_model("trm", {**TINY, "step_loss": "dis"})
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path)
    before = sorted(os.listdir(tmp_path))
    args = ["--recipe", recipe, "--data", data, "--out", tmp_path / "run"]
    result = _train(*args, "--set", "model.step_loss=dis")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "model.step_loss" in lines[0] and "TRMCore" in lines[0]
    assert sorted(os.listdir(tmp_path)) == before
