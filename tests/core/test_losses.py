"""Tests for core.losses: every loss against a naive float64 reference, gradcheck, extreme logits,
zeros in S, special cases (S = I), O(N * C) memory, and every rejected spec.

Run: cd /work/main && /tmp/venv/bin/pytest tests/core/test_losses.py -q
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch.utils._python_dispatch import TorchDispatchMode

from core.errors import SpecError
from core.losses import (
    LOSS_KINDS,
    NEEDS_SIMILARITY,
    CDWCELoss,
    CrossEntropyLoss,
    EMDLoss,
    ExpectedValueLoss,
    FocalLoss,
    HierarchicalXELoss,
    PartialCreditLoss,
    SimLoss,
    SLACELoss,
    SoftLabelLoss,
    UnimodalSoftLabelLoss,
    WeightedKappaLoss,
    build_loss,
    log1m_softmax,
    parse_loss_spec,
    unimodal_table,
)
from core.similarity import build_similarity, hierarchy_paths, parse_similarity_spec

C = 5
CLASSES = [f"c{i}" for i in range(C)]
GROUPS = {"kind": "groups", "groups": [["c0", "c1"], ["c2", "c3"]], "within": 0.5}  # zeros across groups
ORDINAL = {"kind": "ordinal", "reduction_factor": 0.4}
CYCLIC = {"kind": "ordinal", "reduction_factor": 0.4, "cyclic": True}
VALUES = {
    "kind": "ordinal",
    "values": {f"c{i}": v for i, v in enumerate([3, 1, 4, 10, 5])},
}  # order 1 0 2 4 3
TREE = {
    "kind": "hierarchy",
    "decay": 0.5,
    "parents": {"c0": "a", "c1": "a", "c2": "b", "c3": "b", "c4": "r", "a": "ab", "b": "ab", "ab": "r"},
}


def data(seed: int, n: int = 7, c: int = C, scale: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=g, dtype=torch.float64) * scale
    y = torch.randint(0, c, (n,), generator=g)
    return z, y


def softmax_rows(z):
    out = []
    for row in z.tolist():
        m = max(row)
        e = [math.exp(v - m) for v in row]
        out.append([v / sum(e) for v in e])
    return out


# --- naive float64 references (loops and explicit softmax) -------------------------------------


def ref_cross_entropy(z, y, s, eps=0.0):
    total = 0.0
    for p, t in zip(softmax_rows(z), y.tolist()):
        c = len(p)
        total += -sum(((1 - eps) * (k == t) + eps / c) * math.log(p[k]) for k in range(c))
    return total / len(y)


def ref_simloss(z, y, s):
    return sum(
        -math.log(sum(s[t][k] * p[k] for k in range(len(p)))) for p, t in zip(softmax_rows(z), y.tolist())
    ) / len(y)


def ref_soft_labels(z, y, s, temperature=1.0, kl=False):
    total = 0.0
    for p, t in zip(softmax_rows(z), y.tolist()):
        w = [s[t][k] ** (1 / temperature) for k in range(len(p))]
        q = [v / sum(w) for v in w]
        total += sum(
            q[k] * ((math.log(q[k]) if kl else 0.0) - math.log(p[k])) for k in range(len(p)) if q[k] > 0
        )
    return total / len(y)


def ref_expected_value(z, y, values, period=None, scale=True):
    total = 0.0
    for p, t in zip(softmax_rows(z), y.tolist()):
        if period is None:
            r = (max(values) - min(values)) if scale else 1.0
            e = sum(pk * v for pk, v in zip(p, values))
            total += 0.5 * ((e - values[t]) / r) ** 2
        else:
            ex = sum(pk * math.cos(2 * math.pi * v / period) for pk, v in zip(p, values))
            ey = sum(pk * math.sin(2 * math.pi * v / period) for pk, v in zip(p, values))
            a = 2 * math.pi * values[t] / period
            total += 0.5 * ((ex - math.cos(a)) ** 2 + (ey - math.sin(a)) ** 2)
    return total / len(y)


def ref_expected_cost(z, y, s):
    return sum(
        sum((1 - s[t][k]) * p[k] for k in range(len(p))) for p, t in zip(softmax_rows(z), y.tolist())
    ) / len(y)


def ref_pairwise(z, y, s):
    total = 0.0
    for p, t in zip(softmax_rows(z), y.tolist()):
        total += -math.log(p[t]) - sum((1 - s[t][k]) * math.log(1 - p[k]) for k in range(len(p)) if k != t)
    return total / len(y)


def ref_partial_credit(z, y, s, min_similarity=0.0):
    total = 0.0
    for p, t in zip(softmax_rows(z), y.tolist()):
        j = max(range(len(p)), key=lambda k: p[k])
        sim = s[t][j]
        if j != t and sim >= min_similarity and sim > 0:
            total += (-math.log(p[t]) - sim * math.log(p[j])) / (1 + sim)
        else:
            total += -math.log(p[t])
    return total / len(y)


def ref_hxe(z, y, paths, alpha):
    leaves_below: dict = {}
    for k, path in enumerate(paths):
        for node in path:
            leaves_below.setdefault(node, set()).add(k)
    total = 0.0
    for p, t in zip(softmax_rows(z), y.tolist()):
        path = paths[t]
        mass = [sum(p[k] for k in leaves_below[node]) for node in path]
        total += -sum(math.exp(-alpha * l) * math.log(mass[l] / mass[l + 1]) for l in range(len(path) - 1))
    return total / len(y)


def ref_emd(z, y, order=None, mean=False):
    total = 0.0
    for p, t in zip(softmax_rows(z), y.tolist()):
        c = len(p)
        order_ = list(range(c)) if order is None else order
        rank = order_.index(t)
        cdf, acc = [], 0.0
        for k in order_:
            acc += p[k]
            cdf.append(acc)
        d = sum((cdf[k] - (1.0 if k >= rank else 0.0)) ** 2 for k in range(c - 1))
        total += d / (c - 1) if mean else d
    return total / len(y)


def ref_soft_labels_softmax(z, y, s, temperature=1.0):
    """Ludwig's class_similarities target: q = softmax(S[y] / T)."""
    total = 0.0
    for p, t in zip(softmax_rows(z), y.tolist()):
        w = [math.exp(s[t][k] / temperature) for k in range(len(p))]
        total += -sum(v / sum(w) * math.log(p[k]) for k, v in enumerate(w))
    return total / len(y)


