"""Tests for the hand-written autograd functions of the pairwise, hierarchical_xe, emd and partial_credit
losses: value and gradient against autograd of the straightforward formula in float64 (per sample,
batch mean, uneven upstream gradients), trees of every layout (round-robin, sorted, shuffled, padded,
unbalanced: scattered), extreme logits in float32 against float64, ties, and no host reads; and those
of focal and slace against the autograd composites they replaced (kept here as references; +-1e4
logits, gradcheck, float32 and half-precision logits).

Run: cd /work/main && .venv/bin/python -m pytest tests/core/test_losses_fast_paths.py -q
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core.losses import (
    EMDLoss,
    FocalLoss,
    HierarchicalXELoss,
    PairwiseLoss,
    PartialCreditLoss,
    SLACELoss,
    log1m_softmax,
)
from tests.core.test_losses import _HostReads

# --- straightforward formulas (differentiated by autograd) --------------------------------------------


def naive_log1m_softmax(z):
    """log(1 - p) with the top class from logsumexp of the others (exact in float64 for these inputs)."""
    log_p = torch.log_softmax(z, dim=1)
    top = z.argmax(dim=1, keepdim=True)
    others = torch.logsumexp(z.scatter(1, top, float("-inf")), dim=1, keepdim=True)
    top_value = others - torch.logsumexp(z, dim=1, keepdim=True)
    rest = torch.log1p(-torch.exp(log_p.scatter(1, top, -1.0)))
    return rest.scatter(1, top, top_value)


def naive_pairwise(z, y, cost):
    cost = cost.to(z.dtype)[y]
    log_p_y = torch.log_softmax(z, dim=1).gather(1, y[:, None]).squeeze(1)
    return -log_p_y - (cost * naive_log1m_softmax(z)).sum(dim=1)


def naive_partial_credit(z, y, s, min_similarity):
    log_p = torch.log_softmax(z, dim=1)
    pred = z.argmax(dim=1)
    sim = s.to(z.dtype)[y, pred]
    sim = torch.where((pred != y) & (sim >= min_similarity) & (sim > 0), sim, torch.zeros_like(sim))
    ce_y = -log_p.gather(1, y[:, None]).squeeze(1)
    ce_j = -log_p.gather(1, pred[:, None]).squeeze(1)
    return (ce_y + sim * ce_j) / (1 + sim)


def naive_emd(z, y, order, mean_over_classes):
    c = z.shape[1]
    p = torch.softmax(z[:, order], dim=1)
    rank = torch.argsort(order)[y]
    truth = (torch.arange(c - 1)[None, :] >= rank[:, None]).to(z.dtype)
    loss = (torch.cumsum(p, dim=1)[:, :-1] - truth).square().sum(dim=1)
    return loss / (c - 1) if mean_over_classes else loss


def naive_hxe(z, y, paths, alpha):
    """-sum_l exp(-alpha l) log(p(C_l) / p(C_l+1)) with p(node) = sum of the probabilities below it."""
    p = torch.softmax(z, dim=1)
    below: dict = {}
    for k, path in enumerate(paths):
        for node in path:
            below.setdefault(node, []).append(k)
    out = []
    for row, t in zip(p, y.tolist()):
        path = paths[t]
        mass = [row[below[node]].sum() for node in path]
        terms = [math.exp(-alpha * l) * torch.log(mass[l] / mass[l + 1]) for l in range(len(path) - 1)]
        out.append(-torch.stack(terms).sum())
    return torch.stack(out)


def check_against(loss, naive, z, y, rtol=1e-10, atol=1e-12):
    """Per sample with an uneven upstream gradient, and the fused batch mean: value and gradient."""
    w = torch.rand(z.shape[0], dtype=z.dtype, generator=torch.Generator().manual_seed(1)) + 0.5
    z1, z2, z3 = (z.clone().requires_grad_(True) for _ in range(3))
    got, want = loss.per_sample(z1, y), naive(z2, y)
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol)
    (got * w).sum().backward()
    (want * w).sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=rtol, atol=atol)
    mean = loss(z3, y)
    torch.testing.assert_close(mean, want.mean(), rtol=rtol, atol=atol)
    mean.backward()
    torch.testing.assert_close(z3.grad, z2.grad / w[:, None] / z.shape[0], rtol=rtol, atol=atol)


def batch(seed, n, c, scale=3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=dtype) * scale, torch.randint(0, c, (n,), generator=g)


def ordinal(c, factor=0.7):
    i = torch.arange(c, dtype=torch.float64)
    return factor ** (i[:, None] - i[None, :]).abs()


def similarity_with_zeros(c, seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(c, c, generator=g, dtype=torch.float64)
    s = torch.where(s < 0.4, torch.zeros_like(s), (s + s.T) / 2)
    return s.fill_diagonal_(1.0)


# trees: name -> paths (class k: [class, parent, ..., root])
def _two_level(c, groups, assign):
    return [[f"c{k}", f"g{assign(k)}"] for k in range(c)]


TREES = {
    "round_robin": _two_level(23, 5, lambda k: k % 5),  # groups of 5 and 4, interleaved: no gather
    "sorted": _two_level(20, 4, lambda k: k // 5),  # contiguous equal groups
    "shuffled": [[f"c{k}", f"g{v}"] for k, v in enumerate([3, 0, 2, 2, 1, 0, 3, 1, 0, 2, 1, 3, 3])],
    "uneven": [[f"c{k}", f"g{v}"] for k, v in enumerate([0, 3, 1, 0, 3, 2, 2, 3, 1, 2, 3])],  # 2-4: padded
    "lopsided": [[f"c{k}", "big" if k < 30 else f"g{k}"] for k in range(36)],  # 1 x 30 + 6 x 1: scattered
    "flat": [[f"c{k}", "root"] for k in range(6)],
    "deep_unbalanced": [
        ["c0", "a", "ab", "r"],
        ["c1", "a", "ab", "r"],
        ["c2", "b", "ab", "r"],
        ["c3", "b", "ab", "r"],
        ["c4", "r"],
        ["c5", "d", "r"],
        ["c6", "e", "f", "g", "r"],
        ["c7", "e", "f", "g", "r"],
    ],
    "forest": [["c0", "a"], ["c1", "a"], ["c2", "b"], ["c3", "x", "b"], ["c4", "x", "b"], ["c5", "c"]],
}


# --- value and gradient against the formula ------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("c", [2, 3, 7, 40])
def test_pairwise_matches_the_formula(seed, c):
    s = ordinal(c) if seed % 2 else similarity_with_zeros(c, seed)
    loss = PairwiseLoss(s).double()
    z, y = batch(seed, 33, c)
    check_against(loss, lambda x, t: naive_pairwise(x, t, loss.cost), z, y)


@pytest.mark.parametrize("min_similarity", [0.0, 0.3])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("c", [2, 5, 40])
def test_partial_credit_matches_the_formula(seed, c, min_similarity):
    s = ordinal(c, 0.8) if seed % 2 else similarity_with_zeros(c, seed)
    loss = PartialCreditLoss(s, min_similarity=min_similarity).double()
    z, y = batch(seed, 33, c, scale=1.0)
    check_against(loss, lambda x, t: naive_partial_credit(x, t, loss.similarity, min_similarity), z, y)


@pytest.mark.parametrize("mean_over_classes", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("c", [2, 3, 9, 40])
def test_emd_matches_the_formula(c, shuffle, mean_over_classes):
    order = torch.randperm(c, generator=torch.Generator().manual_seed(c)) if shuffle else torch.arange(c)
    loss = EMDLoss(c, order=order, mean_over_classes=mean_over_classes).double()
    assert loss.identity_order == (not shuffle or torch.equal(order, torch.arange(c)))
    z, y = batch(c, 33, c)
    check_against(loss, lambda x, t: naive_emd(x, t, order, mean_over_classes), z, y)


@pytest.mark.parametrize("alpha", [0.1, 1.5])
@pytest.mark.parametrize("name", list(TREES))
def test_hierarchical_xe_matches_the_formula(name, alpha):
    paths = TREES[name]
    loss = HierarchicalXELoss(paths, alpha=alpha).double()
    z, y = batch(len(name), 29, len(paths))
    roots = {p[-1] for p in paths}
    full = paths if len(roots) == 1 else [p + ["<root>"] for p in paths]
    # the module keeps its telescoped weights in float32, as it always has
    check_against(loss, lambda x, t: naive_hxe(x, t, full, alpha), z, y, rtol=1e-6, atol=1e-9)


def test_the_trees_cover_every_level_layout():
    """The cases above go through the view, gather, padded and scattered layouts of a level."""
    kinds = set()
    for paths in TREES.values():
        kinds |= {level.kind for level in HierarchicalXELoss(paths)._levels}
    assert kinds == {"view", "gather", "padded", "scatter"}
    assert [lv.kind for lv in HierarchicalXELoss(TREES["round_robin"])._levels] == ["view", "view"]


@pytest.mark.parametrize("name", ["round_robin", "shuffled", "uneven", "lopsided", "deep_unbalanced"])
def test_hierarchical_xe_gradcheck(name):
    paths = TREES[name]
    loss = HierarchicalXELoss(paths, alpha=0.7).double()
    z, y = batch(5, 6, len(paths), scale=2.0)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (z,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda x: loss.per_sample(x, y), (z,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("make", ["pairwise", "partial_credit", "emd"])
def test_gradcheck_per_sample(make):
    c = 6
    loss = {
        "pairwise": lambda: PairwiseLoss(similarity_with_zeros(c, 0)),
        "partial_credit": lambda: PartialCreditLoss(ordinal(c), min_similarity=0.2),
        "emd": lambda: EMDLoss(c, order=torch.tensor([3, 1, 0, 5, 2, 4]), mean_over_classes=True),
    }[make]().double()
    z, y = batch(8, 7, c, scale=2.0)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss.per_sample(x, y), (z,), eps=1e-6, atol=1e-6)


# --- extremes, ties --------------------------------------------------------------------------------------

EXTREME = [
    [-1e4, 1e4, 0.0, 0.0, 0.0, 3.0],
    [1e4, -1e4, 1e4, -1e4, 0.0, 0.0],
    [-1e4] * 6,
    [1e4] * 6,
    [0.0, 0.0, 1e4, 0.0, -1e4, 1.0],
    [-1e4, -1e4, -1e4, -1e4, 1e4, 9990.0],
    [30.0, 0.0, -5.0, 0.0, 1.0, 2.0],
    [5.0, 5.0, 5.0, -300.0, -800.0, 0.0],
]
EXTREME_TARGETS = [0, 3, 2, 5, 1, 0, 0, 4]


@pytest.mark.parametrize("make", ["pairwise", "partial_credit", "emd", "hierarchical_xe"])
def test_float32_at_extremes_matches_float64(make):
    """Exact in log space: float32 gives the float64 loss and gradient, finite, at logits of +-1e4."""
    loss = {
        "pairwise": lambda: PairwiseLoss(similarity_with_zeros(6, 1)),
        "partial_credit": lambda: PartialCreditLoss(ordinal(6)),
        "emd": lambda: EMDLoss(6),
        "hierarchical_xe": lambda: HierarchicalXELoss(TREES["deep_unbalanced"][:6]),
    }[make]()
    y = torch.tensor(EXTREME_TARGETS)
    values, grads = [], []
    for dtype in (torch.float32, torch.float64):
        z = torch.tensor(EXTREME, dtype=dtype, requires_grad=True)
        value = loss.to(dtype).per_sample(z, y)
        value.sum().backward()
        assert torch.isfinite(value).all() and torch.isfinite(z.grad).all()
        values.append(value.double())
        grads.append(z.grad.double())
    # hierarchical_xe's node lse values carry the logits' magnitude: float32 rounds them to ulp(1e4) ~ 1e-3
    # (as the previous autograd version did), so its upper levels are only that close
    coarse = make == "hierarchical_xe"
    torch.testing.assert_close(values[0], values[1], rtol=1e-6, atol=2e-3 if coarse else 1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-3 if coarse else 1e-6)


def test_pairwise_top_class_is_exact_where_one_minus_p_underflows():
    # 1 - p_0 = (e^0 + e^-5 + ...) / Z: about e^-30 (and e^-1e4): exact though p_0 rounds to 1
    z = torch.tensor([[30.0, 0.0, -5.0], [1e4, -1e4, 0.0]], dtype=torch.float64)
    loss = PairwiseLoss(torch.eye(3)).double()  # cost 1 off the diagonal
    got = loss.per_sample(z, torch.tensor([1, 2]))
    want = naive_pairwise(z, torch.tensor([1, 2]), loss.cost)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0.0)
    assert got[1].item() == pytest.approx(1e4 + 1e4, rel=1e-9)  # -log p_2 - log(1 - p_0) - ~0
    torch.testing.assert_close(log1m_softmax(z), naive_log1m_softmax(z), rtol=1e-12, atol=1e-300)


def test_partial_credit_breaks_ties_like_argmax():
    s = torch.tensor([[1.0, 0.5, 0.9], [0.5, 1.0, 0.2], [0.9, 0.2, 1.0]])
    z = torch.tensor([[0.0, 2.0, 2.0], [3.0, 1.0, 3.0], [1.0, 1.0, 1.0]], requires_grad=True)
    y = torch.tensor([0, 1, 2])
    got = PartialCreditLoss(s).per_sample(z, y)
    z2 = z.detach().clone().requires_grad_(True)
    want = naive_partial_credit(z2, y, s, 0.0)  # argmax: the first of the tied classes
    torch.testing.assert_close(got, want)
    got.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(z.grad, z2.grad)


# --- no host reads (a GPU would synchronise) -----------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: PairwiseLoss(similarity_with_zeros(40, 0)),
        lambda: PartialCreditLoss(ordinal(40), min_similarity=0.3),
        lambda: EMDLoss(40),
        lambda: EMDLoss(40, order=torch.randperm(40, generator=torch.Generator().manual_seed(0))),
        *[lambda paths=paths: HierarchicalXELoss(paths) for paths in TREES.values()],
    ],
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


# --- focal and slace: the closed-form functions against the composites they replaced ----------------------


def composite_focal(z, y, gamma, class_weights):
    """The previous FocalLoss.per_sample: two logsumexps, differentiated by autograd."""
    t = y[:, None]
    lse = torch.logsumexp(z, dim=1)
    log_p = z.gather(1, t).squeeze(1) - lse
    others = torch.logsumexp(z.scatter(1, t, float("-inf")), dim=1)
    modulation = torch.exp(gamma * (others - lse).clamp(max=0.0))
    return -(class_weights.to(z.dtype).index_select(0, y) * modulation * log_p)


def _composite_log_gaps(x):
    c = torch.logcumsumexp(x, dim=1)
    return c[:, -1:] - c


def _composite_direct_gaps(x):
    s = torch.cumsum(torch.exp(x - x.detach().amax(dim=1, keepdim=True)), dim=1)
    small = s[:, 0] < torch.finfo(x.dtype).tiny ** 0.5
    if not bool(small.any()):
        return torch.log(s[:, -1:] / s)
    s = torch.where(small[:, None], torch.ones_like(s), s)
    gap = torch.log(s[:, -1:] / s)
    rows = small.nonzero().squeeze(1)
    return gap.index_copy(0, rows, _composite_log_gaps(x.index_select(0, rows)))


def composite_slace(z, y, loss, algorithm):
    """The previous SLACELoss.per_sample (both algorithms), differentiated by autograd."""
    ordered = z.gather(1, loss.by_distance.index_select(0, y))
    gap = _composite_log_gaps(ordered) if algorithm == "log_space" else _composite_direct_gaps(ordered)
    return (gap * loss.group_mass.index_select(0, y).to(z.dtype)).sum(dim=1)


def with_extremes(z, y):
    """A batch with rows of +-1e4 logits appended (p_y rounding to 1 and to 0, sums that underflow)."""
    c = z.shape[1]
    rows = torch.tensor(EXTREME, dtype=z.dtype)[:, torch.arange(c) % 6]
    rows[:, 0] = rows[:, 0] - 1e4 * (c > 6)  # a truth far below the rest when y = 0
    return torch.cat([z, rows]), torch.cat([y, torch.tensor(EXTREME_TARGETS) % c])


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 7.0])
@pytest.mark.parametrize("c", [2, 7, 40])
def test_focal_matches_the_composite(c, gamma):
    weights = torch.rand(c, generator=torch.Generator().manual_seed(c))
    loss = FocalLoss(c, gamma=gamma, alpha=weights).double()
    z, y = with_extremes(*batch(c, 33, c, scale=4.0))
    check_against(loss, lambda x, t: composite_focal(x, t, gamma, loss.class_weights), z, y)


@pytest.mark.parametrize("algorithm", ["direct", "log_space"])
@pytest.mark.parametrize("alpha", [0.3, 1.0, 100.0])  # 100: far groups get no target mass (0 weights)
@pytest.mark.parametrize("c", [2, 6, 40])
def test_slace_matches_the_composite(c, alpha, algorithm):
    order = torch.randperm(c, generator=torch.Generator().manual_seed(c))
    loss = SLACELoss(c, alpha=alpha, order=order, algorithm=algorithm).double()
    z, y = with_extremes(*batch(c, 33, c, scale=4.0))
    check_against(loss, lambda x, t: composite_slace(x, t, loss, algorithm), z, y)


def test_focal_at_gamma_zero_is_weighted_cross_entropy():
    z, y = with_extremes(*batch(3, 40, 9))
    weights = torch.rand(9, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    loss = FocalLoss(9, gamma=0.0, alpha=weights).double()
    check_against(loss, lambda x, t: F.cross_entropy(x, t, reduction="none") * loss.class_weights[t], z, y)


@pytest.mark.parametrize(
    "make",
    [
        lambda: FocalLoss(6, gamma=2.0, alpha=torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9, 1.0])),
        lambda: FocalLoss(6, gamma=0.0),
        lambda: SLACELoss(6, alpha=0.7, order=torch.tensor([3, 1, 0, 5, 2, 4]), algorithm="direct"),
        lambda: SLACELoss(6, alpha=0.7, order=torch.tensor([3, 1, 0, 5, 2, 4]), algorithm="log_space"),
    ],
    ids=["focal", "focal_gamma0", "slace_direct", "slace_log_space"],
)
def test_focal_and_slace_gradcheck(make):
    loss = make().double()
    z, y = batch(8, 7, 6, scale=2.0)
    z[0, y[0]] = -800.0  # slace direct: a row recomputed in log space; focal: p_y ~ 0
    z[1, y[1]] = 800.0  # p_y rounds to 1
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss.per_sample(x, y), (z,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (z,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "kind, make",
    [
        ("focal", lambda: FocalLoss(6, gamma=2.0, alpha=0.25)),
        ("slace_direct", lambda: SLACELoss(6, alpha=0.8, algorithm="direct")),
        ("slace_log_space", lambda: SLACELoss(6, alpha=0.8, algorithm="log_space")),
    ],
)
def test_focal_and_slace_float32_match_float64(kind, make):
    """Random rows to 1e-5 of the float64 composite; with the +-1e4 rows, at most as far from it as the
    float32 composite was (in log space the logits' magnitude rounds to ulp(1e4) ~ 1e-3 in float32)."""
    loss = make()
    z64, y = with_extremes(*batch(2, 40, 6, scale=4.0))
    if kind == "focal":
        composite = lambda x: composite_focal(x, y, 2.0, loss.class_weights)
    else:
        composite = lambda x: composite_slace(x, y, loss, kind.removeprefix("slace_"))
    results = {}
    for name, fn, dtype in [("new", loss.per_sample, torch.float32), ("old32", None, torch.float32)]:
        x = z64.to(dtype).requires_grad_(True)
        value = fn(x, y) if fn else composite(x)
        value.sum().backward()
        assert torch.isfinite(value).all() and torch.isfinite(x.grad).all()
        results[name] = (value.detach().double(), x.grad.double())
    x = z64.clone().requires_grad_(True)
    value = composite(x)
    value.sum().backward()
    want = (value.detach(), x.grad)
    for i in range(2):
        got, old = results["new"][i], results["old32"][i]
        torch.testing.assert_close(got[:40], want[i][:40], rtol=1e-5, atol=1e-5)
        assert (got - want[i]).abs().max() <= (old - want[i]).abs().max() * 1.01 + 1e-6


@pytest.mark.parametrize(
    "make", [lambda: FocalLoss(10, gamma=2.0), lambda: SLACELoss(10, algorithm="log_space")], ids=["f", "s"]
)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_focal_and_slace_take_half_precision_logits(make, dtype):
    """Logits in bf16 / fp16 (what a model gives under autocast): finite, close to float32 on the same
    (rounded) logits, the gradient in the logits' dtype."""
    loss = make()
    z, y = batch(5, 32, 10, scale=3.0, dtype=torch.float32)  # (at +-1e4 a half's ulp is 8 or 64)
    z = z.to(dtype).float()
    grads, values = [], []
    for d in (dtype, torch.float32):
        x = z.to(d).requires_grad_(True)
        value = loss.per_sample(x, y)
        value.sum().backward()
        assert x.grad.dtype == d and torch.isfinite(value).all() and torch.isfinite(x.grad).all()
        assert torch.isfinite(loss(x, y)) and loss(x, y).dtype == d
        values.append(value.float())
        grads.append(x.grad.float())
    torch.testing.assert_close(values[0], values[1], rtol=0.02, atol=0.02)
    torch.testing.assert_close(grads[0], grads[1], rtol=0.02, atol=0.02)
