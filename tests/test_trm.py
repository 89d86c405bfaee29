"""TRM engine: gradient only through the last cycle, no graph kept for the others, heads,
determinism, and every registered variant runs a step."""

import pytest
import torch

from trmkit.models import build_model

SMALL = dict(
    seq_len=6,
    vocab_size=5,
    hidden_size=16,
    num_heads=2,
    puzzle_emb_ndim=16,
    puzzle_emb_len=2,
    h_cycles=3,
    l_cycles=2,
    halt_max_steps=4,
)


def batch(b=3, s=6, vocab=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "inputs": torch.randint(0, vocab, (b, s), generator=g, dtype=torch.int32),
        "labels": torch.randint(0, vocab, (b, s), generator=g, dtype=torch.int32),
        "puzzle_identifiers": torch.zeros(b, dtype=torch.int32),
    }


def make(name="trm", **changes):
    torch.manual_seed(0)
    return build_model(name, {**SMALL, **changes})


@pytest.mark.parametrize("mixer", ["attention", "mlp_t"])
def test_only_last_cycle_is_in_the_graph(mixer):
    model = make(mixer=mixer)
    model.train()
    grad_calls = []
    model.core.net.register_forward_hook(
        lambda mod, args, out: grad_calls.append(torch.is_grad_enabled())
    )
    data = batch()
    model(model.initial_carry(data), data)
    cfg = model.config
    assert len(grad_calls) == cfg.h_cycles * (cfg.l_cycles + 1)
    assert sum(grad_calls) == cfg.l_cycles + 1
    assert grad_calls[-(cfg.l_cycles + 1) :] == [True] * (cfg.l_cycles + 1)


def _saved_tensors(model, data):
    count = [0]

    def pack(t):
        count[0] += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        carry = model.initial_carry(data)
        model(carry, data)
    return count[0]


def test_no_grad_cycles_keep_no_graph():
    data = batch()
    one = _saved_tensors(make(h_cycles=1), data)
    three = _saved_tensors(make(h_cycles=3), data)
    assert one > 0 and one == three


def test_gradients_match_manual_last_cycle_only():
    model = make()
    model.train()
    data = batch()
    carry = model.initial_carry(data)
    _, loss, *_ = model(carry, data)
    loss.backward()
    auto = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    core = model.core
    x = core.encoder(data["inputs"], data["puzzle_identifiers"], torch.float32)
    y = core.y_init.expand(3, 8, 16)
    z = core.z_init.expand(3, 8, 16)
    with torch.no_grad():
        for _ in range(2):
            y, z = core.cycle(y, z, x, core.rope())
    y, z = core.cycle(y.clone(), z.clone(), x, core.rope())
    logits, q_halt, _ = core.heads(y)
    from trmkit.models.losses import act_loss

    total, *_ = act_loss(
        logits=logits,
        labels=data["labels"],
        q_halt=q_halt,
        q_continue=q_halt,
        target_q_continue=None,
        halted=torch.zeros(3, dtype=torch.bool),
        steps=torch.ones(3, dtype=torch.int32),
        loss_type=model.config.loss_type,
    )
    total.backward()
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, auto[name], atol=1e-5, rtol=1e-4), name


def test_heads_and_initial_latents():
    model = make()
    assert torch.all(model.core.heads.q_head.weight == 0)
    assert torch.all(model.core.heads.q_head.bias == -5)
    state = model.state_dict()
    assert "core.y_init" in state and "core.z_init" in state  # persistent buffers
    assert not any(n.endswith("_init") for n, _ in model.named_parameters())
    data = batch()
    _, _, _, out, _ = model(model.initial_carry(data), data)
    assert out["logits"].shape == (3, 6, 5) and out["logits"].dtype == torch.float32
    assert torch.allclose(out["q_halt_logits"], torch.full((3,), -5.0))


def test_step_is_deterministic_for_a_seed():
    def run():
        model = make()
        model.train()
        torch.manual_seed(7)
        data = batch()
        carry = model.initial_carry(data)
        out = []
        for _ in range(3):
            carry, loss, _, o, _ = model(carry, data)
            loss.backward()
            out.append(loss.detach())
        return torch.stack(out), carry.halted, model.core.heads.lm_head.weight.grad

    a, b = run(), run()
    for x, y in zip(a, b, strict=False):
        assert torch.equal(x, y)


@pytest.mark.parametrize("name", ["trm", "trm-singlez", "trm-multiz", "hrm", "transformer"])
def test_every_variant_trains_a_step(name):
    changes = {"trm-multiz": dict(l_cycles=6, num_z=6)}.get(name, {})
    if name == "hrm":
        changes = dict(h_cycles=2, l_cycles=2, h_layers=1, l_layers=1)
    if name == "transformer":
        changes = dict(num_layers=2)
    fields = {**SMALL, **changes}
    if name in ("hrm", "transformer"):
        for key in ("h_cycles", "l_cycles"):
            if name == "transformer":
                fields.pop(key, None)
    torch.manual_seed(0)
    model = build_model(name, fields)
    model.train()
    data = batch()
    carry, loss, metrics, out, _ = model(model.initial_carry(data), data)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert torch.isfinite(loss)
    assert model.puzzle_emb.pending and model.puzzle_emb.pending[0][1].grad is not None


def test_act_continue_on_trm_runs_second_pass():
    model = make(act_continue=True)
    model.train()
    data = batch()
    _, _, metrics, _, _ = model(model.initial_carry(data), data)
    assert metrics["q_continue_loss"] > 0
    model.eval()
    _, _, metrics, _, _ = model(model.initial_carry(data), data)
    assert metrics["q_continue_loss"] == 0