def ref_hxe_mbm(z, y, paths, alpha):
    """making-better-mistakes' code weights: the edge below node n weighs exp(-alpha depth(n)) / Z."""
    depth = {node: len(path) - 1 - l for path in paths for l, node in enumerate(path)}
    total = math.fsum(math.exp(-alpha * d) for d in depth.values())
    leaves_below: dict = {}
    for k, path in enumerate(paths):
        for node in path:
            leaves_below.setdefault(node, set()).add(k)
    out = 0.0
    for p, t in zip(softmax_rows(z), y.tolist()):
        path = paths[t]
        mass = [sum(p[k] for k in leaves_below[node]) for node in path]
        out += -sum(
            math.exp(-alpha * depth[path[l]]) / total * math.log(mass[l] / mass[l + 1])
            for l in range(len(path) - 1)
        )
    return out / len(y)


def ranks(order, c=C):
    order = list(range(c)) if order is None else order
    return [order.index(k) for k in range(c)]


def ref_cdw_ce(z, y, alpha, order=None):
    r = ranks(order, z.shape[1])
    return sum(
        -sum(abs(r[k] - r[t]) ** alpha * math.log(1 - p[k]) for k in range(len(p)))
        for p, t in zip(softmax_rows(z), y.tolist())
    ) / len(y)


def ref_weighted_kappa(z, y, weighting, order=None):
    c = z.shape[1]
    r = ranks(order, c)
    w = [[abs(r[i] - r[j]) / (c - 1) for j in range(c)] for i in range(c)]
    if weighting == "quadratic":
        w = [[v * v for v in row] for row in w]
    probs, truths = softmax_rows(z), y.tolist()
    observed = sum(w[i][t] * p[i] for p, t in zip(probs, truths) for i in range(c))
    predicted = [sum(p[i] for p in probs) for i in range(c)]
    counts = [truths.count(j) for j in range(c)]
    expected = sum(w[i][j] * predicted[i] * counts[j] for i in range(c) for j in range(c)) / len(truths)
    return observed / (expected + 1e-10)


def ref_slace(z, y, alpha, order=None):
    r = ranks(order, z.shape[1])
    total = 0.0
    for p, t in zip(softmax_rows(z), y.tolist()):
        d = [abs(r[k] - r[t]) for k in range(len(p))]
        m = [math.exp(-alpha * v) for v in d]
        accumulated = [sum(p[j] for j in range(len(p)) if d[j] <= d[k]) for k in range(len(p))]
        total += -sum(m[k] / sum(m) * math.log(accumulated[k]) for k in range(len(p)))
    return total / len(y)


def ref_focal(z, y, gamma, alpha=None):
    total = 0.0
    for p, t in zip(softmax_rows(z), y.tolist()):
        a = 1.0 if alpha is None else alpha[t]
        total += -a * (1 - p[t]) ** gamma * math.log(p[t])
    return total / len(y)


def table_binomial(c):
    theta = [0.1 + 0.8 * k / (c - 1) for k in range(c)]
    return [[math.comb(c - 1, j) * th**j * (1 - th) ** (c - 1 - j) for j in range(c)] for th in theta]


def table_poisson(c):  # dlordinal's: a softmax of the Poisson(k + 1) probabilities themselves
    rows_ = [[math.exp(-(k + 1)) * (k + 1) ** j / math.factorial(j) for j in range(c)] for k in range(c)]
    return [[math.exp(v) / sum(math.exp(u) for u in row) for v in row] for row in rows_]


def table_exponential(c, p=1.0, tau=1.0):
    rows_ = [[math.exp(-(abs(j - k) ** p) / tau) for j in range(c)] for k in range(c)]
    return [[v / sum(row) for v in row] for row in rows_]


def table_beta(params):
    """Beta(a, b) mass in C equal bins of [0, 1], by numerical integration of the density."""
    from scipy.integrate import quad

    c = len(params)
    out = []
    for a, b in params:
        norm = math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
        density = lambda x, a=a, b=b, norm=norm: x ** (a - 1) * (1 - x) ** (b - 1) / norm
        out.append([quad(density, k / c, (k + 1) / c, epsabs=1e-13, epsrel=1e-12)[0] for k in range(c)])
    return out


BETA_5 = [(1, 8), (6, 14), (12, 12), (14, 6), (8, 1)]  # Vargas et al. 2022, 5 classes


