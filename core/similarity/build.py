"""Turn a similarity spec and a class list into the C x C matrix S, plus ordinal and group info.

    from core.similarity import build_similarity, class_values, class_groups
    S = build_similarity({"kind": "groups", "groups": [["horse", "zebra"]], "within": 0.5}, classes)
    values, period = class_values(spec, classes)   # ordinal specs only, else (None, None)
    groups = class_groups(spec, classes)           # groups / hierarchy specs only, else None
    notes = similarity_warnings(spec, classes)     # what was clipped (matrix specs), for a warning event

S is float32, S[i, i] = 1 and 0 <= S <= 1. Specs are validated by `core.similarity.spec` (pydantic
`ValidationError` for structural problems); problems that depend on `classes` raise
`core.errors.SpecError` with a field path starting with `similarity.` (or `classes` for a bad class
list). Lookup tables (`values`, `vectors`, `parents`) may hold more classes than the dataset uses, so
one spec serves every subset; lists that name classes (`groups`, `pairs`) must name only known ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from core.errors import SpecError
from core.similarity.embedding import class_text, cosine_similarity, embed_texts
from core.similarity.spec import (
    MAX_CLASSES,
    MAX_NAME_LENGTH,
    TOLERANCE,
    EmbeddingSimilarity,
    GroupsSimilarity,
    HierarchySimilarity,
    IdentitySimilarity,
    MatrixSimilarity,
    OrdinalSimilarity,
    PairsSimilarity,
    parse_similarity_spec,
)

__all__ = [
    "build_similarity",
    "check_classes",
    "class_groups",
    "class_values",
    "hierarchy_paths",
    "similarity_warnings",
]


def check_classes(classes: Any) -> list[str]:
    """Validate a class list (1..MAX_CLASSES unique non-empty strings); SpecError('classes', ...)."""
    if not isinstance(classes, (list, tuple)) or not classes:
        raise SpecError("classes", "must be a non-empty list of class names")
    if len(classes) > MAX_CLASSES:
        raise SpecError("classes", f"at most {MAX_CLASSES} classes, got {len(classes)}")
    for k, c in enumerate(classes):
        if not isinstance(c, str) or not c or len(c) > MAX_NAME_LENGTH:
            raise SpecError("classes", f"classes[{k}] must be a string of 1..{MAX_NAME_LENGTH} characters")
    if len(set(classes)) != len(classes):
        dup = next(c for k, c in enumerate(classes) if c in classes[:k])
        raise SpecError("classes", f"class {dup!r} appears twice")
    return list(classes)


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _unknown(field: str, where: str, name: str, classes: list[str]) -> SpecError:
    return SpecError(field, f"{where} names unknown class {name!r}; the classes are {_names(classes)}")


def build_similarity(spec: Any, classes: list[str]) -> torch.Tensor:
    """The C x C similarity matrix (float32, diagonal 1, entries in [0, 1]) of `spec` over `classes`."""
    parsed = parse_similarity_spec(spec)
    classes = check_classes(classes)
    s = _BUILDERS[parsed.kind](parsed, classes)
    s = torch.nan_to_num(s, nan=0.0).clamp(0.0, 1.0)
    s.fill_diagonal_(1.0)
    return s.to(torch.float32).contiguous()


def similarity_warnings(spec: Any, classes: list[str]) -> list[str]:
    """What `build_similarity(spec, classes)` clipped, one sentence each (empty when nothing was): a
    `matrix` spec's entries at most TOLERANCE outside [0, 1] and diagonal entries within TOLERANCE of 1
    (anything farther is refused by the spec). Meant for a job's warning event."""
    parsed = parse_similarity_spec(spec)
    if not isinstance(parsed, MatrixSimilarity):
        return []
    v = _matrix(parsed, check_classes(classes))
    diagonal = torch.eye(v.shape[0], dtype=torch.bool)
    outside = (v < 0) | (v > 1)
    off = outside & ~diagonal
    notes = []
    if bool(off.any()):
        worst = float(torch.maximum(-v, v - 1)[off].max())
        notes.append(
            f"similarity.values: {int(off.sum())} entries outside [0, 1] by at most {worst:.3g} "
            f"(within {TOLERANCE:g}) were clipped to [0, 1]"
        )
    d = torch.diagonal(v)
    if bool((d != 1).any()):
        worst = float((d - 1).abs().max())
        notes.append(
            f"similarity.values: {int((d != 1).sum())} diagonal entries differ from 1 by at most {worst:.3g} "
            f"(within {TOLERANCE:g}) and were set to 1"
        )
    return notes


