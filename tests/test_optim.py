"""AdamATan2, sparse sign-SGD, schedule and EMA against hand computations."""

import math

import pytest
import torch
from torch import nn

from trmkit.models.sparse_embedding import SparsePuzzleEmbedding
from trmkit.training.ema import EMA
from trmkit.training.optim import AdamATan2, SparseSignSGD, build_optimizers
from trmkit.training.schedule import lr_at


@pytest.mark.parametrize("foreach", [True, False])
def test_adam_atan2_steps_by_hand(foreach):
    """adam-atan2 0.0.3: the first bias correction scales the step outside the atan2."""
    p = nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    q = nn.Parameter(torch.tensor([[0.25]], dtype=torch.float64))  # a second tensor, same group
    opt = AdamATan2([p, q], lr=0.1, betas=(0.9, 0.95), weight_decay=0.5, foreach=foreach)
    w, m, v = [1.0, -2.0, 0.5, 0.25], [0.0] * 4, [0.0] * 4
    history = ([0.3, -0.4, 0.0, 1.0], [0.1, 0.2, -1e-3, -2.0], [-0.5, 0.2, 3.0, 0.0], [0.0] * 4)
    for t, grads in enumerate(history, start=1):
        p.grad = torch.tensor(grads[:3], dtype=torch.float64)
        q.grad = torch.tensor([[grads[3]]], dtype=torch.float64)
        opt.step()
        for i, g in enumerate(grads):
            w[i] *= 1 - 0.1 * 0.5
            m[i] = m[i] + 0.1 * (g - m[i])
            v[i] = 0.95 * v[i] + 0.05 * g * g
            step = math.atan2(m[i], math.sqrt(v[i]) / math.sqrt(1 - 0.95**t))
            w[i] -= (0.1 / (1 - 0.9**t)) * step
        got = torch.cat([p.detach(), q.detach().view(-1)])
        assert torch.allclose(got, torch.tensor(w, dtype=torch.float64), atol=1e-12, rtol=0), t


@pytest.mark.parametrize("foreach", [True, False])
def test_adam_atan2_first_step_moves_almost_lr(foreach):
    # step 1: atan2(0.1 g, |g|) / 0.1 = 0.997 for any g != 0 (the 0.0.2 form gave pi/4 = 0.785)
    p = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = AdamATan2([p], lr=1e-3, foreach=foreach)
    p.grad = torch.tensor([2.0, -1e-6, 50.0], dtype=torch.float64)
    opt.step()
    expected = 1e-3 * math.atan2(0.1, 1.0) / 0.1
    assert expected == pytest.approx(0.9967e-3, rel=1e-4)
    assert torch.allclose(p.detach().abs(), torch.full((3,), expected, dtype=torch.float64))
    assert torch.equal(p.detach().sign(), -p.grad.sign())


def test_adam_atan2_first_step_is_bounded_and_lr_zero_is_allowed():
    p = nn.Parameter(torch.tensor([5.0]))
    opt = AdamATan2([p], lr=0.0)
    p.grad = torch.tensor([1e-12])
    opt.step()
    assert p.item() == 5.0
    opt.param_groups[0]["lr"] = 1.0
    opt.step()  # atan2 stays finite where Adam without eps would blow up
    assert math.isfinite(p.item())


def test_sparse_sign_sgd_touches_only_present_rows():
    emb = SparsePuzzleEmbedding(num_ids=5, dim=3)
    with torch.no_grad():
        emb.weights.copy_(torch.arange(15, dtype=torch.float32).view(5, 3) + 1)
    before = emb.weights.clone()
    emb.train()
    rows = emb(torch.tensor([1, 3, 1]))
    (rows * torch.tensor([[1.0, -1.0, 0.0], [2.0, 2.0, -2.0], [-3.0, 0.5, 0.0]])).sum().backward()
    opt = SparseSignSGD(emb, lr=0.1, weight_decay=0.5)
    opt.step()
    w = emb.weights
    # id 1 appears twice: grads summed -> [-2, -0.5, 0] -> sign [-1, -1, 0]
    assert torch.allclose(w[1], before[1] * (1 - 0.05) - 0.1 * torch.tensor([-1.0, -1.0, 0.0]))
    assert torch.allclose(w[3], before[3] * (1 - 0.05) - 0.1 * torch.tensor([1.0, 1.0, -1.0]))
    for untouched in (0, 2, 4):  # no decay on rows outside the batch
        assert torch.equal(w[untouched], before[untouched])
    assert emb.pending == []
    opt.step()  # nothing pending: no change
    assert torch.equal(emb.weights[1], w[1])


def test_eval_mode_reads_table_without_queue():
    emb = SparsePuzzleEmbedding(num_ids=2, dim=2)
    emb.eval()
    out = emb(torch.tensor([1]))
    assert not out.requires_grad and emb.pending == []


def test_schedule_values():
    assert lr_at(0, 1e-4, 2000, 10000, 1.0) == 0.0
    assert math.isclose(lr_at(1, 1e-4, 2000, 10000, 1.0), 1e-4 / 2000)
    assert lr_at(5000, 1e-4, 2000, 10000, 1.0) == 1e-4  # ratio 1.0: constant after warmup
    assert math.isclose(lr_at(2000, 1.0, 2000, 10000, 0.1), 1.0)
    assert math.isclose(lr_at(6000, 1.0, 2000, 10000, 0.1), 0.1 + 0.9 * 0.5)
    assert math.isclose(lr_at(10000, 1.0, 2000, 10000, 0.1), 0.1)


def test_ema_maths_and_swap():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, rate=0.9)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 0.9 * 1 + 0.1 * 3))
    with ema.swapped(model):
        assert torch.allclose(model.weight, torch.full((1, 2), 1.2))
    assert torch.all(model.weight == 3.0)
    state = ema.state_dict()
    other = EMA(model, rate=0.5)
    other.load_state_dict(state)
    assert other.rate == 0.9 and torch.allclose(other.shadow["weight"], ema.shadow["weight"])
    ema.copy_to(model)
    assert torch.allclose(model.weight, torch.full((1, 2), 1.2))


def test_build_optimizers_has_base_lr():
    from trmkit.config import OptimSection
    from trmkit.models import build_model

    model = build_model(
        "trm",
        dict(
            seq_len=4, vocab_size=3, hidden_size=8, num_heads=2, puzzle_emb_ndim=8, puzzle_emb_len=1
        ),
    )
    dense, sparse = build_optimizers(model, OptimSection(lr=3e-4, puzzle_emb_lr=1e-2))
    assert dense.param_groups[0]["base_lr"] == 3e-4 and sparse.param_groups[0]["base_lr"] == 1e-2
    assert isinstance(dense, AdamATan2) and isinstance(sparse, SparseSignSGD)
    n_params = sum(1 for p in model.parameters() if p.requires_grad)
    assert len(dense.param_groups[0]["params"]) == n_params