def ref_unimodal(z, y, table, eta=1.0, order=None):
    r = ranks(order, z.shape[1])
    total = 0.0
    for p, t in zip(softmax_rows(z), y.tolist()):
        q = [(1 - eta) * (k == t) + eta * table[r[t]][r[k]] / sum(table[r[t]]) for k in range(len(p))]
        total += -sum(q[k] * math.log(p[k]) for k in range(len(p)))
    return total / len(y)


def S(spec):
    return build_similarity(spec, CLASSES)


def rows(spec):
    return S(spec).double().tolist()


# (loss spec, similarity spec, reference(z, y))
CASES = {
    "cross_entropy": ({"kind": "cross_entropy"}, None, lambda z, y: ref_cross_entropy(z, y, None)),
    "cross_entropy_smoothed": (
        {"kind": "cross_entropy", "label_smoothing": 0.2},
        None,
        lambda z, y: ref_cross_entropy(z, y, None, 0.2),
    ),
    "simloss": ({"kind": "simloss"}, GROUPS, lambda z, y: ref_simloss(z, y, rows(GROUPS))),
    "simloss_ordinal": ({"kind": "simloss"}, ORDINAL, lambda z, y: ref_simloss(z, y, rows(ORDINAL))),
    "soft_labels": ({"kind": "soft_labels"}, GROUPS, lambda z, y: ref_soft_labels(z, y, rows(GROUPS))),
    "soft_labels_kl_t": (
        {"kind": "soft_labels", "divergence": "kl", "temperature": 0.5},
        ORDINAL,
        lambda z, y: ref_soft_labels(z, y, rows(ORDINAL), 0.5, kl=True),
    ),
    "expected_value": (
        {"kind": "expected_value"},
        None,
        lambda z, y: ref_expected_value(z, y, list(range(C))),
    ),
    "expected_value_unscaled": (
        {"kind": "expected_value", "scale": False},
        None,
        lambda z, y: ref_expected_value(z, y, list(range(C)), scale=False),
    ),
    "expected_value_values": (
        {"kind": "expected_value"},
        {"kind": "ordinal", "values": {f"c{i}": v for i, v in enumerate([3, 1, 4, 10, 5])}},
        lambda z, y: ref_expected_value(z, y, [3, 1, 4, 10, 5]),
    ),
    "expected_value_cyclic": (
        {"kind": "expected_value"},
        CYCLIC,
        lambda z, y: ref_expected_value(z, y, list(range(C)), period=C),
    ),
    "expected_cost": ({"kind": "expected_cost"}, GROUPS, lambda z, y: ref_expected_cost(z, y, rows(GROUPS))),
    "pairwise": ({"kind": "pairwise"}, GROUPS, lambda z, y: ref_pairwise(z, y, rows(GROUPS))),
    "partial_credit": (
        {"kind": "partial_credit"},
        ORDINAL,
        lambda z, y: ref_partial_credit(z, y, rows(ORDINAL)),
    ),
    "partial_credit_min": (
        {"kind": "partial_credit", "min_similarity": 0.3},
        ORDINAL,
        lambda z, y: ref_partial_credit(z, y, rows(ORDINAL), 0.3),
    ),
    "hierarchical_xe": (
        {"kind": "hierarchical_xe", "alpha": 0.5},
        TREE,
        lambda z, y: ref_hxe(z, y, hierarchy_paths(parse_similarity_spec(TREE), CLASSES), 0.5),
    ),
    "emd": ({"kind": "emd"}, None, lambda z, y: ref_emd(z, y)),
    "emd_values_mean": (
        {"kind": "emd", "mean_over_classes": True},
        {"kind": "ordinal", "values": {f"c{i}": v for i, v in enumerate([3, 1, 4, 10, 5])}},
        lambda z, y: ref_emd(z, y, order=[1, 0, 2, 4, 3], mean=True),
    ),
    "soft_labels_softmax": (
        {"kind": "soft_labels", "normalise": "softmax", "temperature": 0.5},
        GROUPS,
        lambda z, y: ref_soft_labels_softmax(z, y, rows(GROUPS), 0.5),
    ),
    "hierarchical_xe_mbm_code": (
        {"kind": "hierarchical_xe", "alpha": 0.5, "weighting": "mbm_code"},
        TREE,
        lambda z, y: ref_hxe_mbm(z, y, hierarchy_paths(parse_similarity_spec(TREE), CLASSES), 0.5),
    ),
    "cdw_ce": ({"kind": "cdw_ce"}, None, lambda z, y: ref_cdw_ce(z, y, 0.5)),
    "cdw_ce_values": (
        {"kind": "cdw_ce", "alpha": 2.0},
        VALUES,
        lambda z, y: ref_cdw_ce(z, y, 2.0, order=[1, 0, 2, 4, 3]),
    ),
    "weighted_kappa": (
        {"kind": "weighted_kappa"},
        ORDINAL,
        lambda z, y: ref_weighted_kappa(z, y, "quadratic"),
    ),
    "weighted_kappa_linear_values": (
        {"kind": "weighted_kappa", "weighting": "linear"},
        VALUES,
        lambda z, y: ref_weighted_kappa(z, y, "linear", order=[1, 0, 2, 4, 3]),
    ),
    "slace": ({"kind": "slace"}, None, lambda z, y: ref_slace(z, y, 1.0)),
    "slace_values": (
        {"kind": "slace", "alpha": 0.3},
        VALUES,
        lambda z, y: ref_slace(z, y, 0.3, order=[1, 0, 2, 4, 3]),
    ),
    "unimodal_binomial": (
        {"kind": "unimodal_soft_labels", "family": "binomial"},
        None,
        lambda z, y: ref_unimodal(z, y, table_binomial(C)),
    ),
    "unimodal_poisson_eta": (
        {"kind": "unimodal_soft_labels", "family": "poisson", "eta": 0.6},
        None,
        lambda z, y: ref_unimodal(z, y, table_poisson(C), eta=0.6),
    ),
    "unimodal_exponential_values": (
        {"kind": "unimodal_soft_labels", "family": "exponential", "p": 2.0, "tau": 0.5},
        VALUES,
        lambda z, y: ref_unimodal(z, y, table_exponential(C, 2.0, 0.5), order=[1, 0, 2, 4, 3]),
    ),
    "unimodal_beta": (
        {"kind": "unimodal_soft_labels", "family": "beta"},
        ORDINAL,
        lambda z, y: ref_unimodal(z, y, table_beta(BETA_5)),
    ),
    "unimodal_triangular": (
        {"kind": "unimodal_soft_labels", "family": "triangular", "alpha2": 0.1},
        None,  # the table's corners are checked against dlordinal in test_losses_peers.py
        lambda z, y: ref_unimodal(z, y, unimodal_table("triangular", C, alpha2=0.1).tolist()),
    ),
    "focal": ({"kind": "focal"}, None, lambda z, y: ref_focal(z, y, 2.0)),
    "focal_alpha": (
        {"kind": "focal", "gamma": 0.5, "alpha": 0.25},
        None,
        lambda z, y: ref_focal(z, y, 0.5, [0.25] * C),
    ),
    "focal_class_alpha": (
        {"kind": "focal", "gamma": 3.0, "alpha": {f"c{i}": w for i, w in enumerate([1, 0.5, 0.2, 0, 0.9])}},
        None,
        lambda z, y: ref_focal(z, y, 3.0, [1, 0.5, 0.2, 0, 0.9]),
    ),
    "combined": (
        {
            "kind": "combined",
            "components": [
                {"weight": 0.7, "loss": {"kind": "cross_entropy"}},
                {"weight": 0.3, "loss": {"kind": "expected_value"}},
            ],
        },
        ORDINAL,
        lambda z, y: 0.7 * ref_cross_entropy(z, y, None) + 0.3 * ref_expected_value(z, y, list(range(C))),
    ),
}


