"""Tests of the ordinal heads (core/models/heads.py): per-class probabilities from CORAL / CORN outputs
(by hand, against coral-pytorch's rules, at extremes), the head modules inside every model kind, warm
starts, the ONNX export carrying the conversion, and the decision rules on hand-made outputs.

Run: cd /work/main && .venv/bin/python -m pytest tests/core/test_heads.py -q
"""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
from coral_pytorch.dataset import corn_label_from_logits, proba_to_label
from coral_pytorch.layers import CoralLayer

from core.artifacts import export_onnx
from core.decision_spec import ModelDecision
from core.errors import SpecError
from core.models import (
    architecture_json,
    build_model,
    count_parameters,
    get_kind,
    head_parameter_names,
    load_init_weights,
    parse_model_spec,
    rebuild_model,
)
from core.models.heads import (
    CoralHead,
    class_logits,
    cumulative_probabilities,
    decide_outputs,
    probabilities,
    with_class_logits,
)


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def logits(n: int, k: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


# ------------------------------------------------------------------------------- outputs -> probabilities


def test_coral_probabilities_by_hand():
    p = probabilities(torch.tensor([[0.0, -1.0]], dtype=torch.float64), "coral")[0].tolist()
    assert p == pytest.approx([0.5, 0.5 - sig(-1.0), sig(-1.0)], abs=1e-15)


def test_coral_logits_that_rise_are_made_monotone_first():
    """z = (-1, 1): P(y > 1) > P(y > 0) would make p_1 negative; z' = (-1, -1) gives p_1 = 0."""
    p = probabilities(torch.tensor([[-1.0, 1.0]], dtype=torch.float64), "coral")[0].tolist()
    assert p == pytest.approx([1 - sig(-1.0), 0.0, sig(-1.0)], abs=1e-15)
    assert min(p) >= 0


def test_corn_probabilities_by_hand():
    """z_k is the logit of P(y > k | y > k - 1): P(y > 0) = s(2), P(y > 1) = s(2) s(-1)."""
    p = probabilities(torch.tensor([[2.0, -1.0]], dtype=torch.float64), "corn")[0].tolist()
    assert p == pytest.approx([sig(-2.0), sig(2.0) * sig(1.0), sig(2.0) * sig(-1.0)], abs=1e-15)


@pytest.mark.parametrize("head", ["coral", "corn"])
@pytest.mark.parametrize("scale", [0.5, 3.0, 40.0])
def test_probabilities_sum_to_one_are_non_negative_and_match_the_cumulative_ones(head, scale):
    z = logits(64, 6, seed=1, scale=scale)
    p = probabilities(z, head)
    assert p.shape == (64, 7) and bool((p >= 0).all())
    torch.testing.assert_close(p.sum(dim=1), torch.ones(64, dtype=torch.float64), rtol=0, atol=1e-12)
    tail = p.flip(1).cumsum(1).flip(1)[:, 1:]  # P(y > k) from the class probabilities
    q = cumulative_probabilities(z, head)
    torch.testing.assert_close(tail, q, rtol=0, atol=1e-12)
    assert bool((q[:, 1:] <= q[:, :-1]).all())  # rank consistent


@pytest.mark.parametrize("head", ["coral", "corn"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_outputs_give_finite_log_probabilities(head, dtype):
    z = torch.tensor([[1e4, 1e4, -1e4], [-1e4, -1e4, -1e4], [1e4, -1e4, 1e4], [0.0, 0.0, 0.0]], dtype=dtype)
    log_p = class_logits(z, head)
    assert bool(torch.isfinite(log_p).all())
    p = log_p.exp()
    torch.testing.assert_close(p.sum(dim=1), torch.ones(4, dtype=dtype), rtol=0, atol=1e-6)
    assert p[0].argmax() == 2 and p[1].argmax() == 0


def test_coral_log_probabilities_stay_exact_far_out():
    """p_1 = s(a) - s(b) for a = 60, b = 50 is about e^-50: computed in log space, not as 1 - 1."""
    log_p = class_logits(torch.tensor([[60.0, 50.0]], dtype=torch.float64), "coral")[0]
    want = math.log(sig(60.0)) + math.log(sig(-50.0)) + math.log(-math.expm1(-10.0))
    assert log_p[1].item() == pytest.approx(want, rel=1e-12)
    assert log_p[0].item() == pytest.approx(-60.0, rel=1e-12)


def test_softmax_outputs_pass_through_unchanged():
    z = logits(5, 4, seed=2)
    assert class_logits(z, "softmax") is z
    torch.testing.assert_close(probabilities(z, "softmax"), torch.softmax(z, dim=1))
    with pytest.raises(SpecError) as info:
        class_logits(z, "ordinal")
    assert info.value.field == "model.head"


def test_evaluate_reads_ordinal_heads_through_class_logits():
    from core.metrics import evaluate

    z = torch.tensor([[3.0, 2.0, -4.0], [-3.0, -4.0, -5.0], [5.0, 4.0, 3.0]], dtype=torch.float64)
    y = torch.tensor([2, 1, 3])
    m = evaluate(class_logits(z, "coral"), y, None, ["a", "b", "c", "d"])
    assert m["accuracy"] == pytest.approx(2 / 3)  # the most probable classes are 2, 0 and 3
    assert m["nll"] == pytest.approx(-probabilities(z, "coral")[[0, 1, 2], y].log().mean().item(), rel=1e-12)


# ------------------------------------------------------------------------------------------- decisions


def test_median_rule_is_coral_pytorchs_on_ordered_outputs():
    z = logits(200, 5, seed=3).sort(dim=1, descending=True).values  # ordered biases: monotone already
    want = proba_to_label(torch.sigmoid(z))
    assert torch.equal(decide_outputs(z, "coral", "median"), want)


def test_median_rule_is_coral_pytorchs_for_corn():
    z = logits(200, 5, seed=4)
    assert torch.equal(decide_outputs(z, "corn", "median"), corn_label_from_logits(z))


# P(y > k) = .8, .45, .4, so p = (.2, .35, .05, .4)
HAND = torch.tensor([[math.log(4.0), math.log(9 / 11), math.log(2 / 3)]], dtype=torch.float64)


def test_the_median_threshold_moves_the_answer_by_hand():
    """The median rule answers #{k : P(y > k) > threshold}; argmax and expected_value differ from it."""
    q = cumulative_probabilities(HAND, "coral")[0]
    torch.testing.assert_close(q, torch.tensor([0.8, 0.45, 0.4], dtype=torch.float64))
    got = {t: decide_outputs(HAND, "coral", "median", threshold=t).item() for t in (0.9, 0.5, 0.42, 0.3)}
    assert got == {0.9: 0, 0.5: 1, 0.42: 2, 0.3: 3}
    assert decide_outputs(HAND, "coral", "argmax").item() == 3
    # expected value .35 + .1 + 1.2 = 1.65: nearest class 2
    assert decide_outputs(HAND, "coral", "expected_value", class_values=[0.0, 1.0, 2.0, 3.0]).item() == 2


def test_model_decision_reads_model_json():
    mj = {"architecture": {"kind": "mlp", "head": "coral"}, "classes": ["a", "b", "c", "d"]}
    probs, pred = ModelDecision.from_model_json(mj)(HAND.float())  # no decision recorded: argmax
    assert pred.tolist() == [3]
    torch.testing.assert_close(probs[0], torch.tensor([0.2, 0.35, 0.05, 0.4], dtype=torch.float64))
    for threshold, want in ((0.5, 1), (0.42, 2)):
        mj["decision"] = {"rule": "median", "threshold": threshold}
        assert ModelDecision.from_model_json(mj)(HAND)[1].tolist() == [want]
    # min_expected_cost with S = .5 ** |i - j|: expected costs .5625, .425, .525, .4625 -> class 1
    mj["decision"] = {"rule": "min_expected_cost", "threshold": 0.5}
    mj["similarity"] = {"kind": "ordinal", "reduction_factor": 0.5}
    assert ModelDecision.from_model_json(mj)(HAND)[1].tolist() == [1]


def test_model_decision_of_a_softmax_model_is_argmax_of_softmax():
    z = logits(6, 3, seed=5)
    probs, pred = ModelDecision.from_model_json({"architecture": {"kind": "mlp"}, "classes": list("abc")})(z)
    torch.testing.assert_close(probs, torch.softmax(z, dim=1))
    assert torch.equal(pred, z.argmax(dim=1))


# ----------------------------------------------------------------------------------------- the modules


def test_coral_head_is_coral_pytorchs_layer():
    torch.manual_seed(0)
    peer = CoralLayer(8, 5)
    ours = CoralHead(8, 5)
    assert ours.weight.shape == (1, 8) and ours.coral_bias.shape == (4,)  # one weight vector, C - 1 biases
    torch.testing.assert_close(ours.coral_bias.detach(), peer.coral_bias.detach())  # preinit_bias
    with torch.no_grad():
        ours.weight.copy_(peer.coral_weights.weight)
    x = torch.randn(10, 8)
    torch.testing.assert_close(ours(x), peer(x), rtol=0, atol=1e-6)
    with torch.no_grad():
        ours.coral_bias.zero_()
    ours.reset_parameters()
    torch.testing.assert_close(ours.coral_bias.detach(), peer.coral_bias.detach())


DENSE = [({"kind": "linear"}, (64,)), ({"kind": "mlp", "hidden": [16]}, (64,)), ({"kind": "cnn"}, (1, 8, 8))]
TIMM = [({"kind": "timm", "architecture": "test_resnet"}, (3, 16, 16))]


@pytest.mark.parametrize("head", ["coral", "corn"])
@pytest.mark.parametrize("spec, shape", DENSE + TIMM)
def test_every_kind_builds_each_head_with_c_minus_1_outputs(spec, shape, head):
    spec = {**spec, "head": head}
    arch = architecture_json(spec, shape, 5)
    assert arch["head"] == head
    torch.manual_seed(0)
    model = build_model(spec, shape, 5).eval()
    assert get_kind(arch["kind"]).parameters(arch) == count_parameters(model)
    coral = [m for m in model.modules() if isinstance(m, CoralHead)]
    assert len(coral) == (1 if head == "coral" else 0)
    x = torch.randn(3, *shape)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (3, 4)
        again = rebuild_model({"architecture": arch}, model.state_dict())(x)
    assert torch.equal(out, again)
    names = head_parameter_names(model)
    head_params = [n for n, _ in model.named_parameters() if any(n.startswith(p + ".") for p in names)]
    assert any(n.endswith("coral_bias") for n in head_params) == (head == "coral")


@pytest.mark.parametrize("spec, shape", DENSE + TIMM)
def test_a_softmax_spec_and_architecture_are_as_before(spec, shape):
    assert "head" not in parse_model_spec(spec).model_dump()
    assert "head" not in architecture_json(spec, shape, 5)
    assert "head" not in architecture_json({**spec, "head": "softmax"}, shape, 5)
    assert parse_model_spec({**spec, "head": "corn"}).model_dump()["head"] == "corn"
    with pytest.raises(SpecError) as info:
        parse_model_spec({**spec, "head": "ordinal"})
    assert info.value.field == "model.head"


@pytest.mark.parametrize("head", ["coral", "corn"])
@pytest.mark.parametrize("spec, shape", [DENSE[1], *TIMM])
def test_warm_start_from_a_softmax_model_into_an_ordinal_head(spec, shape, head):
    """Same classes: the backbone loads, the head (another shape) keeps its own weights; other classes:
    the head is re-initialised and stays a C - 1 output head of its kind."""
    torch.manual_seed(0)
    source = build_model(spec, shape, 5).state_dict()
    for target_classes in (list("abcde"), list("abcdef")):
        model = build_model({**spec, "head": head}, shape, len(target_classes))
        report = load_init_weights(model, source, source_classes=list("abcde"), target_classes=target_classes)
        assert report.loaded
        with torch.no_grad():
            assert model.eval()(torch.randn(2, *shape)).shape == (2, len(target_classes) - 1)
        assert any(isinstance(m, CoralHead) for m in model.modules()) == (head == "coral")


@pytest.mark.parametrize("head", ["coral", "corn"])
@pytest.mark.parametrize("spec, shape", [DENSE[1], DENSE[2]])
def test_onnx_export_carries_the_conversion(spec, shape, head):
    torch.manual_seed(0)
    model = build_model({**spec, "head": head}, shape, 6).eval()
    session = ort.InferenceSession(export_onnx(with_class_logits(model, head), shape))
    assert [o.name for o in session.get_outputs()] == ["logits"]
    for n in (1, 7):
        x = np.random.default_rng(n).normal(size=(n, *shape)).astype(np.float32) * 3
        (onnx_out,) = session.run(None, {"x": x})
        with torch.no_grad():
            want = class_logits(model(torch.from_numpy(x)), head).numpy()
        assert onnx_out.shape == (n, 6)
        np.testing.assert_allclose(onnx_out, want, atol=1e-4, rtol=0)
        np.testing.assert_allclose(np.exp(onnx_out).sum(axis=1), 1.0, atol=1e-5)


def test_onnx_export_of_coral_with_rising_logits_stays_monotone():
    """The traced running minimum (ONNX has no cummin) gives what torch.cummin gives."""
    model = build_model({"kind": "linear", "head": "coral"}, (4,), 5).eval()
    with torch.no_grad():
        model.body[-1].coral_bias.copy_(torch.tensor([-1.0, 2.0, 0.5, 3.0]))
    session = ort.InferenceSession(export_onnx(with_class_logits(model, "coral"), (4,)))
    x = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    (onnx_out,) = session.run(None, {"x": x})
    with torch.no_grad():
        want = class_logits(model(torch.from_numpy(x)), "coral").numpy()
    np.testing.assert_allclose(onnx_out, want, atol=1e-4, rtol=0)
