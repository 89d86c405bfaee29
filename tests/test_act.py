"""ACT carry semantics and halting rules (reference section 3.1)."""

import torch

from trmkit.models import build_model
from trmkit.models.act import ACTCarry

SMALL = dict(
    seq_len=4,
    vocab_size=5,
    hidden_size=8,
    num_heads=2,
    puzzle_emb_ndim=8,
    puzzle_emb_len=1,
    h_cycles=1,
    l_cycles=1,
    l_layers=1,
    halt_max_steps=4,
)


def batch(fill, b=6):
    return {
        "inputs": torch.full((b, 4), fill, dtype=torch.int32),
        "labels": torch.full((b, 4), fill, dtype=torch.int32),
        "puzzle_identifiers": torch.zeros(b, dtype=torch.int32),
    }


def make(**changes):
    torch.manual_seed(0)
    return build_model("trm", {**SMALL, **changes})


def set_q(model, halt_bias, continue_bias=-5.0):
    with torch.no_grad():
        model.core.heads.q_head.bias.copy_(torch.tensor([halt_bias, continue_bias]))


def test_eval_runs_exactly_halt_max_steps():
    model = make()
    model.eval()
    set_q(model, 10.0)  # would halt at once in training
    data = batch(1)
    carry = model.initial_carry(data)
    for step in range(1, 5):
        carry, _, metrics, _, all_halted = model(carry, data)
        assert bool(all_halted) == (step == 4)
        assert torch.all(carry.steps == step)
    assert metrics["count"] == 6 and metrics["steps"] == 24


def test_training_halts_on_positive_q_halt_without_exploration():
    model = make(halt_exploration_prob=0.0)
    model.train()
    set_q(model, 10.0)
    data = batch(1)
    carry, *_ = model(model.initial_carry(data), data)
    assert torch.all(carry.halted)
    set_q(model, -10.0)
    carry, *_ = model(model.initial_carry(data), data)
    assert not torch.any(carry.halted)
    for _ in range(3):  # the N_sup cap halts everything at step 4
        carry, *_ = model(carry, data)
    assert torch.all(carry.halted) and torch.all(carry.steps == 4)


def test_exploration_enforces_min_steps():
    model = make(halt_exploration_prob=1.0, halt_max_steps=8)
    model.train()
    set_q(model, 10.0)
    data = batch(1, b=256)
    torch.manual_seed(3)
    carry, *_ = model(model.initial_carry(data), data)
    # min_steps is drawn from {2..8}: no slot may halt after one step
    assert not torch.any(carry.halted)


def test_act_continue_uses_q_halt_greater_than_continue():
    model = make(act_continue=True, halt_exploration_prob=0.0)
    model.train()
    set_q(model, 1.0, 2.0)  # q_halt > 0 but below q_continue: keep going
    data = batch(1)
    carry, *_ = model(model.initial_carry(data), data)
    assert not torch.any(carry.halted)


def test_carry_replacement_keeps_unhalted_examples():
    model = make()
    model.eval()
    carry = model.initial_carry(batch(1))
    carry, *_ = model(carry, batch(1))
    assert torch.all(carry.current_data["inputs"] == 1)
    carry.halted = torch.tensor([True, False, True, False, False, True])
    carry.latents["y"].clone()
    carry, *_ = model(carry, batch(2))
    rows = carry.current_data["inputs"][:, 0].tolist()
    assert rows == [2, 1, 2, 1, 1, 2]  # incoming rows for unhalted slots are discarded
    assert carry.steps.tolist() == [1, 2, 1, 2, 2, 1]


def test_reset_puts_init_vectors_in_halted_slots():
    model = make()
    latents = model.core.initial_latents(3, torch.device("cpu"))
    latents = {k: v + 7 for k, v in latents.items()}
    reset = model.core.reset_latents(torch.tensor([True, False, True]), latents)
    assert torch.equal(reset["y"][0], model.core.y_init.expand(5, 8))
    assert torch.all(reset["y"][1] == 7)
    assert torch.equal(reset["z"][2, 3], model.core.z_init)


def test_carry_state_dict_round_trip_resumes_exactly():
    model = make()
    model.eval()
    data = batch(3)
    carry, *_ = model(model.initial_carry(data), data)
    state = {k: v.clone() for k, v in model.carry_state_dict(carry).items()}
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    a = model(carry, data)
    b = model(model.load_carry_state_dict(state), data)
    assert torch.equal(a[1], b[1]) and torch.equal(a[0].latents["z"], b[0].latents["z"])
    assert isinstance(ACTCarry.from_state_dict(state), ACTCarry)


TRANSFORMER = dict(
    seq_len=4,
    vocab_size=5,
    hidden_size=8,
    num_heads=2,
    num_layers=1,
    puzzle_emb_ndim=8,
    halt_max_steps=4,
    halt_exploration_prob=0.0,
)


def make_transformer(**changes):
    torch.manual_seed(0)
    return build_model("transformer", {**TRANSFORMER, **changes})


def count_core_calls(model):
    calls = []
    model.core.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_transformer_halts_where_q_halt_beats_q_continue_without_a_continue_target():
    # the official baseline: q_halt > q_continue in training, no second forward, no target
    model = make_transformer()
    assert model.config.training_halt_rule == "q_halt_vs_continue"
    model.train()
    data = batch(1)
    calls = count_core_calls(model)
    set_q(model, -1.0, -5.0)  # q_halt < 0 but above q_continue: halts
    carry, _, metrics, _, _ = model(model.initial_carry(data), data)
    assert torch.all(carry.halted)
    assert len(calls) == 1 and metrics["q_continue_loss"] == 0
    set_q(model, 1.0, 2.0)  # q_halt > 0 but below q_continue: keeps going
    carry, *_ = model(model.initial_carry(data), data)
    assert not torch.any(carry.halted)


def test_transformer_other_halting_rules_are_explicit_options():
    data = batch(1)
    model = make_transformer(halt_rule="q_halt")
    model.train()
    set_q(model, -1.0, -5.0)
    carry, *_ = model(model.initial_carry(data), data)
    assert not torch.any(carry.halted)

    model = make_transformer(halt_rule="fixed")
    model.train()
    set_q(model, 10.0, -5.0)
    carry, *_ = model(model.initial_carry(data), data)
    assert not torch.any(carry.halted)
    for _ in range(3):
        carry, *_ = model(carry, data)
    assert torch.all(carry.halted) and torch.all(carry.steps == 4)

    model = make_transformer(act_continue=True)  # a trained continue head: second forward
    model.train()
    calls = count_core_calls(model)
    _, _, metrics, _, _ = model(model.initial_carry(data), data)
    assert len(calls) == 2 and metrics["q_continue_loss"] > 0


def test_trm_halting_rule_follows_act_continue_by_default():
    assert make().config.training_halt_rule == "q_halt"
    assert make(act_continue=True).config.training_halt_rule == "q_halt_vs_continue"
    hrm = build_model("hrm", {**SMALL, "h_layers": 1})
    assert hrm.config.training_halt_rule == "q_halt_vs_continue"


def test_unknown_halting_rule_is_one_line():
    import pytest

    from trmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="model.halt_rule: 'sometimes' is not one of"):
        make(halt_rule="sometimes")
