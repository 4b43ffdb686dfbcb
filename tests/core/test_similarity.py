"""Tests for core.similarity: each spec kind's matrix, S's invariants (hypothesis), every rejection.

Run: cd /work/main && /tmp/venv/bin/pytest tests/core/test_similarity.py -q
"""

from __future__ import annotations

import math
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.errors import SpecError
from core.similarity import (
    MAX_CLASSES,
    SimilaritySpec,
    build_similarity,
    class_groups,
    class_values,
    parse_similarity_spec,
    similarity_warnings,
)

ANIMALS = ["horse", "zebra", "whale", "shark"]
DIGITS = [str(i) for i in range(10)]
TREE = {
    "cat": "feline",
    "lion": "feline",
    "dog": "canine",
    "wolf": "canine",
    "feline": "mammal",
    "canine": "mammal",
    "mammal": "animal",
    "trout": "fish",
    "fish": "animal",
}


# --- each kind --------------------------------------------------------------------------------


def test_identity():
    s = build_similarity({"kind": "identity"}, ANIMALS)
    assert s.dtype == torch.float32 and torch.equal(s, torch.eye(4))


def test_matrix_in_class_order_and_not_symmetrised():
    values = [[1, 0.5, 0], [0.2, 1, 0], [0, 0, 1]]
    s = build_similarity({"kind": "matrix", "values": values}, ["a", "b", "c"])
    assert torch.equal(s, torch.tensor(values, dtype=torch.float32))


def test_ordinal_default_is_reduction_factor_to_the_index_distance():
    s = build_similarity({"kind": "ordinal", "reduction_factor": 0.5}, DIGITS[:4])
    expected = torch.tensor([[0.5 ** abs(i - j) for j in range(4)] for i in range(4)])
    assert torch.allclose(s, expected)


def test_ordinal_values_map_allows_subsets_and_extra_classes():
    spec = {
        "kind": "ordinal",
        "reduction_factor": 0.5,
        "values": {"young": 10, "mid": 11, "old": 13, "unused": 99},
    }
    s = build_similarity(spec, ["old", "young"])
    assert torch.allclose(s, torch.tensor([[1, 0.5**3], [0.5**3, 1]]))
    values, period = class_values(spec, ["old", "young"])
    assert values.tolist() == [13.0, 10.0] and period is None


def test_ordinal_cyclic_eight_is_closer_to_one_than_to_four():
    classes = [str(i) for i in range(1, 9)]
    s = build_similarity({"kind": "ordinal", "reduction_factor": 0.5, "cyclic": True}, classes)
    assert s[7, 0] == 0.5 and s[7, 3] == 0.5**4 and s[7, 0] > s[7, 3]
    assert class_values({"kind": "ordinal", "cyclic": True}, classes)[1] == 8.0


def test_ordinal_cyclic_values_default_period_is_span_plus_step():
    spec = {
        "kind": "ordinal",
        "reduction_factor": 0.5,
        "cyclic": True,
        "values": {"N": 0, "E": 90, "S": 180, "W": 270},
    }
    _, period = class_values(spec, ["N", "E", "S", "W"])
    assert period == 360.0
    s = build_similarity(dict(spec, reduction_factor=0.99), ["N", "E", "S", "W"])
    assert torch.isclose(s[0, 3], torch.tensor(0.99**90)) and torch.isclose(s[0, 2], torch.tensor(0.99**180))
    hours = {"kind": "ordinal", "cyclic": True, "values": {str(h): h for h in range(24)}}
    assert class_values(hours, ["0", "23"])[1] == 24.0
    explicit = dict(hours, period=48.0)
    assert class_values(explicit, ["0", "23"])[1] == 48.0


def test_groups_within_between_and_ungrouped_classes():
    spec = {
        "kind": "groups",
        "groups": [["horse", "zebra"], ["whale", "shark"]],
        "within": 0.6,
        "between": 0.1,
    }
    s = build_similarity(spec, ANIMALS + ["car"])
    assert math.isclose(s[0, 1], 0.6, rel_tol=1e-6) and math.isclose(s[2, 3], 0.6, rel_tol=1e-6)
    assert math.isclose(s[0, 2], 0.1, rel_tol=1e-6) and math.isclose(s[4, 0], 0.1, rel_tol=1e-6)
    assert class_groups(spec, ["car"] + ANIMALS + ["bus"]) == [0, 1, 1, 2, 2, 3]


