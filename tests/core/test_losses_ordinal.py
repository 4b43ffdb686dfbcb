"""Tests for the ordinal losses (cdw_ce, weighted_kappa, slace, unimodal_soft_labels), focal and the
published-convention options (soft_labels `normalise`, hierarchical_xe `weighting`) beyond the shared
reference cases of test_losses.py: value and gradient against autograd of the straightforward formula
(per sample, uneven upstream gradients, batch mean), exactness where the peers saturate, special cases,
the unimodal tables' shape, class order from ordinal values, and no host reads.

Run: cd /work/main && .venv/bin/python -m pytest tests/core/test_losses_ordinal.py -q
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import cohen_kappa_score

from core.errors import SpecError
from core.losses import (
    UNIMODAL_FAMILIES,
    CDWCELoss,
    FocalLoss,
    HierarchicalXELoss,
    PairwiseLoss,
    SLACELoss,
    SoftLabelLoss,
    UnimodalSoftLabelLoss,
    WeightedKappaLoss,
    build_loss,
    unimodal_table,
)
from tests.core.test_losses import _HostReads, ref_slace
from tests.core.test_losses_fast_paths import (
    EXTREME,
    EXTREME_TARGETS,
    batch,
    check_against,
    naive_log1m_softmax,
)

# --- cdw_ce --------------------------------------------------------------------------------------------


def naive_cdw_ce(z, y, alpha, order=None, cost=None):
    """-sum_c |r_c - r_y| ** alpha log(1 - p_c) (with `cost`: the module's float32 weights, exactly)."""
    c = z.shape[1]
    rank = torch.argsort(torch.arange(c) if order is None else order).to(z.dtype)
    w = (rank[:, None] - rank[None, :]).abs().pow(alpha) if cost is None else cost.to(z.dtype)
    return -(w[y] * naive_log1m_softmax(z)).sum(dim=1)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 5.0])
@pytest.mark.parametrize("c", [2, 3, 9, 40])
def test_cdw_ce_matches_the_formula(c, alpha):
    order = torch.randperm(c, generator=torch.Generator().manual_seed(c))
    loss = CDWCELoss(c, alpha=alpha, order=order).double()
    z, y = batch(c, 33, c)
    rank = torch.argsort(order).double()
    torch.testing.assert_close(
        loss.cost.double(), (rank[:, None] - rank[None, :]).abs().pow(alpha), rtol=1e-7, atol=0
    )
    check_against(loss, lambda x, t: naive_cdw_ce(x, t, alpha, cost=loss.cost), z, y, rtol=1e-9, atol=1e-10)


def test_cdw_ce_is_pairwise_without_its_cross_entropy():
    z, y = batch(1, 20, 6, scale=1.0)
    cdw = CDWCELoss(6, alpha=1.0).double()
    pair = PairwiseLoss(torch.eye(6)).double()
    pair.cost = cdw.cost.clone()
    want = pair.per_sample(z, y) - F.cross_entropy(z, y, reduction="none")
    torch.testing.assert_close(cdw.per_sample(z, y), want, rtol=1e-10, atol=1e-12)


def test_cdw_ce_float32_at_extremes_matches_float64():
    loss = CDWCELoss(6, alpha=2.0)
    y = torch.tensor(EXTREME_TARGETS)
    out = []
    for dtype in (torch.float32, torch.float64):
        z = torch.tensor(EXTREME, dtype=dtype, requires_grad=True)
        value = loss.to(dtype).per_sample(z, y)
        value.sum().backward()
        assert torch.isfinite(value).all() and torch.isfinite(z.grad).all()
        out.append((value.double(), z.grad.double()))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-5, atol=1e-6)
    # where the top class is wrong and p_top rounds to 1, -log(1 - p_top) is still exact: 2e4 here
    z = torch.tensor([[1e4, -1e4, 0.0]], dtype=torch.float64)
    assert CDWCELoss(3, alpha=1.0).double()(z, torch.tensor([2])).item() == pytest.approx(2 * 1e4, rel=1e-9)


