"""Peer tests: each loss simtrain shares with a published implementation agrees with it on fixed inputs,
and each named convention option reproduces the code it is named after.

- dlordinal (test dependency, `pip install --no-deps dlordinal deprecated`): EMDLoss, SORDLoss, CDWCELoss,
  WKLoss, SLACELoss and the unimodal soft-label losses (Beta/Binomial/Poisson/Exponential/Triangular
  CrossEntropyLoss, and ExponentialLoss for its `tau`) are run as they are, against simtrain's emd,
  soft_labels (ordinal S, "power"), cdw_ce, weighted_kappa, slace and unimodal_soft_labels: 1e-6.
- SimLoss (konstantinkobs/SimLoss), making-better-mistakes (fiveai/making-better-mistakes) and Ludwig
  (ludwig-ai/ludwig) are not packages one can install for this; their formulas are re-derived below
  from the files cited at each function, and the options `embedding rescale: "lower_bound"`,
  `hierarchical_xe weighting: "mbm_code"`, `hierarchy distance: "lca_height"` and `soft_labels
  normalise: "softmax"` reproduce them to 1e-6.

The inputs are moderate (logits of scale 1-2) so that the peers' 1e-8 / 1e-9 floors inside their logs
change nothing at 1e-6; where they saturate, simtrain stays exact (checked at the end).

Run: cd /work/main && .venv/bin/python -m pytest tests/core/test_losses_peers.py -q
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from dlordinal.losses import (
    BetaCrossEntropyLoss,
    BinomialCrossEntropyLoss,
    CDWCELoss,
    EMDLoss,
    ExponentialCrossEntropyLoss,
    ExponentialLoss,
    PoissonCrossEntropyLoss,
    SLACELoss,
    SORDLoss,
    TriangularCrossEntropyLoss,
    WKLoss,
)
from torch.nn import CrossEntropyLoss

from core.losses import build_loss
from core.similarity import build_similarity, hierarchy_paths, parse_similarity_spec

TOL = {"rtol": 1e-6, "atol": 1e-7}


def classes(c):
    return [f"c{i}" for i in range(c)]


def inputs(c, n=32, seed=0, scale=1.5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed + 100 * c)
    return (torch.randn(n, c, generator=g) * scale).to(dtype), torch.randint(0, c, (n,), generator=g)


def ours(spec, c, z, y, similarity=None):
    return build_loss(spec, None, classes(c), similarity).to(z.dtype)(z, y)


def close(got, want):
    torch.testing.assert_close(got.double(), torch.as_tensor(want).double(), **TOL)


# --- dlordinal ---------------------------------------------------------------------------------------------

SIZES = [3, 5, 8, 14]


@pytest.mark.parametrize("c", SIZES)
def test_emd_agrees_with_dlordinal(c):
    z, y = inputs(c)
    close(ours({"kind": "emd"}, c, z, y), EMDLoss(num_classes=c)(z, y))


@pytest.mark.parametrize("alpha,temperature", [(1.0, 1.0), (0.4, 1.0), (2.5, 0.5)])
@pytest.mark.parametrize("c", SIZES)
def test_ordinal_soft_labels_agree_with_sord(c, alpha, temperature):
    """SORD's target softmax(-alpha |j - y|) is soft_labels with S = r ** |i - j|, r = exp(-alpha T)."""
    z, y = inputs(c)
    sim = {"kind": "ordinal", "reduction_factor": math.exp(-alpha * temperature)}
    got = ours({"kind": "soft_labels", "temperature": temperature}, c, z, y, sim)
    close(got, SORDLoss(alpha=alpha, num_classes=c, train_targets=y)(z, y))


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("c", SIZES)
def test_cdw_ce_agrees_with_dlordinal(c, alpha):
    z, y = inputs(c)
    close(ours({"kind": "cdw_ce", "alpha": alpha}, c, z, y), CDWCELoss(num_classes=c, alpha=alpha)(z, y))