def _identity(spec: IdentitySimilarity, classes: list[str]) -> torch.Tensor:
    return torch.eye(len(classes), dtype=torch.float64)


def _matrix(spec: MatrixSimilarity, classes: list[str]) -> torch.Tensor:
    n, c = len(spec.values), len(classes)
    if n != c:
        raise SpecError("similarity.values", f"must be a {c} x {c} matrix (one row per class), got {n} x {n}")
    return torch.tensor(spec.values, dtype=torch.float64)


def _ordinal(spec: OrdinalSimilarity, classes: list[str]) -> torch.Tensor:
    values, period = class_values(spec, classes)
    assert values is not None
    v = values.to(torch.float64)
    d = (v[:, None] - v[None, :]).abs()
    if period is not None:
        d = torch.remainder(d, period)
        d = torch.minimum(d, period - d)
    return torch.pow(torch.tensor(spec.reduction_factor, dtype=torch.float64), d)


def _groups(spec: GroupsSimilarity, classes: list[str]) -> torch.Tensor:
    index = {c: k for k, c in enumerate(classes)}
    s = torch.full((len(classes), len(classes)), spec.between, dtype=torch.float64)
    for g, names in enumerate(spec.groups):
        idx = []
        for name in names:
            if name not in index:
                raise _unknown("similarity.groups", f"groups[{g}]", name, classes)
            idx.append(index[name])
        ii = torch.tensor(idx)
        s[ii[:, None], ii[None, :]] = spec.within
    return s


def _pairs(spec: PairsSimilarity, classes: list[str]) -> torch.Tensor:
    index = {c: k for k, c in enumerate(classes)}
    s = torch.zeros(len(classes), len(classes), dtype=torch.float64)
    for k, (a, b, value) in enumerate(spec.pairs):
        for name in (a, b):
            if name not in index:
                raise _unknown("similarity.pairs", f"pairs[{k}]", name, classes)
        s[index[a], index[b]] = value
        if spec.symmetric:
            s[index[b], index[a]] = value
    return s


def hierarchy_paths(spec: HierarchySimilarity, classes: list[str]) -> list[list[str]]:
    """For each class, its path [class, parent, ..., root] in the tree; SpecError if not a leaf in it."""
    children = set(spec.parents.values())
    paths = []
    for c in classes:
        if c not in spec.parents:
            raise SpecError("similarity.parents", f"class {c!r} is not in the hierarchy (it has no parent)")
        if c in children:
            raise SpecError(
                "similarity.parents", f"class {c!r} has children in the hierarchy; classes must be leaves"
            )
        path = [c]
        while path[-1] in spec.parents:
            path.append(spec.parents[path[-1]])
        paths.append(path)
    return paths


def _hierarchy(spec: HierarchySimilarity, classes: list[str]) -> torch.Tensor:
    paths = hierarchy_paths(spec, classes)
    ids: dict[str, int] = {}
    depth = max(len(p) for p in paths)
    # root-aligned node ids; padding never matches (-1 for the row side, -2 for the column side)
    table = torch.full((len(classes), depth), -1, dtype=torch.long)
    for k, p in enumerate(paths):
        table[k, : len(p)] = torch.tensor([ids.setdefault(n, len(ids)) for n in reversed(p)])
    other = torch.where(table < 0, torch.full_like(table, -2), table)
    common = torch.zeros(len(classes), len(classes), dtype=torch.long)
    still = torch.ones(len(classes), len(classes), dtype=torch.bool)
    for level in range(depth):
        still &= table[:, None, level] == other[None, :, level]
        common += still
    if spec.distance == "lca_height":
        heights = _node_heights(spec.parents)
        names = {i: n for n, i in ids.items()}
        node_height = torch.tensor([heights[names[i]] for i in range(len(ids))], dtype=torch.float64)
        lca = table.gather(1, (common - 1).clamp(min=0))  # row i, column j: the node id of LCA(i, j)
        height = node_height[lca]
    else:
        lengths = torch.tensor([len(p) for p in paths])
        height = torch.maximum(lengths[:, None] - common, lengths[None, :] - common).to(torch.float64)
    s = torch.pow(torch.tensor(spec.decay, dtype=torch.float64), height)
    return torch.where(common > 0, s, torch.zeros_like(s))