# --- weighted_kappa ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("weighting", ["linear", "quadratic"])
def test_weighted_kappa_is_one_minus_cohens_kappa_for_confident_predictions(weighting):
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 5, (200,), generator=g)
    pred = torch.where(torch.rand(200, generator=g) < 0.7, y, torch.randint(0, 5, (200,), generator=g))
    logits = F.one_hot(pred, 5).double() * 60.0  # softmax is one-hot to 1e-26
    got = WeightedKappaLoss(5, weighting=weighting).double()(logits, y).item()
    assert got == pytest.approx(1 - cohen_kappa_score(y.numpy(), pred.numpy(), weights=weighting), rel=1e-9)


def test_weighted_kappa_special_batches():
    loss = WeightedKappaLoss(4).double()
    z, y = batch(0, 1, 4)
    assert loss(z, y).item() == pytest.approx(1.0)  # one sample: observed = expected
    y = torch.tensor([0, 1, 2, 3])
    assert loss(F.one_hot(y, 4).double() * 1e4, y).item() == 0.0  # perfect agreement
    assert loss(F.one_hot(y.flip(0), 4).double() * 1e4, y).item() > 1.0  # systematic disagreement
    same = torch.zeros(3, dtype=torch.long)
    z = F.one_hot(same, 4).float() * 1e4  # every truth and prediction one class: 0, not 0 / 0
    z.requires_grad_(True)
    value = loss.float()(z, same)
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(z.grad).all()


def test_weighted_kappa_per_sample_shares_average_to_the_batch_loss():
    loss = WeightedKappaLoss(5, weighting="linear").double()
    z, y = batch(2, 17, 5)
    assert loss.per_sample(z, y).mean().item() == pytest.approx(loss(z, y).item(), rel=1e-12)
    combined = build_loss(
        {
            "kind": "combined",
            "components": [
                {"weight": 0.5, "loss": {"kind": "cross_entropy"}},
                {"weight": 2.0, "loss": {"kind": "weighted_kappa", "weighting": "linear"}},
            ],
        },
        None,
        [f"c{i}" for i in range(5)],
    ).double()
    want = 0.5 * F.cross_entropy(z, y) + 2.0 * loss(z, y)
    assert combined(z, y).item() == pytest.approx(want.item(), rel=1e-12)


# --- slace -------------------------------------------------------------------------------------------------