def make(name):
    spec, sim_spec, _ = CASES[name]
    return build_loss(spec, None, CLASSES, sim_spec)


def test_every_kind_has_a_reference_case():
    assert {CASES[name][0]["kind"] for name in CASES} == set(LOSS_KINDS)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_reference(name, seed):
    loss = make(name)
    z, y = data(seed)
    got = loss(z, y)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert got.item() == pytest.approx(CASES[name][2](z, y), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(name):
    loss = make(name)
    z, y = data(3)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (z,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_finite_with_extreme_logits_and_zeros_in_s(name):
    loss = make(name)
    for dtype in (torch.float32, torch.float64):
        # the truth far below everything (p_y underflows), far above, and ties at +-1e4
        z = torch.tensor(
            [
                [-1e4, 1e4, 0, 0, 0],
                [1e4, -1e4, 1e4, -1e4, 0],
                [-1e4] * 5,
                [1e4] * 5,
                [0, 0, 1e4, 0, -1e4],
                [-1e4, -1e4, -1e4, -1e4, 1e4],
            ],
            dtype=dtype,
            requires_grad=True,
        )
        y = torch.tensor([0, 3, 2, 4, 1, 0])
        value = loss(z, y)
        value.backward()
        assert torch.isfinite(value), (name, dtype, value)
        assert torch.isfinite(z.grad).all(), (name, dtype, z.grad)


def test_simloss_is_exact_where_p_y_underflows():
    s = S(GROUPS)  # S[c0, c2] = 0
    z = torch.tensor([[-1e4, 0.0, 0.0, 0.0, 0.0]])
    # sum_c S[0, c] p_c = p_0 + 0.5 p_1 with p_0 = e^-1e4 / Z ~ 0: loss = log Z - log(0.5)
    expected = math.log(4.0) - math.log(0.5)
    assert SimLoss(s)(z, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)
    z = torch.tensor([[-1e4, -1e4, 0.0, 0.0, 0.0]])  # everything similar to c0 underflows
    assert SimLoss(s)(z.double(), torch.tensor([0])).item() == pytest.approx(
        1e4 + math.log(3.0) - math.log(1.5), rel=1e-12
    )


@pytest.mark.parametrize("seed", range(3))
def test_simloss_and_soft_labels_equal_cross_entropy_when_s_is_identity(seed):
    z, y = data(seed, n=16, c=7)
    eye = torch.eye(7)
    ce = F.cross_entropy(z, y)
    assert torch.allclose(SimLoss(eye)(z, y), ce, rtol=1e-12)
    assert torch.allclose(SoftLabelLoss(eye)(z, y), ce, rtol=1e-12)
    assert torch.allclose(SoftLabelLoss(eye, divergence="kl", temperature=3.0)(z, y), ce, rtol=1e-12)
    flat = HierarchicalXELoss([[f"c{i}", "root"] for i in range(7)], alpha=0.3)
    assert torch.allclose(flat(z, y), ce, rtol=1e-12)
    assert torch.allclose(PartialCreditLoss(eye)(z, y), ce, rtol=1e-12)


def test_soft_label_targets_horse_example():
    s = torch.tensor([[1, 0.25, 0, 0], [0.25, 1, 0, 0], [0, 0, 1, 0.5], [0, 0, 0.5, 1]])
    assert torch.allclose(SoftLabelLoss(s).target_probs[0], torch.tensor([0.8, 0.2, 0, 0]))
    sharp = SoftLabelLoss(s, temperature=0.5).target_probs[0]
    assert torch.allclose(sharp, torch.tensor([1, 0.0625, 0, 0]) / 1.0625)


def test_partial_credit_half_correct():
    s = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    z = torch.tensor([[0.0, 2.0]])  # predicts class 1, truth 0, S = 0.5
    log_p = torch.log_softmax(z, 1)[0]
    expected = (-log_p[0] - 0.5 * log_p[1]) / 1.5
    assert PartialCreditLoss(s)(z, torch.tensor([0])).item() == pytest.approx(expected.item())
    assert PartialCreditLoss(s, min_similarity=0.6)(z, torch.tensor([0])).item() == pytest.approx(
        -log_p[0].item()
    )


def test_cyclic_expected_value_prefers_the_short_way_round():
    loss = build_loss(
        {"kind": "expected_value"}, None, [str(h) for h in range(12)], {"kind": "ordinal", "cyclic": True}
    )
    near = torch.full((1, 12), -20.0)
    near[0, 11] = 20.0  # predicts 11 for truth 0: one hour off
    far = torch.full((1, 12), -20.0)
    far[0, 6] = 20.0
    # 0.5 |u_0 - u_11|^2 = 1 - cos(30 deg) for one hour off; 2 for the opposite hour
    assert loss(near, torch.tensor([0])).item() == pytest.approx(1 - math.cos(math.pi / 6), abs=1e-6)
    assert loss(far, torch.tensor([0])).item() == pytest.approx(2.0, abs=1e-6)
    linear = build_loss({"kind": "expected_value"}, None, [str(h) for h in range(12)], {"kind": "ordinal"})
    assert linear(near, torch.tensor([0])).item() == pytest.approx(0.5, abs=1e-6)  # 11 hours "off"


def test_log1m_softmax_exact():
    z = torch.tensor([[30.0, 0.0, -5.0], [0.0, 0.0, 0.0], [1e4, -1e4, 0.0]], dtype=torch.float64)
    got = log1m_softmax(z)
    p = torch.softmax(z, 1)
    assert torch.allclose(got[1], torch.log1p(-p[1]))
    # 1 - p_top = (e^0 + e^-5) / (e^30 + ...) : exact in log space although p_top rounds to 1
    assert got[0, 0].item() == pytest.approx(
        math.log(1 + math.exp(-5)) - 30 - math.log1p(math.exp(-30) + math.exp(-35))
    )
    assert got[2, 0].item() == pytest.approx(-1e4, rel=1e-12)


def test_empty_batch_gives_zero_with_a_gradient():
    for name in CASES:
        z = torch.zeros(0, C, requires_grad=True)
        value = make(name)(z, torch.zeros(0, dtype=torch.long))
        value.backward()
        assert value.item() == 0.0 and z.grad.shape == (0, C)


def test_bad_inputs_are_refused():
    loss = make("simloss")
    with pytest.raises(ValueError):
        loss(torch.zeros(3, C + 1), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError):
        loss(torch.zeros(3, C), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError):
        loss(torch.zeros(3, C), torch.zeros(3))


class _Largest(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("name", list(CASES))
def test_memory_is_o_n_times_c(name):
    c, n = 60, 40
    classes = [f"c{i}" for i in range(c)]
    spec, sim_spec, _ = CASES[name]
    if sim_spec is not None and sim_spec["kind"] == "hierarchy":
        sim_spec = {"kind": "hierarchy", "parents": {k: f"g{i % 7}" for i, k in enumerate(classes)}}
    elif sim_spec is not None:
        sim_spec = (
            {"kind": "ordinal", "reduction_factor": 0.5}
            if sim_spec["kind"] != "groups"
            else {"kind": "groups", "groups": [classes[:20]], "within": 0.5}
        )
        if spec["kind"] == "expected_value" and CASES[name][1].get("cyclic"):
            sim_spec["cyclic"] = True
    if spec.get("family") == "beta":  # published parameters for 3-14 classes only; the same code path
        spec = dict(spec, family="binomial")
    if isinstance(spec.get("alpha"), dict):  # focal's class weights, for these classes
        spec = dict(spec, alpha={name: 0.5 for name in classes})
    loss = build_loss(spec, None, classes, sim_spec)
    z = torch.randn(n, c, requires_grad=True)
    y = torch.randint(0, c, (n,))
    with _Largest() as mode:
        loss(z, y).backward()
    assert mode.largest <= 2 * n * c < n * c * c / 10


# --- construction checks -------------------------------------------------------------------------


def test_needs_similarity_refuses_none_and_accepts_identity():
    for kind in NEEDS_SIMILARITY:
        with pytest.raises(SpecError) as info:
            build_loss({"kind": kind}, None, CLASSES)
        assert info.value.field == "loss.kind"
        assert info.value.reason == f"{kind} needs a similarity spec; got none"
        assert build_loss({"kind": kind}, torch.eye(C), CLASSES) is not None
        assert build_loss({"kind": kind}, None, CLASSES, {"kind": "identity"}) is not None


@pytest.mark.parametrize(
    "spec,sim_spec,field,match",
    [
        ({"kind": "hierarchical_xe"}, None, "loss.kind", "needs a hierarchy similarity spec; got none"),
        ({"kind": "hierarchical_xe"}, GROUPS, "loss.kind", "got kind 'groups'"),
        ({"kind": "emd"}, CYCLIC, "loss.kind", "cyclic"),
        ({"kind": "expected_value"}, GROUPS, "loss.kind", "ordered classes"),
        ({"kind": "emd"}, TREE, "loss.kind", "ordered classes"),
        *[
            ({"kind": kind, **extra}, sim, "loss.kind", match)
            for kind, extra in [
                ("cdw_ce", {}),
                ("weighted_kappa", {}),
                ("slace", {}),
                ("unimodal_soft_labels", {"family": "binomial"}),
            ]
            for sim, match in [(CYCLIC, "linearly ordered"), (GROUPS, "ordered classes"), (TREE, "ordered")]
        ],
        ({"kind": "focal", "alpha": {"c0": 0.5}}, None, "loss.alpha", "no weight for class 'c1'"),
        (
            {
                "kind": "combined",
                "components": [
                    {"weight": 1, "loss": {"kind": "cross_entropy"}},
                    {"weight": 1, "loss": {"kind": "simloss"}},
                ],
            },
            None,
            "loss.components.1.loss.kind",
            "simloss needs a similarity",
        ),
    ],
)
def test_spec_needs_the_right_similarity(spec, sim_spec, field, match):
    with pytest.raises(SpecError, match=match) as info:
        build_loss(spec, None, CLASSES, sim_spec)
    assert info.value.field == field


def test_similarity_tensor_is_checked():
    bad = {
        "shape": torch.eye(C + 1),
        "diagonal": torch.eye(C) * 0.5,
        "range": torch.eye(C) + torch.full((C, C), 0.5) * (1 - torch.eye(C)) * 3,
        "nan": torch.where(torch.eye(C) > 0, 1.0, float("nan")),
    }
    for tensor in bad.values():
        with pytest.raises(SpecError) as info:
            build_loss({"kind": "simloss"}, tensor, CLASSES)
        assert info.value.field == "similarity"
    with pytest.raises(SpecError) as info:
        build_loss({"kind": "cross_entropy"}, None, ["only"])
    assert info.value.field == "classes"


@pytest.mark.parametrize(
    "spec,loc",
    [
        ({"kind": "nope"}, ()),
        ({"kind": "cross_entropy", "label_smoothing": 1.0}, ("cross_entropy", "label_smoothing")),
        ({"kind": "cross_entropy", "label_smoothing": -0.1}, ("cross_entropy", "label_smoothing")),
        ({"kind": "cross_entropy", "weight": 2}, ("cross_entropy", "weight")),
        ({"kind": "simloss", "lower_bound": 0.1}, ("simloss", "lower_bound")),
        ({"kind": "soft_labels", "temperature": 0}, ("soft_labels", "temperature")),
        ({"kind": "soft_labels", "temperature": float("inf")}, ("soft_labels", "temperature")),
        ({"kind": "soft_labels", "divergence": "js"}, ("soft_labels", "divergence")),
        ({"kind": "expected_value", "scale": "yes"}, ("expected_value", "scale")),
        ({"kind": "expected_cost", "x": 1}, ("expected_cost", "x")),
        ({"kind": "pairwise", "x": 1}, ("pairwise", "x")),
        ({"kind": "partial_credit", "min_similarity": 1.5}, ("partial_credit", "min_similarity")),
        ({"kind": "hierarchical_xe", "alpha": 0}, ("hierarchical_xe", "alpha")),
        ({"kind": "hierarchical_xe", "alpha": float("nan")}, ("hierarchical_xe", "alpha")),
        ({"kind": "emd", "mean_over_classes": 1}, ("emd", "mean_over_classes")),
        ({"kind": "soft_labels", "normalise": "l1"}, ("soft_labels", "normalise")),
        ({"kind": "hierarchical_xe", "weighting": "code"}, ("hierarchical_xe", "weighting")),
        ({"kind": "cdw_ce", "alpha": 0}, ("cdw_ce", "alpha")),
        ({"kind": "cdw_ce", "alpha": 11.0}, ("cdw_ce", "alpha")),
        ({"kind": "weighted_kappa", "weighting": "cubic"}, ("weighted_kappa", "weighting")),
        ({"kind": "weighted_kappa", "log": True}, ("weighted_kappa", "log")),
        ({"kind": "slace", "alpha": -1.0}, ("slace", "alpha")),
        ({"kind": "slace", "alpha": float("inf")}, ("slace", "alpha")),
        ({"kind": "unimodal_soft_labels"}, ("unimodal_soft_labels", "family")),
        ({"kind": "unimodal_soft_labels", "family": "gauss"}, ("unimodal_soft_labels", "family")),
        ({"kind": "unimodal_soft_labels", "family": "beta", "eta": 1.5}, ("unimodal_soft_labels", "eta")),
        ({"kind": "unimodal_soft_labels", "family": "beta", "p": 2.0}, ("unimodal_soft_labels", "p")),
        (
            {"kind": "unimodal_soft_labels", "family": "poisson", "alpha2": 0.1},
            ("unimodal_soft_labels", "alpha2"),
        ),
        (
            {"kind": "unimodal_soft_labels", "family": "triangular", "tau": 2.0},
            ("unimodal_soft_labels", "tau"),
        ),
        ({"kind": "unimodal_soft_labels", "family": "exponential", "p": 0.0}, ("unimodal_soft_labels", "p")),
        (
            {"kind": "unimodal_soft_labels", "family": "exponential", "tau": 101.0},
            ("unimodal_soft_labels", "tau"),
        ),
        (
            {"kind": "unimodal_soft_labels", "family": "triangular", "alpha2": 0.3},
            ("unimodal_soft_labels", "alpha2"),
        ),
        ({"kind": "focal", "gamma": -1.0}, ("focal", "gamma")),
        ({"kind": "focal", "gamma": 11.0}, ("focal", "gamma")),
        ({"kind": "focal", "alpha": 0.0}, ("focal", "alpha", "constrained-float")),
        (
            {"kind": "focal", "alpha": {"c0": 1.5}},
            ("focal", "alpha", "dict[constrained-str,constrained-float]", "c0"),
        ),
        ({"kind": "combined", "components": []}, ("combined", "components")),
        (
            {"kind": "combined", "components": [{"weight": 1, "loss": {"kind": "cross_entropy"}}] * 9},
            ("combined", "components"),
        ),
        (
            {"kind": "combined", "components": [{"weight": 0, "loss": {"kind": "cross_entropy"}}]},
            ("combined", "components", 0, "weight"),
        ),
        (
            {"kind": "combined", "components": [{"weight": -1, "loss": {"kind": "cross_entropy"}}]},
            ("combined", "components", 0, "weight"),
        ),
        (
            {"kind": "combined", "components": [{"weight": 5e-324, "loss": {"kind": "cross_entropy"}}]},
            ("combined", "components", 0, "weight"),
        ),
        (
            {
                "kind": "combined",
                "components": [{"weight": 1, "loss": {"kind": "combined", "components": []}}],
            },
            ("combined", "components", 0, "loss"),
        ),
        (
            {
                "kind": "combined",
                "components": [{"weight": 1, "loss": {"kind": "soft_labels", "temperature": -1}}],
            },
            ("combined", "components", 0, "loss", "soft_labels", "temperature"),
        ),
    ],
)
def test_invalid_loss_spec_names_the_field(spec, loc):
    with pytest.raises(ValidationError) as info:
        parse_loss_spec(spec)
    assert loc in [tuple(e["loc"]) for e in info.value.errors()]
    with pytest.raises(ValidationError):
        build_loss(spec, torch.eye(C), CLASSES)


def test_modules_range_check_their_hyperparameters():
    eye = torch.eye(3)
    for make_bad, field in [
        (lambda: CrossEntropyLoss(3, label_smoothing=1.0), "loss.label_smoothing"),
        (lambda: SoftLabelLoss(eye, temperature=0.0), "loss.temperature"),
        (lambda: SoftLabelLoss(eye, divergence="js"), "loss.divergence"),
        (lambda: PartialCreditLoss(eye, min_similarity=-0.5), "loss.min_similarity"),
        (lambda: HierarchicalXELoss([["a", "r"], ["b", "r"]], alpha=-1.0), "loss.alpha"),
        (lambda: ExpectedValueLoss(torch.arange(3.0), period=0.0), "similarity.period"),
        (lambda: EMDLoss(3, order=torch.tensor([0, 0, 1])), "similarity.values"),
        (lambda: SimLoss(torch.eye(3) * 2), "similarity"),
        (lambda: CrossEntropyLoss(1), "classes"),
        (lambda: CDWCELoss(3, alpha=0.0), "loss.alpha"),
        (lambda: CDWCELoss(3, order=torch.tensor([0, 0, 1])), "similarity.values"),
        (lambda: WeightedKappaLoss(3, weighting="cubic"), "loss.weighting"),
        (lambda: SLACELoss(3, alpha=101.0), "loss.alpha"),
        (lambda: UnimodalSoftLabelLoss(3, "binomial", eta=-0.1), "loss.eta"),
        (lambda: UnimodalSoftLabelLoss(3, "exponential", p=0.0), "loss.p"),
        (lambda: UnimodalSoftLabelLoss(3, "exponential", tau=float("nan")), "loss.tau"),
        (lambda: UnimodalSoftLabelLoss(3, "triangular", alpha2=0.25), "loss.alpha2"),
        (lambda: UnimodalSoftLabelLoss(3, "gauss"), "loss.family"),
        (lambda: UnimodalSoftLabelLoss(2, "beta"), "loss.family"),
        (lambda: UnimodalSoftLabelLoss(15, "beta"), "loss.family"),
        (lambda: FocalLoss(3, gamma=-0.5), "loss.gamma"),
        (lambda: FocalLoss(3, alpha=1.5), "loss.alpha"),
        (lambda: FocalLoss(3, alpha=torch.tensor([0.5, 0.5])), "loss.alpha"),
        (lambda: HierarchicalXELoss([["a", "r"], ["b", "r"]], weighting="code"), "loss.weighting"),
        (lambda: SoftLabelLoss(eye, normalise="l1"), "loss.normalise"),
    ]:
        with pytest.raises(SpecError) as info:
            make_bad()
        assert info.value.field == field


def test_buffers_move_with_the_module():
    loss = make("simloss")
    names = dict(loss.named_buffers())
    assert "similarity" in names
    state = loss.state_dict()
    fresh = SimLoss(torch.eye(C))
    fresh.load_state_dict(state)
    z, y = data(0)
    assert torch.allclose(fresh(z, y), loss(z, y))
    assert loss.double().similarity.dtype == torch.float64


def test_simloss_gradcheck_in_the_log_space_fallback():
    s = S(GROUPS)
    # sum_c S[y, c] p_c ~ e^-400 underflows the float64 fast path's floor: the log-space rows are used
    z = torch.tensor(
        [[-400.0, -401.0, 0.0, 0.5, 0.0], [1.0, 0.0, -2.0, 0.3, 0.1]], dtype=torch.float64, requires_grad=True
    )
    y = torch.tensor([0, 2])
    loss = SimLoss(s)
    assert loss(z, y).item() == pytest.approx(ref_simloss_logspace(z.detach(), y, s.double()), rel=1e-12)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (z,), eps=1e-6, atol=1e-6)


def ref_simloss_logspace(z, y, s):
    total = 0.0
    for row, t in zip(z.tolist(), y.tolist()):
        m = max(row)
        lse = m + math.log(sum(math.exp(v - m) for v in row))
        terms = [v + math.log(s[t, k].item()) for k, v in enumerate(row) if s[t, k] > 0]
        mt = max(terms)
        total += lse - (mt + math.log(sum(math.exp(v - mt) for v in terms)))
    return total / len(y)


def test_soft_labels_exact_where_p_y_underflows():
    s = S(GROUPS)  # q(c0) = [1, 0.5, 0, 0, 0] / 1.5
    z = torch.tensor([[-1e4, 0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    value = SoftLabelLoss(s)(z, torch.tensor([0]))
    assert value.item() == pytest.approx(math.log(4.0) + 1e4 * 2 / 3, rel=1e-6)
    value.backward()
    assert torch.allclose(z.grad, torch.tensor([[-2 / 3, 0.25 - 1 / 3, 0.25, 0.25, 0.25]]), atol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_fused_batch_mean_equals_the_mean_of_per_sample(name):
    """forward() uses batch_mean, which some losses fuse into their autograd function: same value and
    gradient as the plain mean of per_sample."""
    loss = make(name)
    z, y = data(4, n=9)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    fused, plain = loss.batch_mean(z1, y), loss.per_sample(z2, y).mean()
    fused.backward()
    plain.backward()
    assert fused.item() == pytest.approx(plain.item(), rel=1e-12)
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-10, atol=1e-12)


# --- the log-space algorithms (the default on CUDA), checked here on the CPU ----------------------------

LOG_SPACE = {  # case name -> the loss built with algorithm="log_space"
    "simloss": lambda: SimLoss(S(GROUPS), algorithm="log_space"),
    "simloss_ordinal": lambda: SimLoss(S(ORDINAL), algorithm="log_space"),
    "soft_labels": lambda: SoftLabelLoss(S(GROUPS), algorithm="log_space"),
    "soft_labels_kl_t": lambda: SoftLabelLoss(S(ORDINAL), 0.5, "kl", algorithm="log_space"),
}


class _HostReads(TorchDispatchMode):
    """Counts the ops that copy a tensor's value to the host (a synchronisation on a GPU)."""

    READS = ("aten::_local_scalar_dense", "aten::is_nonzero", "aten::item", "aten::nonzero")

    def __init__(self):
        super().__init__()
        self.reads = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name in self.READS:
            self.reads.append(func._schema.name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", list(LOG_SPACE))
def test_log_space_algorithm_matches_the_reference(name):
    loss = LOG_SPACE[name]()
    for seed in (0, 1, 2):
        z, y = data(seed)
        assert loss(z, y).item() == pytest.approx(CASES[name][2](z, y), rel=1e-5, abs=1e-7)
        assert loss.per_sample(z, y).mean().item() == pytest.approx(loss(z, y).item(), rel=1e-12)
    z, y = data(3)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (z,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", list(LOG_SPACE))
def test_log_space_algorithm_agrees_with_direct_and_never_reads_the_host(name):
    fast, direct = LOG_SPACE[name](), LOG_SPACE[name]()
    direct.algorithm = "direct"  # the CPU default
    g = torch.Generator().manual_seed(5)
    z = (torch.randn(64, C, generator=g) * 4).requires_grad_(True)
    z2 = z.detach().clone().requires_grad_(True)
    y = torch.randint(0, C, (64,), generator=g)
    with _HostReads() as mode:
        got = fast(z, y)
        got.backward()
    assert mode.reads == []
    want = direct(z2, y)
    want.backward()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z.grad, z2.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", list(LOG_SPACE))
def test_log_space_algorithm_is_finite_and_exact_at_extremes(name):
    loss = LOG_SPACE[name]()
    for dtype in (torch.float32, torch.float64):
        z = torch.tensor(
            [[-1e4, 1e4, 0, 0, 0], [1e4, -1e4, 1e4, -1e4, 0], [-1e4] * 5, [0, 0, 1e4, 0, -1e4]],
            dtype=dtype,
            requires_grad=True,
        )
        value = loss(z, torch.tensor([0, 3, 2, 1]))
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(z.grad).all(), (name, dtype)
    if name == "simloss":  # p_0 ~ e^-1e4 underflows: loss = log Z - log(0.5), no cancellation
        z = torch.tensor([[-1e4, 0.0, 0.0, 0.0, 0.0]])
        assert loss(z, torch.tensor([0])).item() == pytest.approx(math.log(4.0) - math.log(0.5), rel=1e-6)


def test_log_space_simloss_is_cross_entropy_at_identity():
    z, y = data(6)
    loss = SimLoss(torch.eye(C), algorithm="log_space")
    assert torch.allclose(loss(z, y), F.cross_entropy(z, y), rtol=1e-12)
    with pytest.raises(ValueError, match="algorithm"):
        SimLoss(torch.eye(C), algorithm="fast")
