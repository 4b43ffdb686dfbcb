"""A small real training run per loss kind: scikit-learn's bundled digits, a tiny MLP, full-batch Adam
on the CPU. Each run must lower its loss and reach > 0.7 held-out accuracy (chance is 0.1).

expected_value only constrains the predicted mean E[v], so its prediction is the class whose value is
nearest to E[v] (the argmax of p is not what it trains); every other kind is scored by the argmax.

Run: cd /work/main && /tmp/venv/bin/pytest tests/core/test_loss_training.py -q   (a few seconds)
"""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from core.losses import LOSS_KINDS, build_loss
from core.metrics import evaluate

CLASSES = [str(i) for i in range(10)]
ORDINAL = {"kind": "ordinal", "reduction_factor": 0.3}
SHAPES = {"kind": "groups", "groups": [["0", "6", "8", "9"], ["1", "4", "7"], ["2", "3", "5"]], "within": 0.3}
TREE = {
    "kind": "hierarchy",
    "parents": {
        "0": "round",
        "6": "round",
        "8": "round",
        "9": "round",
        "1": "straight",
        "4": "straight",
        "7": "straight",
        "2": "curvy",
        "3": "curvy",
        "5": "curvy",
        "round": "digit",
        "straight": "digit",
        "curvy": "digit",
    },
}

RUNS = {
    "cross_entropy": ({"kind": "cross_entropy", "label_smoothing": 0.05}, None, 60),
    "simloss": ({"kind": "simloss"}, ORDINAL, 60),
    "soft_labels": ({"kind": "soft_labels", "temperature": 0.5}, SHAPES, 60),
    "expected_value": ({"kind": "expected_value"}, ORDINAL, 150),
    "expected_cost": ({"kind": "expected_cost"}, SHAPES, 100),
    "pairwise": ({"kind": "pairwise"}, SHAPES, 60),
    "partial_credit": ({"kind": "partial_credit", "min_similarity": 0.2}, ORDINAL, 60),
    "hierarchical_xe": ({"kind": "hierarchical_xe", "alpha": 0.5}, TREE, 60),
    "emd": ({"kind": "emd"}, ORDINAL, 60),
    "cdw_ce": ({"kind": "cdw_ce"}, ORDINAL, 60),
    "weighted_kappa": ({"kind": "weighted_kappa", "weighting": "linear"}, ORDINAL, 150),
    "slace": ({"kind": "slace"}, ORDINAL, 60),
    "unimodal_soft_labels": ({"kind": "unimodal_soft_labels", "family": "triangular"}, ORDINAL, 60),
    "focal": ({"kind": "focal"}, None, 60),
    "combined": (
        {
            "kind": "combined",
            "components": [
                {"weight": 0.7, "loss": {"kind": "cross_entropy"}},
                {"weight": 0.3, "loss": {"kind": "expected_value"}},
            ],
        },
        ORDINAL,
        60,
    ),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: one thread is fastest and avoids spinning against other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, test = perm[:1400], perm[1400:]
    return x[train], y[train], x[test], y[test]


def test_every_kind_is_trained():
    assert set(RUNS) == set(LOSS_KINDS)


@pytest.mark.parametrize("kind", list(RUNS))
def test_training_lowers_the_loss_and_learns(kind, digits):
    spec, similarity_spec, steps = RUNS[kind]
    x_train, y_train, x_test, y_test = digits
    loss_fn = build_loss(spec, None, CLASSES, similarity_spec)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-2 if kind == "expected_value" else 1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x_train), y_train)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[:: max(1, steps // 10)]
    with torch.no_grad():
        logits = model(x_test)
    if kind == "expected_value":
        expected = torch.softmax(logits, 1) @ torch.arange(10.0)
        accuracy = (expected.round().clamp(0, 9).long() == y_test).float().mean().item()
    else:
        accuracy = evaluate(logits, y_test, None, CLASSES, similarity_spec)["accuracy"]
    assert accuracy > 0.7, (kind, accuracy)
