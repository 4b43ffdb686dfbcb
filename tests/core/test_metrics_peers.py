"""core.metrics.evaluate against its peers on fixed inputs: dlordinal's ordinal metrics, scikit-learn's
quadratic kappa and recall, and making-better-mistakes' hierarchical distance @k re-derived from its code
(github.com/fiveai/making-better-mistakes, better_mistakes/model/run_xent.py, `run`: topK_hdist,
mistakes_ids, `ilsvrc_dist_avg/k`, `ilsvrc_dist_mistakes/avgk`). Where simtrain keeps the textbook
definition and a peer has a quirk, the quirk case asserts the difference.

Run: cd /work/main && .venv/bin/python -m pytest tests/core/test_metrics_peers.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dlordinal.metrics import accuracy_off1, amae, gmsec, minimum_sensitivity, mmae, ranked_probability_score
from sklearn.metrics import cohen_kappa_score, recall_score

from core.metrics import evaluate

ORDINAL = {"kind": "ordinal", "reduction_factor": 0.5}
TOL = 1e-6


def _fixed(n: int = 300, c: int = 5, seed: int = 0):
    """Logits and targets in which every class is true and predicted at least once."""
    g = torch.Generator().manual_seed(seed)
    targets = torch.cat([torch.arange(c), torch.randint(0, c, (n - c,), generator=g)])
    logits = (
        torch.randn(n, c, generator=g, dtype=torch.float64) + 2.0 * torch.eye(c, dtype=torch.float64)[targets]
    )
    assert set(logits.argmax(1).tolist()) == set(range(c))
    return logits, targets


def _ours(logits, targets, spec=ORDINAL):
    return evaluate(logits, targets, None, [str(k) for k in range(logits.shape[1])], spec)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ordinal_metrics_agree_with_dlordinal(seed):
    logits, targets = _fixed(seed=seed)
    m = _ours(logits, targets)
    y, probs = targets.numpy(), torch.softmax(logits, 1).numpy()
    pred = probs.argmax(1)
    assert m["amae"] == pytest.approx(amae(y, pred), abs=TOL)
    assert m["mmae"] == pytest.approx(mmae(y, pred), abs=TOL)
    assert m["off_by_one_accuracy"] == pytest.approx(accuracy_off1(y, pred), abs=TOL)
    assert m["minimum_sensitivity"] == pytest.approx(minimum_sensitivity(y, pred), abs=TOL)
    assert m["gmsec"] == pytest.approx(gmsec(y, pred), abs=TOL)
    assert m["ranked_probability_score"] == pytest.approx(ranked_probability_score(y, probs), abs=TOL)
    assert m["mean_class_distance"] == pytest.approx(np.abs(y - pred).mean(), abs=TOL)


@pytest.mark.parametrize("seed", [0, 1])
def test_kappa_and_recall_agree_with_scikit_learn(seed):
    logits, targets = _fixed(c=6, seed=seed)
    targets[targets == 4] = 3  # class 4 never true, still predicted
    m = _ours(logits, targets)
    y, pred, labels = targets.numpy(), logits.argmax(1).numpy(), list(range(6))
    kappa = cohen_kappa_score(y, pred, weights="quadratic", labels=labels)
    assert m["quadratic_weighted_kappa"] == pytest.approx(kappa, abs=TOL)
    recall = recall_score(y, pred, labels=labels, average=None, zero_division=np.nan)
    assert m["per_class_recall"][4] is None and np.isnan(recall[4])
    ours = np.array([np.nan if r is None else r for r in m["per_class_recall"]])
    np.testing.assert_allclose(ours, recall, atol=TOL)


def test_kappa_keeps_absent_classes_on_the_scale_unlike_scikit_learn_default_labels():
    """scikit-learn infers the labels from the data by default: with class 1 absent, 0 / 2 / 3 weigh as
    0 / 1 / 2; with labels=range(C) it agrees with simtrain, which always takes d from the scale."""
    logits = torch.eye(4, dtype=torch.float64)[[0, 2, 3, 3, 0, 2]] * 3
    targets = torch.tensor([0, 3, 2, 3, 2, 0])
    m = _ours(logits, targets)
    y, pred = targets.numpy(), logits.argmax(1).numpy()
    full = cohen_kappa_score(y, pred, weights="quadratic", labels=[0, 1, 2, 3])
    assert m["quadratic_weighted_kappa"] == pytest.approx(full, abs=TOL)
    inferred = cohen_kappa_score(y, pred, weights="quadratic")
    assert abs(m["quadratic_weighted_kappa"] - inferred) > 0.01


def test_amae_quirk_dlordinal_shrinks_when_a_class_is_absent():
    """Class 1 is neither true nor predicted: dlordinal re-indexes 0, 2 as 0, 1 and halves the error."""
    logits = torch.eye(3, dtype=torch.float64)[[2, 0, 0]] * 3
    targets = torch.tensor([0, 2, 0])
    m = _ours(logits, targets)
    y, pred = targets.numpy(), logits.argmax(1).numpy()
    assert m["amae"] == pytest.approx((1.0 + 2.0) / 2) and m["mmae"] == 2.0  # class 0: (2 + 0) / 2
    assert amae(y, pred) == pytest.approx(m["amae"] / 2) and mmae(y, pred) == pytest.approx(1.0)


def test_off_by_one_quirk_dlordinal_drops_predictions_of_classes_never_true():
    logits = torch.eye(4, dtype=torch.float64)[[3, 1, 0, 0]] * 3
    targets = torch.tensor([0, 1, 1, 0])
    m = _ours(logits, targets)
    y, pred = targets.numpy(), logits.argmax(1).numpy()
    assert m["off_by_one_accuracy"] == 0.75  # the sample predicted 3 for truth 0 is off by three
    assert accuracy_off1(y, pred) == 1.0  # dlordinal: that sample is left out of its confusion matrix


def test_sensitivity_quirks_dlordinal_counts_classes_never_true():
    logits = torch.eye(3, dtype=torch.float64)[[0, 2, 1, 1]] * 3
    targets = torch.tensor([0, 0, 1, 1])
    m = _ours(logits, targets)
    y, pred = targets.numpy(), logits.argmax(1).numpy()
    with pytest.warns(Warning):  # scikit-learn: recall of class 2 is 0 / 0
        theirs = minimum_sensitivity(y, pred)
    assert m["minimum_sensitivity"] == 0.5 and theirs == 0.0
    with pytest.warns(Warning):
        assert gmsec(y, pred) == 0.0
    assert m["gmsec"] is None  # the last class is never true: its sensitivity is undefined
    # class 0 absent: dlordinal takes class 1 as the first extreme class
    logits, targets = torch.eye(3, dtype=torch.float64)[[1, 2]] * 3, torch.tensor([1, 2])
    assert gmsec(targets.numpy(), logits.argmax(1).numpy()) == 1.0
    assert _ours(logits, targets)["gmsec"] is None


# ----------------------------------------------------------------------- making-better-mistakes


def _random_tree(num_classes: int, seed: int) -> dict[str, str]:
    """An unbalanced tree: each class hangs below a random chain of inner nodes."""
    rng = np.random.default_rng(seed)
    parents: dict[str, str] = {}
    inner = ["root"]
    for k in range(8):
        node = f"n{k}"
        parents[node] = inner[rng.integers(len(inner))]
        inner.append(node)
    for k in range(num_classes):
        parents[f"c{k}"] = inner[rng.integers(len(inner))]
    return parents


def _path(parents: dict[str, str], node: str) -> list[str]:
    out = [node]
    while out[-1] in parents:
        out.append(parents[out[-1]])
    return out


def _lca_height_naive(parents: dict[str, str], classes: list[str]) -> dict[tuple[str, str], int]:
    """MBM's distance table {(a, b): height of LCA(a, b)} with heights in the tree the classes span."""
    children: dict[str, set[str]] = {}
    for c in classes:
        node = c
        while node in parents:
            children.setdefault(parents[node], set()).add(node)
            node = parents[node]

    def height(node: str) -> int:
        return 0 if node not in children else 1 + max(height(ch) for ch in children[node])

    table = {}
    for a in classes:
        up = set(_path(parents, a))
        for b in classes:
            table[(a, b)] = height(next(n for n in _path(parents, b) if n in up))
    return table


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hierarchical_distance_at_k_agrees_with_making_better_mistakes(seed):
    parents = _random_tree(12, seed)
    classes = [f"c{k}" for k in range(12)]
    distances = _lca_height_naive(parents, classes)
    depth = {c: len(_path(parents, c)) for c in classes}
    assert len(set(depth.values())) > 1  # unbalanced: the LCA height differs from the longer path to it
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 12, (200,), generator=g)
    output = (
        torch.randn(200, 12, generator=g, dtype=torch.float64)
        + 1.5 * torch.eye(12, dtype=torch.float64)[targets]
    )
    m = evaluate(output, targets, None, classes, {"kind": "hierarchy", "parents": parents})

    # run_xent.py, as written there (one batch): topK_hdist, mistakes_ids, the two summaries
    ks = (1, 5)
    _, predicted = output.topk(max(ks), 1, True, True)
    top_hdist = np.empty([200, max(ks)])
    for i in range(200):
        for j in range(max(ks)):
            top_hdist[i, j] = distances[(classes[predicted[i][j]], classes[targets[i]])]
    mistakes_ids = np.where(top_hdist[:, 0] != 0)[0]
    top_hdist_mistakes = top_hdist[mistakes_ids, :]
    for k in ks:
        assert m["hierarchical_distance_at_k"][str(k)] == pytest.approx(np.mean(top_hdist[:, :k]), abs=TOL)
        mistakes = np.sum(top_hdist_mistakes[:, :k]) / (len(mistakes_ids) * k)
        assert m["mistake_severity_at_k"][str(k)] == pytest.approx(mistakes, abs=TOL)