def test_slace_is_exact_where_the_accumulated_mass_underflows_1e9():
    z = torch.tensor([[-60.0, 0.0, 5.0, 0.0, 1.0], [0.0, 0.0, -80.0, 3.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    got = SLACELoss(5, alpha=2.0).double()(z, y).item()
    assert got == pytest.approx(ref_slace(z, y, 2.0), rel=1e-7)  # the targets are float32 buffers
    assert got > 50  # dlordinal's log(A + 1e-9) would stop near -log(1e-9) ~ 20.7 per term


def test_slace_gradcheck_per_sample_and_float32_extremes():
    loss = SLACELoss(6, alpha=0.7, order=torch.tensor([3, 1, 0, 5, 2, 4])).double()
    z, y = batch(4, 7, 6, scale=2.0)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss.per_sample(x, y), (z,), eps=1e-6, atol=1e-6)
    z = torch.tensor(EXTREME, requires_grad=True)
    value = loss.float().per_sample(z, torch.tensor(EXTREME_TARGETS))
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(z.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_slace_direct_and_log_space_agree_also_where_the_direct_sums_underflow(dtype):
    z, y = batch(9, 30, 6, scale=4.0, dtype=dtype)
    z = torch.cat([z, torch.tensor(EXTREME, dtype=dtype)])  # rows recomputed in log space
    y = torch.cat([y, torch.tensor(EXTREME_TARGETS)])
    grads, values = [], []
    for algorithm in ("direct", "log_space"):
        x = z.clone().requires_grad_(True)
        value = SLACELoss(6, alpha=0.8, algorithm=algorithm).to(dtype).per_sample(x, y)
        value.sum().backward()
        assert torch.isfinite(value).all() and torch.isfinite(x.grad).all()
        values.append(value)
        grads.append(x.grad)
    # float32 log space carries the logits' magnitude: logcumsumexp of -1e4's rounds to ulp(1e4) ~ 1e-3
    tol = {"rtol": 1e-5, "atol": 2e-3} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-10}
    torch.testing.assert_close(values[0], values[1], **tol)
    torch.testing.assert_close(grads[0], grads[1], **tol)
    with pytest.raises(ValueError, match="algorithm"):
        SLACELoss(6, algorithm="fast")


# --- unimodal soft labels --------------------------------------------------------------------------------


def _families(c):
    return [f for f in UNIMODAL_FAMILIES if f != "beta" or 3 <= c <= 14]


@pytest.mark.parametrize("c", [2, 3, 5, 8, 14, 30])
def test_unimodal_tables_are_distributions_peaked_at_the_class(c):
    for family in _families(c):
        t = unimodal_table(family, c)
        assert t.shape == (c, c) and (t >= 0).all()
        torch.testing.assert_close(t.sum(dim=1), torch.ones(c, dtype=torch.float64))
        theta = torch.linspace(0.1, 0.9, c, dtype=torch.float64)
        for k in range(c):
            row = t[k]
            peak = int(row.argmax())
            if family == "binomial":  # the mode of Binomial(C - 1, theta_k), not always k
                assert peak == min(int(c * theta[k] + 1e-12), c - 1), (k, row)
            else:
                assert abs(peak - k) <= (1 if family == "poisson" else 0), (family, k, row)
            # unimodal: non-decreasing up to the peak, non-increasing after it
            assert (row[1 : peak + 1] >= row[:peak] - 1e-12).all(), (family, k)
            assert (row[peak + 1 :] <= row[peak:-1] + 1e-12).all(), (family, k)


def test_triangular_puts_alpha2_on_each_neighbour_of_a_middle_class():
    t = unimodal_table("triangular", 7, alpha2=0.05)
    for k in range(1, 6):
        assert t[k, k - 1].item() == pytest.approx(0.05, abs=1e-6)
        assert t[k, k + 1].item() == pytest.approx(0.05, abs=1e-6)
        assert t[k, k].item() == pytest.approx(0.9, abs=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: UnimodalSoftLabelLoss(6, "triangular", alpha2=0.0),
        lambda: UnimodalSoftLabelLoss(6, "binomial", eta=0.0),
        lambda: FocalLoss(6, gamma=0.0),
        lambda: SoftLabelLoss(torch.eye(6)),
    ],
)
def test_special_cases_are_cross_entropy(make):
    z, y = batch(5, 16, 6)
    torch.testing.assert_close(make().double()(z, y), F.cross_entropy(z, y), rtol=1e-6, atol=1e-7)


def test_beta_needs_a_published_class_count():
    for c in (2, 15):
        with pytest.raises(SpecError, match="3 to 14 classes") as info:
            build_loss({"kind": "unimodal_soft_labels", "family": "beta"}, None, [f"c{i}" for i in range(c)])
        assert info.value.field == "loss.family"


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "unimodal_soft_labels", "family": "exponential", "p": 2.0},
        {"kind": "unimodal_soft_labels", "family": "beta"},
        {"kind": "cdw_ce", "alpha": 1.5},
        {"kind": "slace", "alpha": 0.5},
        {"kind": "weighted_kappa"},
        {"kind": "emd"},
    ],
    ids=lambda s: s.get("family", s["kind"]),
)
def test_ordinal_values_order_the_classes(spec):
    """Classes listed out of order with `values` give the loss of the same classes listed in order."""
    shuffled = [3, 0, 4, 1, 2]  # class k of the dataset is the shuffled[k]-th in value order
    classes = [f"c{i}" for i in range(5)]
    values = {f"c{k}": float(10 * v) for k, v in enumerate(shuffled)}
    z, y = batch(6, 12, 5)
    got = build_loss(spec, None, classes, {"kind": "ordinal", "values": values}).double()(z, y)
    in_order = torch.empty_like(z)
    in_order[:, shuffled] = z  # column shuffled[k] of the ordered problem is dataset class k
    want = build_loss(spec, None, classes).double()(in_order, torch.tensor(shuffled)[y])
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