def test_pairs_symmetric_and_directed():
    s = build_similarity({"kind": "pairs", "pairs": [["a", "b", 0.3]]}, ["a", "b", "c"])
    assert torch.allclose(s, torch.tensor([[1, 0.3, 0], [0.3, 1, 0], [0, 0, 1]]))
    s = build_similarity({"kind": "pairs", "symmetric": False, "pairs": [["a", "b", 0.3]]}, ["a", "b", "c"])
    assert math.isclose(s[0, 1], 0.3, rel_tol=1e-6) and s[1, 0] == 0


def test_hierarchy_decay_to_the_height_of_the_lowest_common_ancestor():
    classes = ["cat", "lion", "dog", "wolf", "trout"]
    s = build_similarity({"kind": "hierarchy", "parents": TREE, "decay": 0.5}, classes)
    assert s[0, 1] == 0.5  # siblings
    assert s[0, 2] == 0.25  # cousins, LCA two edges up
    assert s[0, 4] == 0.125 and s[4, 0] == 0.125  # LCA "animal": 3 edges from cat, 2 from trout -> max 3
    assert class_groups({"kind": "hierarchy", "parents": TREE}, classes) == [0, 0, 1, 1, 2]


def test_hierarchy_forest_gives_zero_across_trees():
    s = build_similarity({"kind": "hierarchy", "parents": {"a": "x", "b": "x", "c": "y"}}, ["a", "b", "c"])
    assert s[0, 1] == 0.5 and s[0, 2] == 0 and s[2, 2] == 1


def test_embedding_from_given_vectors():
    spec = {"kind": "embedding", "vectors": {"a": [1, 0], "b": [1, 1], "c": [0, 1], "d": [-1, 0]}}
    s = build_similarity(spec, ["a", "b", "c", "d"])
    r = 1 / math.sqrt(2)
    assert torch.allclose(s[0], torch.tensor([1, r, 0, 0]))
    s = build_similarity(dict(spec, threshold=0.8), ["a", "b", "c"])
    assert s[0, 1] == 0  # 0.707 < 0.8
    s = build_similarity(dict(spec, power=2.0, reduction_factor=0.5), ["a", "b"])
    assert math.isclose(s[0, 1], 0.5 * 0.5, rel_tol=1e-6)


def test_matrix_within_tolerance_is_clipped_with_a_warning():
    values = [[1.0 + 2e-16, -5e-7, 0.3], [1.0 + 5e-7, 1.0, 0.0], [0.2, 0.4, 1.0 - 4e-7]]
    s = build_similarity({"kind": "matrix", "values": values}, ["a", "b", "c"])
    assert torch.equal(s.diagonal(), torch.ones(3)) and s[0, 1] == 0 and s[1, 0] == 1
    assert math.isclose(s[0, 2], 0.3, rel_tol=1e-6)
    notes = similarity_warnings({"kind": "matrix", "values": values}, ["a", "b", "c"])
    assert len(notes) == 2 and all(n.startswith("similarity.values: ") for n in notes)
    assert "2 entries outside [0, 1] by at most 5e-07" in notes[0] and "clipped" in notes[0]
    assert "2 diagonal entries differ from 1 by at most 4e-07" in notes[1]


def test_exact_specs_have_no_warnings():
    assert similarity_warnings({"kind": "matrix", "values": [[1.0, 0.5], [0.0, 1.0]]}, ["a", "b"]) == []
    assert similarity_warnings({"kind": "ordinal"}, ["a", "b"]) == []


@pytest.mark.parametrize(
    "values,loc",
    [
        ([[1.0, 1.0 + 2e-6], [0.5, 1.0]], ("matrix", "values", 0, 1)),
        ([[1.0, -2e-6], [0.5, 1.0]], ("matrix", "values", 0, 1)),
        ([[1.0 + 2e-6, 0.5], [0.5, 1.0]], ("matrix", "values", 0, 0)),
        ([[1.0, 0.5], [0.5, 1.0 - 2e-6]], ("matrix", "values")),
    ],
)
def test_matrix_beyond_tolerance_is_refused(values, loc):
    assert loc in _loc({"kind": "matrix", "values": values})


