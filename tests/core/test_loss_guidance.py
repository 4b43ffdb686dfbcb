"""core.losses.guidance: the targets a loss reports are what its own forward optimises, and its warnings.

Soft-target losses are checked against their forward in float64: the gradient with respect to the
logits vanishes at logits = log(targets), for every true class, and not at the one-hot label. Weighted
losses (simloss, expected_cost) are checked through the gradient at uniform logits. Equivalence to
cross-entropy is checked against F.cross_entropy itself, and `bounded` (slow_alone) against a
saturation probe of the gradient.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.errors import SpecError
from core.losses import build_loss
from core.losses.guidance import loss_guidance, loss_targets, saturates
from core.similarity import build_similarity

CLASSES = ["a", "b", "c", "d", "e"]
ORDINAL = {"kind": "ordinal"}
IDENTITY = {"kind": "identity"}
MATRIX_CLIPPED = {
    "kind": "matrix",
    "values": [[1, 0.5, -1e-7], [0.5, 1, 0.2], [0.0, 0.2, 1 - 5e-7]],
}
CE = {"kind": "cross_entropy"}


def _mix(*parts: tuple[float, dict | str]) -> dict:
    """A combined loss of (weight, loss spec or kind) parts."""
    comps = [{"weight": w, "loss": {"kind": x} if isinstance(x, str) else x} for w, x in parts]
    return {"kind": "combined", "components": comps}


SOFT_TARGET_SPECS = [
    CE,
    {"kind": "cross_entropy", "label_smoothing": 0.2},
    {"kind": "soft_labels"},
    {"kind": "soft_labels", "temperature": 3.0, "divergence": "kl"},
    {"kind": "soft_labels", "normalise": "softmax", "temperature": 0.5},
    {"kind": "unimodal_soft_labels", "family": "binomial"},
    {"kind": "unimodal_soft_labels", "family": "exponential", "p": 2.0, "eta": 0.6},
    _mix((0.7, CE), (0.3, "soft_labels")),
]


def _guide(loss: dict, sim: dict = ORDINAL, classes: list[str] = CLASSES) -> dict:
    return loss_guidance(loss, build_similarity(sim, classes), classes, sim)


def _module(loss: dict, sim: dict = ORDINAL):
    return build_loss(loss, None, CLASSES, sim)


def _codes(g: dict) -> list[str]:
    return [w["code"] for w in g["warnings"]]


def _grad(module, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    z = logits.clone().requires_grad_(True)
    module(z, targets).backward()
    return z.grad


@pytest.mark.parametrize("spec", SOFT_TARGET_SPECS, ids=lambda s: str(s)[:60])
def test_soft_targets_are_where_the_loss_is_minimised(spec):
    module = _module(spec)
    rows, kind = loss_targets(module)
    assert kind == "distribution" and rows.shape == (5, 5)
    assert torch.allclose(rows.sum(dim=1), torch.ones(5, dtype=torch.float64), atol=1e-6)
    targets = torch.arange(5)
    at_targets = torch.log(rows.clamp_min(1e-300))  # p = q exactly (zeros: 1e-300)
    assert _grad(module, at_targets, targets).abs().max() < 1e-6
    # and the loss there is lower than anywhere near it
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        nearby = at_targets + 0.1 * torch.randn(at_targets.shape, generator=g, dtype=torch.float64)
        assert module(nearby, targets) >= module(at_targets, targets) - 1e-12


@pytest.mark.parametrize("spec", SOFT_TARGET_SPECS[1:], ids=lambda s: str(s)[:60])
def test_soft_targets_are_not_the_one_hot_label(spec):
    module = _module(spec)
    one_hot = torch.log(torch.eye(5, dtype=torch.float64).clamp_min(1e-300))
    assert _grad(module, one_hot, torch.arange(5)).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["simloss", "expected_cost"])
def test_weights_are_the_pull_at_uniform_logits(kind):
    """At uniform logits the gradient is proportional to 1/C - weights (simloss: equal to it)."""
    module = _module({"kind": kind})
    rows, tkind = loss_targets(module)
    assert tkind == "weights"
    assert torch.allclose(rows.sum(dim=1), torch.ones(5, dtype=torch.float64))
    grad = _grad(module, torch.zeros(5, 5, dtype=torch.float64), torch.arange(5)) * 5  # undo the mean
    pull = 1.0 / 5 - rows
    scale = (grad * pull).sum(dim=1) / (pull * pull).sum(dim=1)
    assert (scale > 0).all()
    assert torch.allclose(grad, scale[:, None] * pull, atol=1e-12)
    if kind == "simloss":
        assert torch.allclose(scale, torch.ones(5, dtype=torch.float64), atol=1e-9)


def test_slace_weights_are_its_soft_target():
    module = _module({"kind": "slace", "alpha": 1.0})
    rows, kind = loss_targets(module)
    d = (torch.arange(5.0)[:, None] - torch.arange(5.0)[None, :]).abs().double()
    assert kind == "weights" and torch.allclose(rows, torch.softmax(-d, dim=1))


@pytest.mark.parametrize(
    "spec",
    [{"kind": k} for k in ("focal", "emd", "expected_value", "cdw_ce", "pairwise")],
)
def test_losses_without_target_rows_report_none(spec):
    g = _guide(spec)
    assert g["targets"] is None and g["targets_kind"] is None and g["loss"] == spec["kind"]


def test_combined_with_a_loss_without_targets_reports_the_soft_part_as_weights():
    spec = _mix((1, "soft_labels"), (3, "emd"))
    g = _guide(spec)
    soft = loss_targets(_module({"kind": "soft_labels"}))[0]
    assert g["targets_kind"] == "weights" and g["loss"] == "combined"
    assert torch.allclose(torch.tensor(g["targets"], dtype=torch.float64), soft, atol=1e-6)
    assert _codes(g) == []  # soft_labels brings a log-likelihood term


def _equals_ce_by_forward(spec: dict, sim: dict) -> bool:
    """The loss is proportional to cross-entropy on random logits (the reference for the flag)."""
    module = build_loss(spec, None, CLASSES, sim)
    g = torch.Generator().manual_seed(7)
    z = torch.randn(40, 5, generator=g, dtype=torch.float64) * 3
    y = torch.arange(5).repeat(8)
    loss, ce = module.per_sample(z, y), F.cross_entropy(z, y, reduction="none")
    return bool(torch.allclose(loss / ce, (loss / ce)[:1].expand(40), rtol=1e-5))


EQUALS_CE = [
    (CE, ORDINAL),
    ({"kind": "simloss"}, IDENTITY),
    ({"kind": "soft_labels"}, IDENTITY),
    ({"kind": "soft_labels", "temperature": 0.01}, ORDINAL),  # the temperature limit: one-hot
    ({"kind": "partial_credit"}, IDENTITY),
    ({"kind": "focal", "gamma": 0.0}, ORDINAL),
    ({"kind": "focal", "gamma": 0.0, "alpha": 0.25}, ORDINAL),  # 0.25 times cross-entropy
    ({"kind": "unimodal_soft_labels", "family": "triangular", "alpha2": 0.0}, ORDINAL),
    (_mix((1, CE), (1, "simloss")), IDENTITY),
]
NOT_CE = [
    ({"kind": "simloss"}, ORDINAL),
    ({"kind": "soft_labels"}, ORDINAL),
    ({"kind": "soft_labels", "normalise": "softmax"}, IDENTITY),  # every class gets mass even at S = I
    ({"kind": "expected_cost"}, IDENTITY),  # 1 - p_y at S = I, not cross-entropy
    ({"kind": "pairwise"}, IDENTITY),
    ({"kind": "cross_entropy", "label_smoothing": 0.05}, ORDINAL),
    ({"kind": "focal", "gamma": 0.0, "alpha": {c: 0.5 if c == "a" else 1.0 for c in CLASSES}}, ORDINAL),
    (_mix((1, CE), (1, "emd")), ORDINAL),
]


@pytest.mark.parametrize(("spec", "sim"), EQUALS_CE, ids=lambda x: str(x)[:50])
def test_equals_cross_entropy_is_flagged(spec, sim):
    assert _equals_ce_by_forward(spec, sim)
    g = _guide(spec, sim)
    assert g["equivalent_to_cross_entropy"] is True
    assert "equals_cross_entropy" in _codes(g)


@pytest.mark.parametrize(("spec", "sim"), NOT_CE, ids=lambda x: str(x)[:50])
def test_other_losses_are_not_flagged_as_cross_entropy(spec, sim):
    assert not _equals_ce_by_forward(spec, sim)
    g = _guide(spec, sim)
    assert g["equivalent_to_cross_entropy"] is False
    assert "equals_cross_entropy" not in _codes(g)


def test_a_flat_hierarchy_is_cross_entropy_and_a_deep_one_is_not():
    flat = {"kind": "hierarchy", "parents": {c: "root" for c in CLASSES}}
    parents = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "y", "x": "root", "y": "root"}
    deep = {"kind": "hierarchy", "parents": parents}
    assert _guide({"kind": "hierarchical_xe"}, flat)["equivalent_to_cross_entropy"] is True
    assert _guide({"kind": "hierarchical_xe"}, deep)["equivalent_to_cross_entropy"] is False


SLOW = [
    {"kind": "emd"},
    {"kind": "expected_value"},
    {"kind": "expected_cost"},
    {"kind": "weighted_kappa"},
    _mix((1, "emd"), (1, "expected_value")),
]
NOT_SLOW = [
    CE,
    {"kind": "simloss"},
    {"kind": "soft_labels"},
    {"kind": "cdw_ce"},
    {"kind": "slace"},
    {"kind": "focal"},
    _mix((0.7, CE), (0.3, "emd")),
    _mix((0.7, CE), (0.3, "expected_value")),
]


@pytest.mark.parametrize("spec", SLOW, ids=lambda s: str(s)[:50])
def test_slow_alone_for_losses_without_a_log_likelihood_term(spec):
    g = _guide(spec)
    assert _codes(g) == ["slow_alone"]
    assert "cross_entropy" in g["warnings"][0]["message"]
    assert saturates(_module(spec))  # what `bounded` claims, numerically


@pytest.mark.parametrize("spec", NOT_SLOW, ids=lambda s: str(s)[:50])
def test_no_slow_alone_with_a_log_likelihood_term(spec):
    g = _guide(spec, IDENTITY if spec is CE else ORDINAL)
    assert "slow_alone" not in _codes(g)
    if spec.get("kind") != "simloss":  # simloss with an all-positive S saturates yet trains (docs/losses.md)
        assert not saturates(_module(spec))


def test_similarity_clipped_is_surfaced():
    classes = ["a", "b", "c"]
    g = _guide({"kind": "simloss"}, MATRIX_CLIPPED, classes)
    assert "similarity_clipped" in _codes(g)
    assert "similarity_clipped" not in _codes(_guide({"kind": "simloss"}, ORDINAL, classes))


def test_a_bad_spec_raises_what_a_job_gets():
    with pytest.raises(SpecError) as err:
        _guide({"kind": "hierarchical_xe"}, ORDINAL)
    assert err.value.field == "loss.kind"
    with pytest.raises(SpecError) as err:
        _guide(_mix((1, "emd")), {"kind": "ordinal", "cyclic": True, "period": 5.0})
    assert err.value.field.startswith("loss.components.0.loss")
