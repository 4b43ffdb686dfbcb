"""Tests of the ordinal-head losses `coral` and `corn` (core/losses/coral.py, corn.py): agreement with
coral-pytorch (test dependency) on fixed inputs, float64 gradcheck, extreme logits, their specs and
checks, and a short digits training run with each head.

Run: cd /work/main && .venv/bin/python -m pytest tests/core/test_heads_losses.py -q
"""

from __future__ import annotations

import pytest
import torch
from coral_pytorch.dataset import levels_from_labelbatch
from coral_pytorch.layers import CoralLayer
from coral_pytorch.losses import coral_loss, corn_loss
from pydantic import ValidationError
from sklearn.datasets import load_digits

from core.errors import SpecError
from core.losses import HEAD_LOSS_KINDS, LOSS_KINDS, CoralLoss, CornLoss, build_loss, parse_loss_spec
from core.metrics import evaluate
from core.models import build_model
from core.models.heads import CoralHead, class_logits, decide_outputs

C = 6
CLASSES = [f"c{i}" for i in range(C)]
LOSSES = {"coral": CoralLoss, "corn": CornLoss}


def data(seed: int, n: int = 40, scale: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, C - 1, generator=g, dtype=torch.float64) * scale
    y = torch.randint(0, C, (n,), generator=g)
    y[:C] = torch.arange(C)  # every class occurs
    return z, y