def test_embedding_lower_bound_rescales_as_simloss_does():
    spec = {"kind": "embedding", "vectors": {"a": [1, 0], "b": [1, 1], "c": [0, 1], "d": [3, 1]}}
    classes = ["a", "b", "c", "d"]
    v = torch.tensor([[1, 0], [1, 1], [0, 1], [3, 1]], dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True)
    cos = v @ v.T
    for lb in (0.0, 0.3, 0.8):
        s = build_similarity(dict(spec, threshold=lb, rescale="lower_bound"), classes)
        want = ((cos - lb) / (1 - lb)).clamp(min=0).fill_diagonal_(1.0)  # SimLoss run.py
        torch.testing.assert_close(s.double(), want, rtol=1e-6, atol=1e-7)
    plain = build_similarity(dict(spec, threshold=0.3), classes)  # today's: zero under it, no rescale
    assert math.isclose(plain[0, 1], 1 / math.sqrt(2), rel_tol=1e-6)


def test_hierarchy_lca_height_uses_the_whole_tree():
    # r has a deep branch (b under y under x) and a shallow leaf c; z is a leaf no class uses
    parents = {"a": "x", "y": "x", "b": "y", "x": "r", "c": "r", "z": "w", "w": "v", "v": "y"}
    classes = ["a", "b", "c"]
    longest = build_similarity({"kind": "hierarchy", "parents": parents, "decay": 0.5}, classes)
    lca = build_similarity(
        {"kind": "hierarchy", "parents": parents, "decay": 0.5, "distance": "lca_height"}, classes
    )
    # LCA(a, b) = x: paths 1 and 2 edges, but x's height is 4 (x - y - v - w - z)
    assert longest[0, 1] == 0.5**2 and lca[0, 1] == 0.5**4
    # LCA(a, c) = r: paths 2 and 1, r's height 5
    assert longest[0, 2] == 0.5**2 and lca[0, 2] == 0.5**5
    assert torch.equal(lca, lca.T) and torch.equal(lca.diagonal(), torch.ones(3))
    balanced = {"kind": "hierarchy", "parents": TREE}
    animals = ["cat", "lion", "dog", "wolf"]
    assert torch.equal(
        build_similarity(dict(balanced, distance="lca_height"), animals), build_similarity(balanced, animals)
    )


def test_embedding_with_the_packaged_model_ranks_related_animals_higher():
    s = build_similarity({"kind": "embedding", "model": "all-MiniLM-L6-v2"}, ANIMALS)
    horse, zebra, whale, shark = range(4)
    assert s[horse, zebra] > s[horse, whale]
    assert s[whale, shark] > s[horse, whale]
    assert torch.equal(s.diagonal(), torch.ones(4)) and (s >= 0).all() and (s <= 1).all()
    assert torch.allclose(s, s.T)
    # cached per process: a second build is fast
    t = time.perf_counter()
    build_similarity({"kind": "embedding", "model": "all-MiniLM-L6-v2"}, ANIMALS)
    assert time.perf_counter() - t < 0.5


# --- invariants over random valid specs -----------------------------------------------------