# --- focal ------------------------------------------------------------------------------------------------


def test_focal_is_exact_where_p_y_rounds_to_one():
    z = torch.tensor([[40.0, 0.0, 0.0], [1e4, -1e4, 0.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0])
    loss = FocalLoss(3, gamma=0.5).double()
    value = loss.per_sample(z, y)
    # (1 - p_0) = 2e^-40 / (1 + 2e^-40), -log p_0 = log(1 + 2e^-40)
    one_minus = 2 * math.exp(-40) / (1 + 2 * math.exp(-40))
    assert value[0].item() == pytest.approx(one_minus**0.5 * math.log1p(2 * math.exp(-40)), rel=1e-9)
    value.sum().backward()
    assert torch.isfinite(z.grad).all()


def test_focal_alpha_scales_each_class():
    z, y = batch(7, 10, 4)
    plain = FocalLoss(4, gamma=2.0).double().per_sample(z, y)
    weights = torch.tensor([0.1, 0.2, 0.7, 1.0], dtype=torch.float64)
    weighted = FocalLoss(4, gamma=2.0, alpha=weights).double().per_sample(z, y)
    torch.testing.assert_close(weighted, plain * weights[y])


# --- published conventions --------------------------------------------------------------------------------


def test_mbm_code_weighting_on_a_flat_tree_is_scaled_cross_entropy():
    alpha, c = 0.4, 6
    z, y = batch(8, 10, c)
    loss = HierarchicalXELoss([[f"c{i}", "root"] for i in range(c)], alpha=alpha, weighting="mbm_code")
    scale = math.exp(-alpha) / (1 + c * math.exp(-alpha))  # root depth 0, C leaves at depth 1
    torch.testing.assert_close(loss.double()(z, y), scale * F.cross_entropy(z, y), rtol=1e-6, atol=1e-8)


def test_softmax_normalise_is_ludwigs_target_even_at_identity():
    q = SoftLabelLoss(torch.eye(3), temperature=0.5, normalise="softmax").target_probs
    e = math.exp(2.0)
    torch.testing.assert_close(q[0], torch.tensor([e, 1.0, 1.0]) / (e + 2), rtol=1e-6, atol=1e-7)


# --- no host reads (a GPU would synchronise) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: CDWCELoss(40, alpha=1.0),
        lambda: WeightedKappaLoss(40),
        lambda: SLACELoss(
            40, order=torch.randperm(40, generator=torch.Generator().manual_seed(0)), algorithm="log_space"
        ),
        lambda: UnimodalSoftLabelLoss(40, "exponential", algorithm="log_space"),  # the CUDA default
        lambda: FocalLoss(40, gamma=2.0, alpha=0.25),
        lambda: HierarchicalXELoss([[f"c{i}", f"g{i % 5}"] for i in range(40)], weighting="mbm_code"),
    ],
    ids=["cdw_ce", "weighted_kappa", "slace", "unimodal", "focal", "hxe_mbm"],
)
def test_forward_and_backward_never_read_the_host(make):
    loss = make()
    z, y = batch(0, 64, loss.num_classes, dtype=torch.float32)
    for reduce in (loss, lambda a, b: loss.per_sample(a, b).sum()):
        x = z.clone().requires_grad_(True)
        with _HostReads() as mode:
            value = reduce(x, y)
            value.backward()
        assert mode.reads == [], mode.reads
        assert torch.isfinite(x.grad).all()
