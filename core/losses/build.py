"""Build a loss module from a loss spec, the class list and the similarity (matrix and/or spec).

    from core.losses import build_loss
    loss = build_loss({"kind": "simloss"}, S, classes)                       # S: C x C tensor
    loss = build_loss({"kind": "expected_value"}, None, classes, {"kind": "ordinal"})
    loss = build_loss({"kind": "hierarchical_xe", "alpha": 0.2}, None, classes, hierarchy_spec)
    value = loss(logits, targets)                                            # batch mean

`similarity` may be None when `similarity_spec` is given (it is then built from the spec). Losses
that need a similarity (simloss, soft_labels, expected_cost, pairwise, partial_credit) refuse to be
built without one (SpecError on `loss.kind`); an identity similarity is fine. expected_value and emd
use the values of an ordinal similarity spec, or the class order when there is none (or identity);
hierarchical_xe needs a `hierarchy` similarity spec. Errors inside a combined loss name the component,
e.g. `loss.components.1.loss.kind`.
"""

from __future__ import annotations

from typing import Any

import torch

from core.errors import SpecError
from core.losses.base import ClassificationLoss, check_similarity
from core.losses.combined import CombinedLoss
from core.losses.cross_entropy import CrossEntropyLoss
from core.losses.emd import EMDLoss
from core.losses.expected_cost import ExpectedCostLoss
from core.losses.expected_value import ExpectedValueLoss
from core.losses.hierarchical import HierarchicalXELoss
from core.losses.pairwise import PairwiseLoss
from core.losses.partial_credit import PartialCreditLoss
from core.losses.simloss import SimLoss
from core.losses.soft_labels import SoftLabelLoss
from core.losses.spec import CombinedSpec, parse_loss_spec
from core.similarity import (
    HierarchySimilarity,
    build_similarity,
    check_classes,
    class_values,
    hierarchy_paths,
    parse_similarity_spec,
)

__all__ = ["NEEDS_SIMILARITY", "build_loss"]

NEEDS_SIMILARITY = ("simloss", "soft_labels", "expected_cost", "pairwise", "partial_credit")
_ORDERED = ("expected_value", "emd")


def build_loss(
    spec: Any, similarity: torch.Tensor | None, classes: list[str], similarity_spec: Any = None
) -> ClassificationLoss:
    """The `nn.Module` for `spec`; call it as `loss(logits (N, C), targets (N,))` -> batch mean."""
    parsed = parse_loss_spec(spec)
    classes = check_classes(classes)
    if len(classes) < 2:
        raise SpecError("classes", "a classification loss needs at least 2 classes")
    sim_spec = None if similarity_spec is None else parse_similarity_spec(similarity_spec)
    if similarity is None and sim_spec is not None:
        similarity = build_similarity(sim_spec, classes)
    if similarity is not None:
        similarity = check_similarity(similarity)
        if similarity.shape[0] != len(classes):
            raise SpecError(
                "similarity",
                f"is {similarity.shape[0]} x {similarity.shape[0]} but there are {len(classes)} classes",
            )
    if isinstance(parsed, CombinedSpec):
        parts = []
        for k, component in enumerate(parsed.components):
            try:
                parts.append(_build_one(component.loss, similarity, classes, sim_spec))
            except SpecError as exc:
                field = exc.field
                if field.startswith("loss."):
                    field = f"loss.components.{k}.loss." + field[len("loss.") :]
                raise SpecError(field, exc.reason) from exc
        return CombinedLoss(parts, [c.weight for c in parsed.components])
    return _build_one(parsed, similarity, classes, sim_spec)


def _build_one(
    spec: Any, similarity: torch.Tensor | None, classes: list[str], sim_spec: Any
) -> ClassificationLoss:
    kind = spec.kind
    if kind in NEEDS_SIMILARITY and similarity is None:
        raise SpecError("loss.kind", f"{kind} needs a similarity spec; got none")
    if kind == "cross_entropy":
        return CrossEntropyLoss(len(classes), label_smoothing=spec.label_smoothing)
    if kind == "simloss":
        return SimLoss(similarity)
    if kind == "soft_labels":
        return SoftLabelLoss(similarity, temperature=spec.temperature, divergence=spec.divergence)
    if kind == "expected_cost":
        return ExpectedCostLoss(similarity)
    if kind == "pairwise":
        return PairwiseLoss(similarity)
    if kind == "partial_credit":
        return PartialCreditLoss(similarity, min_similarity=spec.min_similarity)
    if kind == "hierarchical_xe":
        if not isinstance(sim_spec, HierarchySimilarity):
            got = "none" if sim_spec is None else f"kind {sim_spec.kind!r}"
            raise SpecError("loss.kind", f"hierarchical_xe needs a hierarchy similarity spec; got {got}")
        return HierarchicalXELoss(hierarchy_paths(sim_spec, classes), alpha=spec.alpha)
    if kind in _ORDERED:
        if sim_spec is not None and sim_spec.kind not in ("identity", "ordinal"):
            raise SpecError(
                "loss.kind",
                f"{kind} needs ordered classes: an ordinal similarity spec or none "
                f"(class order); got kind {sim_spec.kind!r}",
            )
        values, period = class_values(sim_spec, classes)
        if values is None:
            values = torch.arange(len(classes), dtype=torch.float32)
        if kind == "expected_value":
            return ExpectedValueLoss(values, period=period, scale=spec.scale)
        if period is not None:
            raise SpecError("loss.kind", "emd needs linearly ordered classes; the similarity spec is cyclic")
        order = torch.argsort(values.to(torch.float64), stable=True)
        return EMDLoss(len(classes), order=order, mean_over_classes=spec.mean_over_classes)
    raise SpecError("loss.kind", f"unknown loss kind {kind!r}")  # pragma: no cover - the union rejects it