@st.composite
def specs(draw):
    c = draw(st.integers(1, 8))
    classes = [f"c{i}" for i in range(c)]
    kind = draw(
        st.sampled_from(["identity", "matrix", "ordinal", "groups", "pairs", "hierarchy", "embedding"])
    )
    unit = st.floats(0, 1)
    if kind == "identity":
        spec = {"kind": kind}
    elif kind == "matrix":
        nearly = st.floats(-1e-6, 1 + 1e-6)  # within the tolerance: clipped
        rows = [
            [draw(st.floats(1 - 9e-7, 1 + 1e-6)) if i == j else draw(nearly) for j in range(c)]
            for i in range(c)
        ]
        spec = {"kind": kind, "values": rows}
    elif kind == "ordinal":
        spec = {"kind": kind, "reduction_factor": draw(unit), "cyclic": draw(st.booleans())}
        if draw(st.booleans()):
            vals = draw(st.lists(st.integers(-50, 50), min_size=c, max_size=c, unique=True))
            spec["values"] = {name: float(v) for name, v in zip(classes, vals)}
            if spec["cyclic"] and (c == 1 or draw(st.booleans())):
                spec["period"] = float(max(vals) - min(vals)) + draw(st.floats(0.5, 20))
    elif kind == "groups":
        labels = draw(st.lists(st.integers(-1, 3), min_size=c, max_size=c))
        groups = [[n for n, g in zip(classes, labels) if g == k] for k in range(4)]
        groups = [g for g in groups if g] or [[classes[0]]]
        within = draw(unit)
        spec = {"kind": kind, "groups": groups, "within": within, "between": draw(st.floats(0, within))}
    elif kind == "pairs":
        symmetric = draw(st.booleans())
        keys = [(a, b) for a in classes for b in classes if (a < b if symmetric else a != b)]
        chosen = draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []
        spec = {"kind": kind, "symmetric": symmetric, "pairs": [[a, b, draw(unit)] for a, b in chosen]}
    elif kind == "hierarchy":
        inner = draw(st.integers(1, 4))
        parents = {f"n{i}": f"n{draw(st.integers(0, i - 1))}" for i in range(1, inner)}
        parents.update({name: f"n{draw(st.integers(0, inner - 1))}" for name in classes})
        distance = draw(st.sampled_from(["longest_path", "lca_height"]))
        spec = {"kind": kind, "parents": parents, "decay": draw(unit), "distance": distance}
    else:
        dim = draw(st.integers(1, 5))
        vec = st.lists(st.floats(-10, 10), min_size=dim, max_size=dim).filter(
            lambda v: any(abs(x) > 1e-3 for x in v)
        )
        spec = {
            "kind": kind,
            "vectors": {name: draw(vec) for name in classes},
            "threshold": draw(st.floats(0, 0.99)),
            "rescale": draw(st.sampled_from(["none", "lower_bound"])),
            "power": draw(st.floats(0.1, 5)),
            "reduction_factor": draw(st.floats(0.01, 1)),
        }
    return spec, classes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_similarity_invariants(case):
    spec, classes = case
    s = build_similarity(spec, classes)
    c = len(classes)
    assert s.shape == (c, c) and s.dtype == torch.float32
    assert torch.isfinite(s).all()
    assert torch.equal(s.diagonal(), torch.ones(c))
    assert (s >= 0).all() and (s <= 1).all()
    symmetric = not (spec["kind"] == "matrix" or (spec["kind"] == "pairs" and not spec["symmetric"]))
    if symmetric:
        assert torch.allclose(s, s.T, atol=1e-6)
    # the same dict validates as a spec model and builds the same matrix
    assert torch.equal(build_similarity(parse_similarity_spec(spec), classes), s)


# --- rejections ---------------------------------------------------------------------------------


def _loc(spec):
    with pytest.raises(ValidationError) as info:
        parse_similarity_spec(spec)
    return [tuple(e["loc"]) for e in info.value.errors()]


M2 = [[1.0, 0.5], [0.5, 1.0]]