def _node_heights(parents: dict[str, str]) -> dict[str, int]:
    """The height of every node of the tree `parents`: the most edges down to a leaf below it (leaves 0)."""
    children = set(parents.values())
    height: dict[str, int] = {}
    for leaf in (n for n in parents if n not in children):
        node, h = leaf, 0
        height[leaf] = 0
        while node in parents:
            node, h = parents[node], h + 1
            if height.get(node, -1) >= h:
                break  # this node and those above it already have a path at least as long
            height[node] = h
    return height


def _embedding(spec: EmbeddingSimilarity, classes: list[str]) -> torch.Tensor:
    if spec.vectors is not None:
        missing = [c for c in classes if c not in spec.vectors]
        if missing:
            raise SpecError(
                "similarity.vectors", f"no vector for class {missing[0]!r} ({len(missing)} classes missing)"
            )
        vecs = torch.tensor([spec.vectors[c] for c in classes], dtype=torch.float64)
    else:
        assert spec.model is not None
        texts = [class_text(c, spec.text_template) for c in classes]
        vecs = torch.from_numpy(embed_texts(texts, spec.model)).to(torch.float64)
    cos = cosine_similarity(vecs)
    if spec.rescale == "lower_bound":  # SimLoss's (cos - lb) / (1 - lb), negatives 0
        s = ((cos - spec.threshold) / (1.0 - spec.threshold)).clamp(min=0.0)
    else:
        s = torch.where(cos >= spec.threshold, cos, torch.zeros_like(cos)).clamp(min=0.0)
    return spec.reduction_factor * s.pow(spec.power)


_BUILDERS: dict[str, Callable[[Any, list[str]], torch.Tensor]] = {
    "identity": _identity,
    "matrix": _matrix,
    "ordinal": _ordinal,
    "groups": _groups,
    "pairs": _pairs,
    "hierarchy": _hierarchy,
    "embedding": _embedding,
}


def class_values(spec: Any, classes: list[str]) -> tuple[torch.Tensor | None, float | None]:
    """(per-class value (C,) float32, cyclic period or None) for an ordinal spec; (None, None) otherwise.

    Values are the spec's `values` map looked up per class, or 0..C-1 in class order without it.
    """
    if spec is None:
        return None, None
    parsed = parse_similarity_spec(spec)
    if not isinstance(parsed, OrdinalSimilarity):
        return None, None
    classes = check_classes(classes)
    if parsed.values is None:
        values = torch.arange(len(classes), dtype=torch.float32)
        span = float(len(classes) - 1)
    else:
        missing = [c for c in classes if c not in parsed.values]
        if missing:
            raise SpecError(
                "similarity.values", f"no value for class {missing[0]!r} ({len(missing)} classes missing)"
            )
        values = torch.tensor([parsed.values[c] for c in classes], dtype=torch.float32)
        span = max(parsed.values.values()) - min(parsed.values.values())
    period = parsed.default_period(len(classes))
    if parsed.cyclic:
        assert period is not None  # the spec model requires one when all values are equal
        if period <= span:
            raise SpecError(
                "similarity.period", f"must exceed the span of the classes ({span:g}); got {period:g}"
            )
    return values, period


def class_groups(spec: Any, classes: list[str]) -> list[int] | None:
    """Group index per class for `groups` (classes in no group get their own) and `hierarchy`
    (the class's parent, i.e. its superclass) specs, numbered in order of first appearance in
    `classes`; None for other kinds."""
    if spec is None:
        return None
    parsed = parse_similarity_spec(spec)
    classes = check_classes(classes)
    if isinstance(parsed, GroupsSimilarity):
        _groups(parsed, classes)  # validates the names
        of = {name: g for g, names in enumerate(parsed.groups) for name in names}
        keys: list[Any] = [("g", of[c]) if c in of else ("c", c) for c in classes]
    elif isinstance(parsed, HierarchySimilarity):
        keys = [p[1] for p in hierarchy_paths(parsed, classes)]
    else:
        return None
    numbering: dict[Any, int] = {}
    return [numbering.setdefault(k, len(numbering)) for k in keys]
