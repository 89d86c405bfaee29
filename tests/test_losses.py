"""Stablemax/softmax cross-entropy and the ACT loss head against hand computations."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trmkit.models.losses import act_loss, softmax_cross_entropy, stablemax_cross_entropy


def test_stablemax_by_hand():
    logits = torch.tensor([[[2.0, -1.0, 0.0]]])
    s = [3.0, 1 / (1 + 1), 1.0]  # v+1 for v>=0, 1/(1-v) for v<0
    loss = stablemax_cross_entropy(logits, torch.tensor([[1]]))
    assert loss.dtype == torch.float64
    assert math.isclose(loss.item(), -math.log(s[1] / sum(s)), rel_tol=1e-12)
    assert stablemax_cross_entropy(logits, torch.tensor([[-100]])).item() == 0.0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-20, 20), min_size=2, max_size=8), st.data())
def test_softmax_ce_matches_formula(values, data):
    label = data.draw(st.integers(0, len(values) - 1))
    logits = torch.tensor([[values]])
    got = softmax_cross_entropy(logits, torch.tensor([[label]])).item()
    expected = -torch.log_softmax(torch.tensor(values, dtype=torch.float64), 0)[label].item()
    assert math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-4)


def test_act_loss_by_hand():
    # two sequences of 2 tokens, vocab 2; seq 0 fully right, seq 1 one valid token wrong
    logits = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 2.0]]])
    labels = torch.tensor([[0, 1], [1, -100]])
    q_halt = torch.tensor([0.5, -0.5])
    total, m, preds = act_loss(
        logits=logits,
        labels=labels,
        q_halt=q_halt,
        q_continue=q_halt,
        target_q_continue=None,
        halted=torch.tensor([True, True]),
        steps=torch.tensor([3, 5]),
        loss_type="stablemax_cross_entropy",
    )
    ce_right = -math.log(2 / 3)  # s = [2, 1]
    ce_wrong = -math.log(1 / 3)
    lm = (ce_right + ce_right) / 2 + ce_wrong / 1
    bce = math.log1p(math.exp(-0.5)) + math.log1p(math.exp(-0.5))  # target 1 for 0, 0 for 1
    assert math.isclose(m["lm_loss"].item(), lm, rel_tol=1e-6)
    assert math.isclose(m["q_halt_loss"].item(), bce, rel_tol=1e-5)
    assert math.isclose(total.item(), lm + 0.5 * bce, rel_tol=1e-6)
    assert m["count"] == 2 and m["exact_accuracy"] == 1 and m["steps"] == 8
    assert math.isclose(m["accuracy"].item(), 1.0, rel_tol=1e-6)  # 1 + 0/1
    assert m["q_halt_accuracy"] == 2
    assert preds.tolist() == [[0, 1], [0, 1]]


def test_metrics_count_only_halted_valid():
    logits = torch.zeros(3, 2, 2)
    labels = torch.tensor([[0, 0], [-100, -100], [0, 1]])
    _, m, _ = act_loss(
        logits=logits,
        labels=labels,
        q_halt=torch.zeros(3),
        q_continue=torch.zeros(3),
        target_q_continue=torch.full((3,), 0.5),
        halted=torch.tensor([True, True, False]),
        steps=torch.tensor([1, 1, 1]),
        loss_type="softmax_cross_entropy",
    )
    assert m["count"] == 1  # seq 1 has no valid label, seq 2 is not halted
    assert math.isclose(m["q_continue_loss"].item(), 3 * math.log(2), rel_tol=1e-5)