INVALID = [
    ({"kind": "nope"}, ()),
    ({}, ()),
    ({"kind": "identity", "extra": 1}, ("identity", "extra")),
    ({"kind": "matrix"}, ("matrix", "values")),
    ({"kind": "matrix", "values": [[1.0, 0.5]]}, ("matrix", "values")),
    ({"kind": "matrix", "values": [[1.0, float("nan")], [0.5, 1.0]]}, ("matrix", "values", 0, 1)),
    ({"kind": "matrix", "values": [[1.0, float("inf")], [0.5, 1.0]]}, ("matrix", "values", 0, 1)),
    ({"kind": "matrix", "values": [[1.0, 1.5], [0.5, 1.0]]}, ("matrix", "values", 0, 1)),
    ({"kind": "matrix", "values": [[1.0, -0.1], [0.5, 1.0]]}, ("matrix", "values", 0, 1)),
    ({"kind": "matrix", "values": [[0.9, 0.5], [0.5, 1.0]]}, ("matrix", "values")),
    ({"kind": "matrix", "values": [[1.0, "0.5"], [0.5, 1.0]]}, ("matrix", "values", 0, 1)),
    ({"kind": "matrix", "values": [[1.0] * 1001] * 1001}, ("matrix", "values")),
    ({"kind": "ordinal", "reduction_factor": 1.5}, ("ordinal", "reduction_factor")),
    ({"kind": "ordinal", "reduction_factor": -0.1}, ("ordinal", "reduction_factor")),
    ({"kind": "ordinal", "reduction_factor": True}, ("ordinal", "reduction_factor")),
    ({"kind": "ordinal", "values": {"a": float("nan")}}, ("ordinal", "values", "a")),
    ({"kind": "ordinal", "values": {"a": 1, "": 2}}, ("ordinal", "values", "", "[key]")),
    ({"kind": "ordinal", "values": {f"c{i}": i for i in range(MAX_CLASSES + 1)}}, ("ordinal", "values")),
    ({"kind": "ordinal", "period": 12.0}, ("ordinal", "period")),
    ({"kind": "ordinal", "cyclic": True, "values": {"a": 0, "b": 12}, "period": 12.0}, ("ordinal", "period")),
    ({"kind": "ordinal", "cyclic": True, "period": -1.0}, ("ordinal", "period")),
    ({"kind": "ordinal", "cyclic": "yes"}, ("ordinal", "cyclic")),
    ({"kind": "ordinal", "cyclic": True, "values": {"a": 1.0, "b": 1.0}}, ("ordinal", "period")),
    ({"kind": "groups", "groups": [["a", "b"]]}, ("groups", "within")),
    ({"kind": "groups", "groups": [["a", "b"]], "within": 1.2}, ("groups", "within")),
    ({"kind": "groups", "groups": [["a", "b"]], "within": 0.3, "between": 0.5}, ("groups", "between")),
    ({"kind": "groups", "groups": [["a", "b"], ["b", "c"]], "within": 0.5}, ("groups", "groups")),
    ({"kind": "groups", "groups": [[]], "within": 0.5}, ("groups", "groups", 0)),
    ({"kind": "groups", "groups": [], "within": 0.5}, ("groups", "groups")),
    ({"kind": "pairs", "pairs": [["a", "a", 0.5]]}, ("pairs", "pairs")),
    ({"kind": "pairs", "pairs": [["a", "b", 2.0]]}, ("pairs", "pairs", 0, 2)),
    ({"kind": "pairs", "pairs": [["a", "b"]]}, ("pairs", "pairs", 0, 2)),
    ({"kind": "pairs", "pairs": [["a", "b", 0.5], ["b", "a", 0.4]]}, ("pairs", "pairs")),
    ({"kind": "hierarchy", "parents": {"a": "x", "x": "y", "y": "x"}}, ("hierarchy", "parents")),
    ({"kind": "hierarchy", "parents": {"a": "a"}}, ("hierarchy", "parents")),
    ({"kind": "hierarchy", "parents": {f"n{i}": f"n{i + 1}" for i in range(70)}}, ("hierarchy", "parents")),
    ({"kind": "hierarchy", "parents": {"a": "x"}, "decay": 1.1}, ("hierarchy", "decay")),
    ({"kind": "hierarchy", "parents": {}}, ("hierarchy", "parents")),
    ({"kind": "hierarchy", "parents": {"a": "x"}, "distance": "depth"}, ("hierarchy", "distance")),
    ({"kind": "embedding", "vectors": {"a": [1.0]}, "rescale": "linear"}, ("embedding", "rescale")),
    ({"kind": "embedding"}, ("embedding", "model")),
    ({"kind": "embedding", "model": "word2vec"}, ("embedding", "model")),
    ({"kind": "embedding", "model": "all-MiniLM-L6-v2", "vectors": {"a": [1.0]}}, ("embedding", "model")),
    ({"kind": "embedding", "vectors": {"a": [1.0], "b": [1.0, 2.0]}}, ("embedding", "vectors")),
    ({"kind": "embedding", "vectors": {"a": [0.0, 0.0]}}, ("embedding", "vectors")),
    ({"kind": "embedding", "vectors": {"a": [float("inf")]}}, ("embedding", "vectors", "a", 0)),
    ({"kind": "embedding", "vectors": {"a": [1.0]}, "threshold": 1.0}, ("embedding", "threshold")),
    ({"kind": "embedding", "vectors": {"a": [1.0]}, "power": 0.0}, ("embedding", "power")),
    (
        {"kind": "embedding", "vectors": {"a": [1.0]}, "reduction_factor": 0.0},
        ("embedding", "reduction_factor"),
    ),
    ({"kind": "embedding", "vectors": {"a": [1.0]}, "template": "a {}"}, ("embedding", "template")),
    ({"kind": "embedding", "model": "all-MiniLM-L6-v2", "template": "no slot"}, ("embedding", "template")),
]