def peer(kind: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if kind == "coral":
        return coral_loss(z, levels_from_labelbatch(y.tolist(), C, dtype=z.dtype))
    return corn_loss(z, y, C)


@pytest.mark.parametrize("kind", HEAD_LOSS_KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_value_and_gradient_agree_with_coral_pytorch(kind, seed):
    z, y = data(seed)
    ours = build_loss({"kind": kind}, None, CLASSES)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    mine, theirs = ours(z1, y), peer(kind, z2, y)
    assert mine.item() == pytest.approx(theirs.item(), rel=1e-6, abs=1e-6)
    mine.backward()
    theirs.backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", HEAD_LOSS_KINDS)
def test_agreement_on_a_batch_where_a_task_has_no_samples(kind):
    """Only the low classes: corn's upper tasks have no sample (coral-pytorch skips them)."""
    z = data(3)[0][:5]
    y = torch.tensor([0, 1, 0, 1, 2])
    assert LOSSES[kind](C)(z, y).item() == pytest.approx(peer(kind, z, y).item(), rel=1e-6, abs=1e-6)


def test_coral_head_and_loss_agree_with_coral_layer_and_coral_loss():
    torch.manual_seed(0)
    layer = CoralLayer(7, C)
    head = CoralHead(7, C)
    with torch.no_grad():
        head.weight.copy_(layer.coral_weights.weight)
        head.coral_bias.copy_(layer.coral_bias)
    x, y = torch.randn(30, 7), torch.randint(0, C, (30,))
    want = coral_loss(layer(x), levels_from_labelbatch(y.tolist(), C))
    assert CoralLoss(C)(head(x), y).item() == pytest.approx(want.item(), rel=1e-6)


def test_corn_batch_loss_is_the_mean_over_sample_task_pairs():
    z, y = data(4)
    loss = CornLoss(C)
    tasks = torch.clamp(y, max=C - 2) + 1  # tasks a sample takes part in
    want = loss.per_sample(z, y).sum() / tasks.sum()
    assert loss(z, y).item() == pytest.approx(want.item(), rel=1e-12)
    assert CoralLoss(C)(z, y).item() == pytest.approx(CoralLoss(C).per_sample(z, y).mean().item(), rel=1e-12)


@pytest.mark.parametrize("kind", HEAD_LOSS_KINDS)
def test_gradcheck_float64(kind):
    z, y = data(5, n=12)
    loss = LOSSES[kind](C)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (z,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda x: loss.per_sample(x, y), (z,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", HEAD_LOSS_KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_logits_give_finite_losses_and_gradients(kind, dtype):
    z = torch.tensor([[1e4] * (C - 1), [-1e4] * (C - 1), [1e4, -1e4, 1e4, -1e4, 1e4]], dtype=dtype)
    y = torch.tensor([0, C - 1, 2])
    z.requires_grad_(True)
    value = LOSSES[kind](C)(z, y)
    value.backward()
    assert torch.isfinite(value) and bool(torch.isfinite(z.grad).all())
    assert value.item() > 1e3  # confidently wrong: large, not saturated at a floor
    right = torch.tensor([[1e4] * 2 + [-1e4] * 3], dtype=dtype)
    assert LOSSES[kind](C)(right, torch.tensor([2])).item() == 0.0


@pytest.mark.parametrize("kind", HEAD_LOSS_KINDS)
def test_shapes_and_the_empty_batch(kind):
    loss = LOSSES[kind](C)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        loss(torch.zeros(3, C), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        loss(torch.zeros(3, C - 1), torch.zeros(3))
    empty = torch.zeros(0, C - 1, requires_grad=True)
    value = loss(empty, torch.zeros(0, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0


def test_specs_and_what_the_builder_refuses():
    assert set(HEAD_LOSS_KINDS) == {"coral", "corn"} and not set(HEAD_LOSS_KINDS) & set(LOSS_KINDS)
    assert parse_loss_spec({"kind": "coral"}).kind == "coral"
    with pytest.raises(ValidationError):
        parse_loss_spec({"kind": "corn", "alpha": 1.0})
    with pytest.raises(ValidationError):  # no other loss takes C - 1 outputs
        parse_loss_spec({"kind": "combined", "components": [{"weight": 1.0, "loss": {"kind": "coral"}}]})
    ordinal = {"kind": "ordinal", "values": {c: float(i) for i, c in enumerate(CLASSES)}}
    assert isinstance(build_loss({"kind": "corn"}, None, CLASSES, ordinal), CornLoss)
    assert isinstance(build_loss({"kind": "coral"}, None, CLASSES, {"kind": "identity"}), CoralLoss)
    falling = {"kind": "ordinal", "values": {c: float(-i) for i, c in enumerate(CLASSES)}}
    refused = [
        {"kind": "groups", "groups": [CLASSES[:3]], "within": 0.5},
        {"kind": "ordinal", "cyclic": True},
        falling,
    ]
    for sim_spec in refused:
        with pytest.raises(SpecError) as info:
            build_loss({"kind": "coral"}, None, CLASSES, sim_spec)
        assert info.value.field == "loss.kind"
    with pytest.raises(SpecError, match="c5"):  # says which order to list the classes in
        build_loss({"kind": "corn"}, None, CLASSES, falling)


# --------------------------------------------------------------------------------- a short training run


@pytest.fixture(scope="module")
def digits():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    yield x[perm[:1400]], y[perm[:1400]], x[perm[1400:]], y[perm[1400:]]
    torch.set_num_threads(before)


# head -> (hidden widths, full-batch Adam steps, lowest held-out accuracy of the median rule)
RUNS = {"coral": ([128, 64], 300, 0.5), "corn": ([64], 100, 0.85)}


@pytest.mark.parametrize("head", list(RUNS))
def test_a_digits_run_with_each_head_beats_chance_clearly(head, digits):
    """Digits 0-9 as ranks (chance: accuracy 0.1, mean rank distance 3.3). CORAL's single shared score
    has to put ten shapes on a line, so it learns more slowly than CORN."""
    hidden, steps, lowest = RUNS[head]
    x_train, y_train, x_test, y_test = digits
    classes = [str(i) for i in range(10)]
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "hidden": hidden, "head": head}, (64,), 10)
    loss_fn = build_loss({"kind": head}, None, classes, {"kind": "ordinal"})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x_train), y_train)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.5 * first
    with torch.no_grad():
        out = model.eval()(x_test)
    median = (decide_outputs(out, head, "median") == y_test).double().mean().item()
    metrics = evaluate(class_logits(out.double(), head), y_test, None, classes, {"kind": "ordinal"})
    assert median > lowest
    assert metrics["accuracy"] > 0.3 and metrics["mean_class_distance"] < 1.0
    rules = {row["rule"]: row["accuracy"] for row in metrics["decisions"]}
    assert rules["median"] == pytest.approx(median, abs=0.01)  # the table's median row, from p