@pytest.mark.parametrize("weighting", ["linear", "quadratic"])
@pytest.mark.parametrize("c", SIZES)
def test_weighted_kappa_agrees_with_dlordinal(c, weighting):
    z, y = inputs(c, dtype=torch.float32)  # WKLoss computes in float32 only
    peer = WKLoss(num_classes=c, penalization_type=weighting, use_logits=True)(z, y)
    close(ours({"kind": "weighted_kappa", "weighting": weighting}, c, z.double(), y), peer)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("c", SIZES)
def test_slace_agrees_with_dlordinal(c, alpha):
    z, y = inputs(c, scale=1.0)
    close(ours({"kind": "slace", "alpha": alpha}, c, z, y), SLACELoss(alpha=alpha, num_classes=c)(z, y))


UNIMODAL = [  # (our spec fields, the dlordinal loss)
    ({"family": "beta"}, lambda c: BetaCrossEntropyLoss(num_classes=c)),
    ({"family": "beta", "eta": 0.7}, lambda c: BetaCrossEntropyLoss(num_classes=c, eta=0.7)),
    ({"family": "binomial"}, lambda c: BinomialCrossEntropyLoss(num_classes=c)),
    ({"family": "binomial", "eta": 0.5}, lambda c: BinomialCrossEntropyLoss(num_classes=c, eta=0.5)),
    ({"family": "poisson"}, lambda c: PoissonCrossEntropyLoss(num_classes=c)),
    ({"family": "poisson", "eta": 0.85}, lambda c: PoissonCrossEntropyLoss(num_classes=c, eta=0.85)),
    ({"family": "exponential"}, lambda c: ExponentialCrossEntropyLoss(num_classes=c)),
    ({"family": "exponential", "p": 2.0}, lambda c: ExponentialCrossEntropyLoss(num_classes=c, p=2.0)),
    (
        {"family": "exponential", "p": 1.5, "tau": 0.4, "eta": 0.9},
        lambda c: ExponentialLoss(CrossEntropyLoss(), num_classes=c, p=1.5, tau=0.4, eta=0.9),
    ),
    ({"family": "triangular"}, lambda c: TriangularCrossEntropyLoss(num_classes=c)),
    (
        {"family": "triangular", "alpha2": 0.01},
        lambda c: TriangularCrossEntropyLoss(num_classes=c, alpha2=0.01),
    ),
    ({"family": "triangular", "alpha2": 0.2, "eta": 0.5}, lambda c: TriangularCrossEntropyLoss(c, 0.2, 0.5)),
]


@pytest.mark.parametrize("case", range(len(UNIMODAL)), ids=[str(sorted(u[0].items())) for u in UNIMODAL])
@pytest.mark.parametrize("c", [2, *SIZES, 30])
def test_unimodal_soft_labels_agree_with_dlordinal(c, case):
    fields, peer = UNIMODAL[case]
    if fields["family"] == "beta" and not 3 <= c <= 14:
        c = 3 if c < 3 else 14  # the published beta parameters cover 3-14 classes
    z, y = inputs(c)
    got = ours({"kind": "unimodal_soft_labels", **fields}, c, z, y)
    close(got, peer(c)(z, y))


# --- SimLoss (konstantinkobs/SimLoss) ---------------------------------------------------------------------


def simloss_repo_matrix(cos, lower_bound):
    """image_classification/simloss/run.py, `main`: sim = (sim - lb) / (1 - lb); sim[sim < 0] = 0."""
    sim = (cos - lower_bound) / (1 - lower_bound)
    sim[sim < 0.0] = 0.0
    return sim


def simloss_repo_loss(probabilities, y, w, epsilon=1e-8):
    """image_classification/simloss/models/loss.py, `SimLoss.forward`: mean(-log(sum(w[y] * x) + eps))."""
    return torch.mean(-torch.log(torch.sum(w[y, :] * probabilities, dim=1) + epsilon))