@pytest.mark.parametrize(
    "spec,loc", INVALID, ids=[f"{s.get('kind')}-{i}" for i, (s, _) in enumerate(INVALID)]
)
def test_invalid_spec_names_the_field(spec, loc):
    assert loc in _loc(spec)


def test_huge_matrix_is_rejected_fast_without_a_tensor(monkeypatch):
    row = [0.5] * 10_000
    spec = {"kind": "matrix", "values": [row] * 10_000}  # 10^8 entries, one shared row
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: pytest.fail("allocated a tensor"))
    t = time.perf_counter()
    with pytest.raises(ValidationError) as info:
        build_similarity(spec, ["a", "b"])
    str(info.value)  # formatting the error must not print the input
    assert time.perf_counter() - t < 1.0
    assert info.value.errors()[0]["loc"] == ("matrix", "values")
    assert info.value.errors()[0]["type"] == "too_long"


CLASS_DEPENDENT = [
    ({"kind": "matrix", "values": M2}, ["a", "b", "c"], "similarity.values"),
    ({"kind": "ordinal", "values": {"a": 1.0}}, ["a", "b"], "similarity.values"),
    ({"kind": "ordinal", "cyclic": True, "period": 2.0}, ["a", "b", "c"], "similarity.period"),
    ({"kind": "groups", "groups": [["a", "x"]], "within": 0.5}, ["a", "b"], "similarity.groups"),
    ({"kind": "pairs", "pairs": [["a", "x", 0.5]]}, ["a", "b"], "similarity.pairs"),
    ({"kind": "hierarchy", "parents": {"a": "r"}}, ["a", "b"], "similarity.parents"),
    ({"kind": "hierarchy", "parents": {"a": "r", "b": "a"}}, ["a", "b"], "similarity.parents"),
    ({"kind": "embedding", "vectors": {"a": [1.0]}}, ["a", "b"], "similarity.vectors"),
    ({"kind": "identity"}, [], "classes"),
    ({"kind": "identity"}, ["a", "a"], "classes"),
    ({"kind": "identity"}, [f"c{i}" for i in range(MAX_CLASSES + 1)], "classes"),
    ({"kind": "identity"}, ["a", 3], "classes"),
]


@pytest.mark.parametrize("spec,classes,field", CLASS_DEPENDENT)
def test_class_dependent_problems_raise_spec_error(spec, classes, field):
    with pytest.raises(SpecError) as info:
        build_similarity(spec, classes)
    assert info.value.field == field
    assert info.value.details[0]["loc"] == field.split(".")


def test_unknown_class_error_lists_the_known_ones():
    with pytest.raises(SpecError, match="unknown class 'zebu'.*'horse'"):
        build_similarity({"kind": "groups", "groups": [["horse", "zebu"]], "within": 0.5}, ANIMALS)


def test_class_values_and_groups_are_none_for_other_kinds():
    assert class_values(None, ANIMALS) == (None, None)
    assert class_values({"kind": "identity"}, ANIMALS) == (None, None)
    assert class_groups({"kind": "ordinal"}, ANIMALS) is None
    assert class_groups(None, ANIMALS) is None


def test_spec_type_is_a_discriminated_union_usable_by_the_api():
    from pydantic import BaseModel

    class Job(BaseModel):
        similarity: SimilaritySpec

    job = Job.model_validate({"similarity": {"kind": "ordinal", "reduction_factor": 0.3}})
    assert job.similarity.kind == "ordinal"
    with pytest.raises(ValidationError) as info:
        Job.model_validate({"similarity": {"kind": "groups", "groups": [["a"]], "within": 2}})
    assert info.value.errors()[0]["loc"] == ("similarity", "groups", "within")