@pytest.mark.parametrize("lower_bound", [0.0, 0.3, 0.5, 0.8])
def test_embedding_lower_bound_reproduces_simlosss_matrix_and_loss(lower_bound):
    g = torch.Generator().manual_seed(7)
    vectors = torch.randn(12, 16, generator=g, dtype=torch.float64) + 0.8  # mostly positive cosines
    names = classes(12)
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    cos = unit @ unit.T  # word2vec's `model.similarity`, a cosine: 1 on the diagonal
    spec = {
        "kind": "embedding",
        "vectors": {n: v.tolist() for n, v in zip(names, vectors)},
        "threshold": lower_bound,
        "rescale": "lower_bound",
    }
    theirs = simloss_repo_matrix(cos, lower_bound)
    got = build_similarity(spec, names)
    torch.testing.assert_close(got.double(), theirs, rtol=1e-6, atol=1e-7)
    z, y = inputs(12)
    close(ours({"kind": "simloss"}, 12, z, y, spec), simloss_repo_loss(torch.softmax(z, 1), y, theirs))


def test_simloss_stays_exact_where_the_repository_saturates():
    s = torch.eye(3, dtype=torch.float64)
    z = torch.tensor([[-40.0, 0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0])
    exact = 40.0 + math.log(2 + math.exp(-40.0))  # -log p_0 = log(e^-40 + 2) + 40
    got = build_loss({"kind": "simloss"}, s, classes(3)).double()(z, y).item()
    assert got == pytest.approx(exact, rel=1e-12)
    assert simloss_repo_loss(torch.softmax(z, 1), y, s).item() == pytest.approx(-math.log(1e-8), rel=1e-6)


# --- making-better-mistakes (fiveai/making-better-mistakes) ----------------------------------------------

# an unbalanced tree, every class at least two edges below the root (the code's last-denominator line,
# `self.onehot_den[i, :, j + 1] = 1.0`, needs that: a class right under the root would divide by 0)
MBM_TREE = {
    "c0": "a",
    "c1": "a",
    "c2": "b",
    "c3": "b",
    "c4": "b",
    "a": "ab",
    "b": "ab",
    "c5": "d",
    "c6": "d",
    "ab": "root",
    "d": "root",
}


def mbm_exponential_weighting(paths, alpha):
    """better_mistakes/trees.py, `get_exponential_weighting(hierarchy, value, normalize=True)`: every tree
    position p gets exp(-value * len(p)) (len(p): its depth, the root's () included), all divided by
    their fsum. Returned per node label (the weight of the edge from the node to its parent)."""
    depth = {node: len(path) - 1 - k for path in paths for k, node in enumerate(path)}
    raw = {node: math.exp(-alpha * d) for node, d in depth.items()}
    total = math.fsum(raw.values())
    return {node: w / total for node, w in raw.items()}


def mbm_hierarchical_xe(z, y, paths, alpha):
    """better_mistakes/model/losses.py, `HierarchicalLLLoss.__init__` / `forward` after a flat softmax
    (`HierarchicalCrossEntropyLoss`): per class, one-hot numerator and denominator leaf sets for each edge
    on its path from the leaf up (the last denominator: all leaves), then
    mean over the batch of sum_edges weight(edge) * -log(num / den)."""
    c, weights = len(paths), mbm_exponential_weighting(paths, alpha)
    num_edges = max(len(p) - 1 for p in paths)
    leaves_below = {node: [k for k, p in enumerate(paths) if node in p] for p in paths for node in p}
    onehot_num = torch.zeros(c, c, num_edges, dtype=torch.float64)
    onehot_den = torch.zeros(c, c, num_edges, dtype=torch.float64)
    w = torch.zeros(c, num_edges, dtype=torch.float64)
    for i, path in enumerate(paths):
        for j, node in enumerate(path[:-1]):  # the edge from `node` up to its parent
            onehot_num[i, leaves_below[node], j] = 1.0
            w[i, j] = weights[node]
        for j, node in enumerate(path[1:-1]):
            onehot_den[i, leaves_below[node], j] = 1.0
        onehot_den[i, :, len(path) - 2] = 1.0
    p = torch.softmax(z, 1).unsqueeze(1)
    num = torch.bmm(p, onehot_num[y]).squeeze(1)
    den = torch.bmm(p, onehot_den[y]).squeeze(1)
    idx = num != 0
    num[idx] = -torch.log(num[idx] / den[idx])
    return torch.mean(torch.sum(torch.flip(w[y] * num, dims=[1]), dim=1))


@pytest.mark.parametrize("alpha", [0.1, 0.5, 2.0])
def test_hierarchical_xe_mbm_code_reproduces_the_repository(alpha):
    names = classes(7)
    spec = {"kind": "hierarchy", "parents": MBM_TREE}
    paths = hierarchy_paths(parse_similarity_spec(spec), names)
    z, y = inputs(7, n=40)
    got = ours({"kind": "hierarchical_xe", "alpha": alpha, "weighting": "mbm_code"}, 7, z, y, spec)
    close(got, mbm_hierarchical_xe(z, y, paths, alpha))
    paper = ours({"kind": "hierarchical_xe", "alpha": alpha}, 7, z, y, spec)
    assert abs(paper.item() - got.item()) > 1e-3  # the two conventions differ


def lca_heights(paths):
    """The ILSVRC distance the repository's soft labels read (data/*_ilsvrc_distances): the height of
    the lowest common ancestor, re-derived from the tree: the most edges from it down to a leaf."""
    height: dict = {}
    for path in paths:
        for k, node in enumerate(path):
            height[node] = max(height.get(node, 0), k)
    c = len(paths)
    d = torch.zeros(c, c, dtype=torch.float64)
    for i in range(c):
        for j in range(c):
            common = [n for n in paths[i] if n in paths[j]]
            d[i, j] = height[common[0]] if i != j else 0.0
    return d


@pytest.mark.parametrize("beta", [4.0, 10.0, 30.0])
def test_lca_height_soft_labels_reproduce_make_all_soft_labels(beta):
    """better_mistakes/model/labels.py, `make_all_soft_labels(distances, classes, hardness)`: D / max(D),
    exp(-hardness D) normalised over each column, the column of the true class as the target; the same
    as soft_labels over `hierarchy` with distance "lca_height" and decay exp(-hardness / max(D))."""
    names = classes(7)
    spec = {"kind": "hierarchy", "parents": MBM_TREE, "distance": "lca_height"}
    distances = lca_heights(hierarchy_paths(parse_similarity_spec(spec), names))
    d = distances / distances.max()
    theirs = torch.exp(-beta * d) / torch.sum(torch.exp(-beta * d), dim=0)
    sim = dict(spec, decay=math.exp(-beta / distances.max().item()))  # decay ** h = exp(-beta h / max)
    z, y = inputs(7, n=40)
    want = -(theirs[:, y].T * torch.log_softmax(z, 1)).sum(dim=1).mean()
    close(ours({"kind": "soft_labels"}, 7, z, y, sim), want)


# --- Ludwig (ludwig-ai/ludwig) -----------------------------------------------------------------------------


def ludwig_softmax(x, temperature=1.0):
    """ludwig/utils/math_utils.py, `softmax`."""
    e_x = np.exp((x - np.max(x)) / temperature)
    return e_x / e_x.sum()


def ludwig_class_similarity_targets(similarities, temperature):
    """ludwig/features/category_feature.py, `update_config_with_metadata`: each row of
    `class_similarities` through `softmax(row, temperature=class_similarities_temperature)`; the loss
    then uses the row of the true class as the target of a softmax cross-entropy (ludwig's
    `class_similarities` gathered by target)."""
    similarities = np.array(similarities, dtype=np.float64)
    for i in range(len(similarities)):
        similarities[i, :] = ludwig_softmax(similarities[i, :], temperature=temperature)
    return similarities


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_softmax_normalise_reproduces_ludwigs_class_similarities(temperature):
    sim = {"kind": "ordinal", "reduction_factor": 0.6}
    s = build_similarity(sim, classes(6)).double().numpy()
    targets = torch.from_numpy(ludwig_class_similarity_targets(s, temperature))
    z, y = inputs(6)
    want = -(targets[y] * torch.log_softmax(z, 1)).sum(dim=1).mean()
    got = ours({"kind": "soft_labels", "normalise": "softmax", "temperature": temperature}, 6, z, y, sim)
    close(got, want)
